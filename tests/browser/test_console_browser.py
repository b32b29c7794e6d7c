"""The local console in a real browser, on what the quick demo left: the outbox lists the demo's messages
and follows new ones live, a search narrows it, a message opens with its timeline, a reply as the patient
lands as an inbound message and changes Firestore, and a retry from the operations page re-enqueues a
failed task exactly once. Screenshots: <state dir>/artifacts/console/."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from local.config import StackConfig
from local.processes import wait_until
from local.sandbox.console.conversations import thread_id
from shared.platform import clients
from tests.browser.conftest import artifacts
from tests.handler_support import World, post

pytestmark = pytest.mark.integration
expect = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed").expect

WAIT = 30.0


def rows(page: Any) -> list[str]:
    return page.locator("#outbox tbody tr").evaluate_all("rows => rows.map(r => r.innerText)")


def shoot(page: Any, stack: StackConfig, name: str) -> None:
    page.screenshot(path=str(artifacts(stack) / f"{name}.png"), full_page=True)


def test_the_outbox_lists_the_demos_messages_and_follows_new_ones_without_a_reload(
    page: Any, stack: StackConfig
) -> None:
    page.goto("/")
    listed = rows(page)
    assert len(listed) >= 100 and any("Bandra Skin & Laser" in row for row in listed)
    recipients = page.locator("#outbox tbody tr td:nth-child(5)").all_inner_texts()
    assert all("***" in to and not re.search(r"\+\d{8,}", to) for to in recipients)  # masked
    shoot(page, stack, "outbox")

    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator("#live-state")).to_have_text("live")  # the event stream is open
    sms = next(m for m in requests.get(f"{stack.sandbox_url}/_sandbox/messages?channel=sms", timeout=10).json())
    requests.post(
        f"{stack.sandbox_url}/_sandbox/inbound",
        json={
            "from": sms["to"],
            "to": sms["from"] or sms["messaging_service_sid"],
            "body": "Thanks!",
            "url": stack.url("waitlist-inbound-sms"),
        },
        timeout=30,
    )
    # At the top with the automatic reply it may bring (newest arrival first): whichever arrived last leads.
    expect(page.locator("#outbox tbody tr", has_text="Thanks!")).to_have_count(1, timeout=WAIT * 1000)
    assert page.evaluate("window.stillTheSamePage") is True  # a fragment was swapped in, the page stayed


def test_a_search_narrows_the_outbox(page: Any, stack: StackConfig) -> None:
    page.goto("/")
    everything = len(rows(page))
    page.get_by_label("search messages").fill("Bandra")
    page.get_by_label("Channel").select_option("sms")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"q=Bandra"))

    narrowed = rows(page)
    assert 0 < len(narrowed) < everything
    assert all("Bandra Skin & Laser" in row and "sms" in row for row in narrowed)
    shoot(page, stack, "outbox-search")


def test_a_message_opens_with_its_delivery_timeline(page: Any, stack: StackConfig) -> None:
    page.goto("/?q=Bandra&channel=sms")
    page.locator("#outbox tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/messages/SM"))

    steps = page.locator("ol.timeline li").all_inner_texts()
    assert any("Twilio: queued" in s for s in steps) and any("Twilio: delivered" in s for s in steps)
    assert any("posted to twilio-status: answered 200" in s for s in steps)
    assert page.locator("#body").inner_text().strip()  # the whole message
    shoot(page, stack, "message-sms")

    page.goto("/?kind=report_email")
    page.locator("#outbox tbody tr a").first.click()
    frame = page.locator("iframe.email")
    assert frame.get_attribute("sandbox") == "" and frame.get_attribute("srcdoc")
    assert page.frame_locator("iframe.email").locator("body").inner_text()  # the HTML part rendered
    shoot(page, stack, "message-report-email")
    frame.screenshot(path=str(artifacts(stack) / "message-report-email-html.png"))  # full-page shots skip frames


def test_a_reply_as_the_patient_lands_as_an_inbound_message_and_changes_firestore(
    page: Any, stack: StackConfig
) -> None:
    messages = requests.get(f"{stack.sandbox_url}/_sandbox/messages?channel=sms&direction=outbound", timeout=10).json()
    target = next(m for m in messages if m["to"].startswith("+44"))  # a Marylebone patient
    thread = thread_id(target)
    db = clients.firestore()
    before = {snapshot.id for snapshot in db.collection("patient_requests").stream()}

    page.goto("/conversations")
    page.locator(f'a[href="/conversations/{thread}"]').click()
    page.get_by_label("reply text").fill("Could we reschedule to Friday afternoon?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"\?sent=SM"))

    assert "the webhook answered 200" in page.locator("#outcome").inner_text()
    inbound = page.locator('.bubble[data-direction="inbound"]').last.inner_text()
    assert "Could we reschedule to Friday afternoon?" in inbound
    assert page.locator('.bubble[data-direction="reply"]').count() >= 1  # the TwiML answer, sent back

    def new_request() -> list[dict[str, Any]]:
        return [s.to_dict() or {} for s in db.collection("patient_requests").stream() if s.id not in before]

    assert wait_until(lambda: bool(new_request()), WAIT)
    [request] = new_request()
    patient = db.collection("patients").document(request["patient_id"]).get().to_dict()
    assert patient is not None
    assert (request["kind"], request["source"], patient["phone"]) == ("reschedule", "sms", target["to"])
    shoot(page, stack, "conversation")


def _failure(stack: StackConfig) -> tuple[str, str]:
    """A reminder that failed for good (Twilio 21211 and no email): (failed_tasks id, the patient's phone)."""
    world = World(clients.firestore())
    patient = world.patient(email=None)
    phone = world.phones[-1]
    rule: dict[str, Any] = {"channel": "sms", "kind": "twilio_code", "code": 21211, "to": phone, "times": 1}
    assert requests.post(f"{stack.sandbox_url}/_sandbox/faults", json=rule, timeout=10).status_code == 201
    task = world.task(world.appointment(patient))
    assert post(stack, task.to_json()).status_code == 200
    assert world.failed(task.dedup_key)[0]["status"] == "open"
    return task.dedup_key, phone


def test_a_retry_from_the_operations_page_re_enqueues_a_failed_task_exactly_once(page: Any, stack: StackConfig) -> None:
    db = clients.firestore()
    first, first_phone = _failure(stack)
    second, _ = _failure(stack)

    def doc(key: str) -> dict[str, Any]:
        return db.collection("failed_tasks").document(key).get().to_dict() or {}

    def sent_to(phone: str) -> int:
        listed = requests.get(f"{stack.sandbox_url}/_sandbox/messages", params={"to": phone}, timeout=10).json()
        return len([m for m in listed if m["direction"] == "outbound"])

    page.goto("/operations")
    page.locator(f'tr[data-id="{first}"] button[aria-label="set status retry"]').click()
    assert "status set to retry" in page.locator("#outcome").inner_text()
    assert doc(first)["status"] == "retry" and doc(first)["error_code"] == "invalid_number"  # one field edited
    page.get_by_role("button", name="Run the sweep now").click()
    assert "Published message" in page.locator("#outcome").inner_text()
    assert wait_until(lambda: doc(first).get("status") == "retried" and sent_to(first_phone) == 1, WAIT), doc(first)
    shoot(page, stack, "operations-retried")

    # A second sweep, proven to have run by the second doc it retries, leaves the first alone.
    page.locator(f'tr[data-id="{second}"] button[aria-label="set status retry"]').click()
    page.get_by_role("button", name="Run the sweep now").click()
    assert wait_until(lambda: doc(second).get("status") == "retried", WAIT), doc(second)
    assert doc(first)["retry_generation"] == 1 and sent_to(first_phone) == 1
    ledger = db.collection("notifications").document(first).get().to_dict()
    assert ledger is not None
    assert ledger["state"] in ("sent", "delivered") and ledger["provider_message_id"]
