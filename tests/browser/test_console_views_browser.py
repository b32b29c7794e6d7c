"""The console views added for issue 17, in a real browser on what the quick demo left: the retried
reminder's timeline holds only its own refusals, automatic replies are in the outbox, the outbox pages,
the collections and a function's log are listed and filtered, and a message's source and a report's CSV
are one click away. Screenshots: <state dir>/artifacts/console/."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from local.config import StackConfig
from local.processes import wait_until
from local.sandbox.console.messages import ledger_key
from shared.platform import clients
from tests.browser.conftest import artifacts
from tests.browser.test_console_browser import rows, shoot

pytestmark = pytest.mark.integration
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect
WAIT = 30.0


def test_the_retried_reminders_timeline_counts_one_refusal_per_failed_attempt(page: Any, stack: StackConfig) -> None:
    sms = requests.get(f"{stack.sandbox_url}/_sandbox/messages?channel=sms&direction=outbound", timeout=10).json()
    retried = [m for m in sms if m["to"].startswith("+91") and "&g=1" not in (m["status_callback"] or "")]
    assert retried, "the demo's Twilio outage left no retried SMS to +91"
    db = clients.firestore()
    for message in retried:
        ledger = db.collection("notifications").document(str(ledger_key(message))).get().to_dict() or {}
        generation = int(str(message["status_callback"]).rpartition("&g=")[2])
        page.goto(f"/messages/{message['id']}")
        refusals = page.locator("ol.timeline li", has_text="Twilio answered 503").count()
        # Each earlier claim of this ledger doc was refused once: no refusal of a twin is counted.
        assert refusals == generation - 1, (message["id"], refusals, generation, ledger.get("attempts"))
    shoot(page, stack, "message-retried")


def test_automatic_replies_are_in_the_outbox_and_inbound_rows_name_their_sender(page: Any, stack: StackConfig) -> None:
    page.goto("/?direction=reply")
    replies = rows(page)
    assert replies and all("automatic reply" in row for row in replies)
    page.goto("/?direction=inbound")
    senders = page.locator("#outbox tbody tr td:nth-child(5)").all_inner_texts()
    assert senders and all(s.startswith("←") and "***" in s and not re.search(r"\+\d{8,}", s) for s in senders)


def test_the_outbox_pages_to_older_messages_and_back(page: Any, stack: StackConfig) -> None:
    page.goto("/?size=20")
    first = page.locator("#outbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    page.locator("a[rel=next]").first.click()
    page.wait_for_url(re.compile(r"before=\d+"))
    second = page.locator("#outbox tbody tr").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert len(first) == 20 and second and not set(first) & set(second)
    page.locator("a[rel=first]").first.click()
    page.wait_for_url(re.compile(r"size=20$"))
    assert page.locator("#outbox tbody tr").first.get_attribute("data-id") == first[0]


def test_a_functions_log_filters_by_severity_and_text(page: Any, stack: StackConfig) -> None:
    page.goto("/logs")
    page.locator('a[href="/logs/task-handler"]').click()
    unfiltered = page.locator("#log-lines tbody tr").all_inner_texts()
    page.get_by_label("filter log lines").fill("task sent")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"q=task"))
    lines = page.locator("#log-lines tbody tr").all_inner_texts()
    # The filter keeps the lines holding every word anywhere, not the phrase (docs/console.md, "Logs").
    assert lines and all("task" in line.lower() and "sent" in line.lower() for line in lines)
    assert any("sent" not in line.lower() for line in unfiltered)
    shoot(page, stack, "logs")


def test_a_move_to_friday_text_is_listed_as_a_patient_request_linking_the_text(page: Any, stack: StackConfig) -> None:
    sms = requests.get(f"{stack.sandbox_url}/_sandbox/messages?channel=sms&direction=outbound", timeout=10).json()
    target = next(m for m in sms if m["to"].startswith("+44"))  # a Marylebone patient
    inbound = {"from": target["to"], "to": target["from"] or target["messaging_service_sid"]}
    answer = requests.post(
        f"{stack.sandbox_url}/_sandbox/inbound",
        json={**inbound, "body": "Can you move me to Friday?", "url": stack.url("waitlist-inbound-sms")},
        timeout=30,
    ).json()
    db = clients.firestore()
    request_id = f"sms-{answer['message_sid']}"
    assert wait_until(lambda: db.collection("patient_requests").document(request_id).get().exists, WAIT)

    page.goto("/operations")
    page.locator('#collections a[href="/operations/collections/patient_requests"]').click()
    row = page.locator(f'#collection-docs tr[data-id="{request_id}"]')
    expect(row).to_contain_text("reschedule")
    shoot(page, stack, "patient-requests")
    row.get_by_role("link", name="the patient's text").click()
    expect(page.locator("#body")).to_have_text("Can you move me to Friday?")


def test_a_report_emails_source_and_csv_are_one_click_away(page: Any, stack: StackConfig) -> None:
    page.goto("/?kind=report_email")
    page.locator("#outbox tbody tr a").first.click()
    page.locator("#raw-link").click()
    headers = page.locator("#headers").inner_text()
    assert "X-Message-Id" in headers and "custom_args" in headers and "@" in headers
    assert not re.search(r"[A-Za-z0-9._%+-]{2,}@", headers.split("From", 1)[1].split("\n", 1)[0])  # masked
    page.go_back()
    with page.expect_download() as download:
        page.locator('a[href*="/attachments/0"]').first.click()  # the report's CSV
    saved = artifacts(stack) / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".csv" and saved.read_text().count("\n") >= 2
