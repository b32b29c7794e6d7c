"""The console views issue 17 asked for ("What users tripped on"), on an in-process sandbox (no stack):
fault rules as written, refusals matched to their own message by ledger key, the outbox's order and planned
send time, paging, raw and attachment views, logs, and the automatic replies patients receive."""

from __future__ import annotations

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
