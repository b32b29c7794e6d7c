"""The console views issue 17 asked for ("What users tripped on"), on an in-process sandbox (no stack):
fault rules as written, refusals matched to their own message by ledger key, the outbox's order and planned
send time, paging, raw and attachment views, logs, and the automatic replies patients receive."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from local.sandbox.faults import FaultBook, FaultError
from local.sandbox.state import Sandbox
from tests.unit import test_console_pages as pages

sandbox, client, page = pages.sandbox, pages.client, pages.page  # the console tests' fixtures and helpers


def test_a_prefix_rule_shows_its_prefix_and_a_whole_number_stays_masked(client: FlaskClient) -> None:
    client.post("/faults", data={"channel": "sms", "kind": "http", "status": "503", "to": "+44*"})
    client.post("/faults", data={"channel": "sms", "kind": "http", "status": "503", "to": "+15551234567"})

    html = page(client, "/faults")

    cells = html.split('<table id="faults">', 1)[1].split("</table>", 1)[0]
    assert '<td class="mono">+44*</td>' in cells
    assert "+1******4567" in cells and "+15551234567" not in cells


def test_a_rule_the_book_refuses_uses_up_no_id() -> None:
    book = FaultBook()
    with pytest.raises(FaultError):
        book.add({"channel": "sms", "kind": "http", "status": 200})

    assert book.add({"channel": "sms", "kind": "http", "status": 503})["id"] == "f1"
    assert book.add({"channel": "email", "kind": "http", "status": 503})["id"] == "f2"


def test_the_console_form_refusing_a_rule_leaves_the_next_rule_f1(client: FlaskClient, sandbox: Sandbox) -> None:
    assert client.post("/faults", data={"channel": "sms", "kind": "http", "status": "200"}).status_code == 400
    assert client.post("/faults", data={"preset": "twilio-outage"}).status_code == 303

    assert [rule["id"] for rule in sandbox.faults.list()] == ["f1"]


def callback(key: str, generation: int = 1) -> str:
    return f"http://127.0.0.1:1/twilio-status?ledger={key}&g={generation}"


def test_a_timeline_shows_only_its_own_ledger_docs_refusals_not_its_twins(
    client: FlaskClient, sandbox: Sandbox
) -> None:
    # Two reminders with the same number and words (two ledger docs): each was refused, then went through.
    sandbox.faults.add({"channel": "sms", "kind": "http", "status": 503, "times": 3})
    for key in ("twin-a", "twin-a", "twin-b"):
        assert pages.send_sms(client, "Reminder: tomorrow 10:00", StatusCallback=callback(key)).status_code == 503
    first = pages.send_sms(client, "Reminder: tomorrow 10:00", StatusCallback=callback("twin-a")).get_json()["sid"]
    second = pages.send_sms(client, "Reminder: tomorrow 10:00", StatusCallback=callback("twin-b")).get_json()["sid"]

    assert page(client, f"/messages/{first}/timeline").count("Twilio answered 503") == 2
    assert page(client, f"/messages/{second}/timeline").count("Twilio answered 503") == 1


def test_an_emails_timeline_matches_its_refusals_by_ledger_key_not_by_subject(
    client: FlaskClient, sandbox: Sandbox
) -> None:
    sandbox.faults.add({"channel": "email", "kind": "http", "status": 503, "times": 1})

    def send(ledger: str) -> Any:
        payload = {
            "personalizations": [{"to": [{"email": "jane.doe@example.com"}]}],
            "from": {"email": "clinic@example.com"},
            "subject": "Your daily report",
            "content": [{"type": "text/plain", "value": "plain part"}],
            "custom_args": {"ledger_key": ledger},
        }
        return client.post("/v3/mail/send", json=payload, headers={"Authorization": f"Bearer {pages.KEY}"})

    assert send("report-monday:1").status_code == 503
    tuesday = send("report-tuesday:1").headers["X-Message-Id"]
    monday = send("report-monday:1").headers["X-Message-Id"]

    assert "SendGrid answered 503" not in page(client, f"/messages/{tuesday}/timeline")
    assert page(client, f"/messages/{monday}/timeline").count("SendGrid answered 503") == 1
