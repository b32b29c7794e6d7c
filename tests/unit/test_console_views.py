"""The console views issue 17 asked for ("What users tripped on"), on an in-process sandbox (no stack):
fault rules as written, refusals matched to their own message by ledger key, the outbox's order and planned
send time, paging, raw and attachment views, logs, and the automatic replies patients receive."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from local.sandbox.faults import FaultBook, FaultError
from local.sandbox.outbox import Message
from local.sandbox.server import make_app
from local.sandbox.settings import SandboxSettings
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
    # Each attempt claims its ledger doc anew (generation 1, 2, …): twin-a was refused twice, twin-b once.
    sandbox.faults.add({"channel": "sms", "kind": "http", "status": 503, "times": 3})
    for key, generation in (("twin-a", 1), ("twin-b", 1), ("twin-a", 2)):
        answer = pages.send_sms(client, "Reminder: tomorrow 10:00", StatusCallback=callback(key, generation))
        assert answer.status_code == 503
    first = pages.send_sms(client, "Reminder: tomorrow 10:00", StatusCallback=callback("twin-a", 3)).get_json()["sid"]
    second = pages.send_sms(client, "Reminder: tomorrow 10:00", StatusCallback=callback("twin-b", 2)).get_json()["sid"]

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
    monday = send("report-monday:2").headers["X-Message-Id"]

    assert "SendGrid answered 503" not in page(client, f"/messages/{tuesday}/timeline")
    assert page(client, f"/messages/{monday}/timeline").count("SendGrid answered 503") == 1


@pytest.fixture
def webhook() -> Iterator[str]:
    """An inbound-SMS webhook that answers as the waitlist's does: TwiML with one <Message>."""
    app = Flask("webhook")

    @app.post("/inbound")
    def inbound() -> tuple[str, int, dict[str, str]]:
        text = {"HELP": "Glow Spa: reply C to confirm. Questions? +15550001111"}.get(request.form["Body"])
        twiml = f"<Response><Message>{text}</Message></Response>" if text else "<Response/>"
        return f'<?xml version="1.0" encoding="UTF-8"?>{twiml}', 200, {"Content-Type": "text/xml"}

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/inbound"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def replying(monkeypatch: pytest.MonkeyPatch, webhook: str) -> Iterator[tuple[FlaskClient, Sandbox]]:
    for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "MEDSPA_CLOCK_FILE"):
        monkeypatch.delenv(name, raising=False)
    box = Sandbox(
        SandboxSettings(
            account_sid=pages.SID,
            auth_token=pages.TOKEN,
            sendgrid_api_key=pages.KEY,
            callback_delay_seconds=0.01,
            inbound_sms_url=webhook,
        )
    )
    yield make_app(box).test_client(), box
    box.close()


def test_an_automatic_reply_is_in_the_outbox_as_a_message_to_the_patient(
    replying: tuple[FlaskClient, Sandbox],
) -> None:
    client, sandbox = replying
    pages.send_sms(client, "Reminder: tomorrow 10:00. Reply C to confirm.")
    [thread] = re.findall(r'href="/conversations/(t[0-9a-f]+)"', page(client, "/conversations"))

    client.post(f"/conversations/{thread}/reply", data={"body": "HELP"})
    client.post(f"/conversations/{thread}/reply", data={"body": "thanks"})  # the webhook answers no <Message>

    [reply] = [m for m in sandbox.outbox.list() if m["direction"] == "reply"]
    [help_sms] = [m for m in sandbox.outbox.list(direction="inbound") if m["body"] == "HELP"]
    assert reply["to"] == pages.PATIENT and reply["from"] == pages.CLINIC and reply["in_reply_to"] == help_sms["id"]
    assert reply["body"] == "Glow Spa: reply C to confirm. Questions? +15550001111"
    listed = client.get(f"/2010-04-01/Accounts/{pages.SID}/Messages.json", headers=pages.AUTH).get_json()["messages"]
    assert [m["direction"] for m in listed if m["sid"] == reply["id"]] == ["outbound-reply"]  # as Twilio lists it
    outbox = page(client, "/")
    assert reply["id"] in pages.table_rows(outbox) and "automatic reply" in outbox
    assert "Glow Spa: reply C to confirm." in page(client, f"/conversations/{thread}")


def test_an_inbound_row_shows_its_sender_masked(replying: tuple[FlaskClient, Sandbox]) -> None:
    client, sandbox = replying
    sandbox.outbox.add(
        Message(id="SMin", channel="sms", direction="inbound", to=pages.CLINIC, from_=pages.PATIENT, status="received")
    )

    row = page(client, "/").split('data-id="SMin"', 1)[1].split("</tr>", 1)[0]

    assert "← +1******4567" in row and pages.PATIENT not in row


def stack_clock_message(sid: str, to: str, created_at: datetime, direction: str = "outbound") -> Message:
    sender, patient = (to, pages.CLINIC) if direction == "inbound" else (pages.CLINIC, to)
    return Message(
        id=sid,
        channel="sms",
        direction=direction,
        to=patient,
        from_=sender,
        status="delivered",
        body=sid,
        created_at=created_at,
        updated_at=created_at,
    )


def test_conversations_put_the_latest_arrival_first_whatever_the_stack_clock_said(
    client: FlaskClient, sandbox: Sandbox
) -> None:
    # The quick demo sends tomorrow's 12:00 reminder with the clock a day ahead, then returns it to real time.
    tomorrow_noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(days=1)
    sandbox.outbox.add(stack_clock_message("SMdemo", pages.OTHER, tomorrow_noon))
    sandbox.outbox.add(stack_clock_message("SMreply", pages.PATIENT, datetime.now(UTC), direction="inbound"))

    listing = page(client, "/conversations")

    assert listing.index("+1******4567") < listing.index("+1******4321")


def test_the_outbox_shows_real_arrival_time_and_the_stack_clock_when_they_differ(
    client: FlaskClient, sandbox: Sandbox
) -> None:
    ahead = datetime.now(UTC) + timedelta(hours=36)
    sandbox.outbox.add(stack_clock_message("SMahead", pages.PATIENT, ahead))
    sandbox.outbox.add(stack_clock_message("SMnow", pages.OTHER, datetime.now(UTC)))
    [ahead_row, now_row] = (
        page(client, "/").split(f'data-id="{sid}"', 1)[1].split("</tr>", 1)[0] for sid in ("SMahead", "SMnow")
    )

    assert f"stack clock {ahead.isoformat(timespec='seconds')[:19].replace('T', ' ')}" in ahead_row
    assert "stack clock" not in now_row
    assert pages.table_rows(page(client, "/")) == ["SMnow", "SMahead"]


def older_link(html: str) -> str | None:
    found = re.search(r'<a href="(/\?[^"]*)" rel="next"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_the_outbox_pages_through_every_message_newest_first_with_a_bounded_page(
    client: FlaskClient, sandbox: Sandbox
) -> None:
    for n in range(250):
        sandbox.outbox.add(stack_clock_message(f"SM{n:03}", pages.PATIENT, datetime.now(UTC)))

    seen: list[str] = []
    path: str | None = "/"
    while path is not None:
        html = page(client, path)
        rows = pages.table_rows(html)
        assert 0 < len(rows) <= 100
        seen += rows
        path = older_link(html)

    assert seen == [f"SM{n:03}" for n in reversed(range(250))]  # each once, newest first, none left out
    assert len(pages.table_rows(page(client, "/?size=100000"))) == 200  # bounded
    assert len(pages.table_rows(page(client, "/?size=abc&before=x"))) == 100


def test_a_filtered_outbox_keeps_its_filter_on_the_next_page(client: FlaskClient, sandbox: Sandbox) -> None:
    for n in range(30):
        sandbox.outbox.add(stack_clock_message(f"SMa{n:02}", pages.PATIENT, datetime.now(UTC)))
        sandbox.outbox.add(stack_clock_message(f"SMb{n:02}", pages.OTHER, datetime.now(UTC)))

    first = page(client, "/outbox/rows?q=SMa&size=20")
    second = page(client, older_link(first) or "/missing")

    assert pages.table_rows(first) + pages.table_rows(second) == [f"SMa{n:02}" for n in reversed(range(30))]


def send_report(client: FlaskClient, csv: bytes) -> str:
    payload = {
        "personalizations": [{"to": [{"email": "manager@example.com"}]}],
        "from": {"email": "reports@example.com"},
        "subject": "Daily report",
        "content": [{"type": "text/plain", "value": "see the attachment"}],
        "attachments": [
            {"filename": "report 2026-12-07.csv", "type": "text/csv", "content": base64.b64encode(csv).decode()}
        ],
        "custom_args": {"ledger_key": "report-k:1"},
    }
    response = client.post("/v3/mail/send", json=payload, headers={"Authorization": f"Bearer {pages.KEY}"})
    return str(response.headers["X-Message-Id"])


def test_a_reports_csv_attachment_downloads_as_the_manager_would_save_it(client: FlaskClient) -> None:
    csv = b"provider,appointments,no_show\nDr. Rao,12,1\n"
    email = send_report(client, csv)

    assert f'href="/messages/{email}/attachments/0"' in page(client, f"/messages/{email}")
    download = client.get(f"/messages/{email}/attachments/0")

    assert download.status_code == 200 and download.data == csv
    assert download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"] == 'attachment; filename="report_2026-12-07.csv"'
    assert client.get(f"/messages/{email}/attachments/1").status_code == 404


def test_the_raw_view_shows_what_the_provider_was_given_with_addresses_masked(client: FlaskClient) -> None:
    sid = pages.send_sms(client, "Reminder: tomorrow 10:00", StatusCallback=callback("raw-key")).get_json()["sid"]
    email = send_report(client, b"a,b\n1,2\n")

    sms_raw, email_raw = page(client, f"/messages/{sid}/raw"), page(client, f"/messages/{email}/raw")

    assert "StatusCallback" in sms_raw and "ledger=raw-key" in sms_raw and "+1******4567" in sms_raw
    assert pages.PATIENT not in sms_raw and "Reminder: tomorrow 10:00" in sms_raw
    assert "m***@example.com" in email_raw and "manager@example.com" not in email_raw
    assert "report-k:1" in email_raw and "&lt;8 bytes, base64&gt;" in email_raw
    assert client.get("/messages/SMnothing/raw").status_code == 404


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("MEDSPA_STATE_DIR", str(tmp_path))
    folder = tmp_path / "logs"
    folder.mkdir()
    lines = [
        "=== 2026-12-07T09:46:04 starting: functions-framework --target handle_task",
        json.dumps({"severity": "INFO", "message": "task sent", "task_id": "t-1", "channel": "sms"}),
        json.dumps({"severity": "WARNING", "message": "provider unavailable", "task_id": "t-2", "code": 20503}),
        json.dumps({"severity": "ERROR", "message": "retries exhausted", "task_id": "t-2", "to": "+15551234567"}),
        json.dumps({"severity": "INFO", "message": "task sent", "task_id": "t-3", "channel": "email"}),
    ]
    (folder / "task-handler.log").write_text("\n".join(lines) + "\n")
    return folder


def log_rows(html: str) -> list[str]:
    body = html.split('<table id="log-lines"', 1)[1].split("</table>", 1)[0] if 'id="log-lines"' in html else ""
    return [re.sub(r"<[^>]+>", " ", row) for row in re.findall(r"<tr class=\"sev-[^\"]+\">(.*?)</tr>", body)]


def test_a_functions_log_reads_newest_first_filtered_by_severity_and_text(client: FlaskClient, logs: Path) -> None:
    assert 'href="/logs/task-handler"' in page(client, "/logs")

    every = log_rows(page(client, "/logs/task-handler"))
    warnings = log_rows(page(client, "/logs/task-handler?severity=WARNING"))
    about_t2 = log_rows(page(client, "/logs/task-handler?q=t-2"))

    assert len(every) == 5 and "t-3" in every[0] and "starting" in every[-1]
    assert [("ERROR" in row, "WARNING" in row) for row in warnings] == [(True, False), (False, True)]
    assert len(about_t2) == 2 and all("t-2" in row for row in about_t2)
    assert "+1******4567" in warnings[0] and "+15551234567" not in page(client, "/logs/task-handler")


def test_a_huge_log_is_read_from_its_tail_only(client: FlaskClient, logs: Path) -> None:
    from local.sandbox.console import logs_page

    line = json.dumps({"severity": "INFO", "message": "filler " + "x" * 200}) + "\n"
    with (logs / "sandbox.log").open("w") as handle:
        handle.write(json.dumps({"severity": "INFO", "message": "the very first line"}) + "\n")
        handle.write(line * (2 * logs_page.TAIL_BYTES // len(line)))
        handle.write(json.dumps({"severity": "ERROR", "message": "the last line"}) + "\n")

    html = page(client, "/logs/sandbox")

    rows = log_rows(html)
    assert "the last line" in rows[0] and len(rows) == logs_page.MAX_LINES
    assert "the very first line" not in page(client, "/logs/sandbox?q=first") and "last 1.0 MB read" in html


def test_only_a_listed_log_file_opens(client: FlaskClient, logs: Path) -> None:
    (logs.parent / "secret.log").write_text("not a log of the stack\n")
    for path in ("/logs/..%2Fsecret", "/logs/secret", "/logs/task-handler.log", "/logs/nope"):
        assert client.get(path).status_code == 404, path


def test_the_new_pages_answer_with_the_nav_bar_and_nothing_from_outside(client: FlaskClient, logs: Path) -> None:
    sid = pages.send_sms(client, "hello").get_json()["sid"]
    email = send_report(client, b"a\n")
    paths = (
        "/logs",
        "/logs/task-handler",
        f"/messages/{sid}/raw",
        f"/messages/{email}/raw",
        "/operations/collections/patient_requests",
        "/operations/collections/slot_offers",
        "/operations/collections/purchase_orders",
        "/operations/collections/failed_tasks",
        "/operations/ledger?by=key",
    )
    for path in paths:
        html = page(client, path)
        assert html.count('<nav class="top"') == 1 and 'href="/logs"' in html, path
        links = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert all(link.startswith(("/", "#", "data:")) for link in links), (path, links)
    assert "Firestore not configured" in page(client, "/operations/collections/patient_requests")
