"""ops why: an appointment's timeline from the ledger, failed_tasks and the provider's outbox, built from
documents the owning modules wrote (the planner, Ledger, FailedTasks), masked and read-only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ops.__main__ import main
from ops.outbox import ProviderMessage, sent_for
from ops.why import appointment_timeline, render
from shared.contract.models import Appointment, Clinic
from shared.messaging.ledger import Planned
from shared.platform import clients
from shared.reminders.plan import plan_reminders
from shared.tasks.failed_tasks import FailedTasks
from tests.builders import CLINIC_ID, NOW, World

PHONE = "+12125551234"


class ListOutbox:
    """An outbox holding sandbox records (as GET /_sandbox/messages returns them), by recipient."""

    def __init__(self, *records: dict) -> None:
        self.records = records

    def messages_to(self, address: str) -> list[ProviderMessage]:
        return [ProviderMessage.from_sandbox(record) for record in self.records if record["to"] == address]


def planned(world: World, appointment: dict) -> dict[str, str]:
    """The appointment's reminders as the fan-out plans and records them; their keys by offset."""
    clinic = Clinic.from_doc(CLINIC_ID, world.store.doc(f"clinics/{CLINIC_ID}"))
    messages = plan_reminders(
        Appointment.from_doc(appointment["id"], world.store.doc(f"appointments/{appointment['id']}")),
        clinic,
        now=world.clock.now(),
        horizon=appointment["start"] + timedelta(days=1),
    )
    world.ledger().schedule([Planned(m.key, m.task.ledger_fields("sms"), m.skipped) for m in messages])
    return {str(m.task.offset_hours): m.key for m in messages}


def story(timeline, key):
    (found,) = [message for message in timeline.messages if message.key == key]
    return found


def test_a_reminder_that_failed_was_retried_by_an_operator_and_delivered_tells_it_in_order():
    world = World()
    appointment = world.appointment(world.patient(phone=PHONE))
    key = planned(world, appointment)["24"]
    ledger, failures = world.ledger(), FailedTasks(world.store, world.clock)
    for _ in range(2):
        world.clock.advance(minutes=1)
        claim = ledger.claim(key, ledger.read(key), {})
        ledger.release(claim, "twilio_unavailable")
    world.clock.advance(minutes=1)
    ledger.fail(ledger.claim(key, ledger.read(key), {}), "twilio_unavailable")
    failures.record(
        key,
        task_type="appointment_reminder",
        task_name="t-1",
        payload={"appointment_id": appointment["id"]},
        error_code="twilio_unavailable",
        error=f"twilio 503 sending to {PHONE}",
        http_status=503,
        attempts=3,
        clinic_id=CLINIC_ID,
    )
    world.clock.advance(minutes=10)
    failures.request_retry(key)
    requested = failures.read(key)
    assert requested is not None and failures.claim_retry(requested, 1)
    ledger.reopen(key)
    world.clock.advance(seconds=5)
    ledger.mark_sent(ledger.claim(key, ledger.read(key), {}), channel="sms", provider_message_id="SM0001")
    world.clock.advance(seconds=3)
    ledger.record_delivery(key, generation=4, message_id="SM0001", status="delivered", error_code=None)

    told = story(appointment_timeline(world.store, appointment["id"]), key)
    assert told.state == "delivered" and told.channel == "sms"
    assert [step.what for step in told.steps] == [
        "planned",
        "failed",
        "retried",
        "attempt",
        "sent",
        "delivered",
        "failed_tasks",
    ]
    failed, retried, attempt = told.steps[1:4]
    assert "twilio_unavailable, HTTP 503, after 3 attempt(s)" in failed.detail and PHONE not in failed.detail
    assert retried.detail.endswith("(retry 1)")
    assert attempt.detail == "attempt 4 began; the 3 before it failed and were retried"
    assert told.steps[-1].detail == "status now: retried"


def test_a_send_time_moved_out_of_quiet_hours_is_said_and_one_on_time_is_not():
    world = World()
    start = NOW.replace(hour=14) + timedelta(days=1)  # 09:00 in New York: the 2 h reminder is due at 07:00
    appointment = world.appointment(world.patient(), start=start)
    keys = planned(world, appointment)
    timeline = appointment_timeline(world.store, appointment["id"])
    moved, on_time = story(timeline, keys["2"]).steps[0], story(timeline, keys["24"]).steps[0]
    assert "moved out of the clinic's quiet hours (21:00–08:00 local) to the morning" in moved.detail
    assert moved.detail.startswith("to send at 2026-11-26 13:00:00Z (Thu 08:00 local); due at 2026-11-26 12:00:00Z")
    assert on_time.detail == "to send at 2026-11-25 14:00:00Z (Wed 09:00 local)"


def test_a_reminder_planned_after_its_time_is_said_to_be_a_catch_up():
    world = World()
    appointment = world.appointment(world.patient(), start=NOW + timedelta(hours=5))  # 24 h reminder overdue
    keys = planned(world, appointment)
    first = story(appointment_timeline(world.store, appointment["id"]), keys["24"]).steps[0]
    assert "already past when it was planned" in first.detail and "catch-up" in first.detail


def test_a_skipped_message_says_why():
    world = World()
    appointment = world.appointment(world.patient())
    key = planned(world, appointment)["24"]
    world.clock.advance(hours=1)
    world.ledger().skip(key, world.ledger().read(key), "cancelled", {})
    told = story(appointment_timeline(world.store, appointment["id"]), key)
    assert told.state == "skipped"
    assert [(step.what, step.detail) for step in told.steps][-1] == (
        "skipped",
        "cancelled: the appointment was cancelled",
    )


def test_a_ledger_doc_broken_by_hand_is_told_as_such_and_the_other_messages_as_they_stand():
    world = World()
    appointment = world.appointment(world.patient())
    keys = planned(world, appointment)
    world.store.put(f"notifications/{keys['24']}", {"state": "half-sent"}, merge=True)  # a state no ledger knows
    timeline = appointment_timeline(world.store, appointment["id"])
    broken, intact = story(timeline, keys["24"]), story(timeline, keys["2"])
    assert broken.state == "invalid" and (broken.steps[-1].what, broken.steps[-1].detail) == (
        "invalid",
        "the ledger doc breaks the contract at 'state': fix it",
    )
    assert intact.state == "scheduled"


def test_the_outbox_adds_the_providers_statuses_masked_and_never_a_name_text_or_treatment():
    world = World()
    appointment = world.appointment(world.patient(phone=PHONE))
    key = planned(world, appointment)["24"]
    record = {
        "id": "SM0001",
        "channel": "sms",
        "direction": "outbound",
        "to": PHONE,
        "body": "Hi Zelda, see you for your HydraFacial tomorrow",
        "status_callback": f"https://status.example.com/?ledger={key}&g=1",
        "history": [
            {"status": "queued", "at": "2026-11-25T12:00:01.000Z", "error_code": None},
            {"status": "undelivered", "at": "2026-11-25T12:00:03.000Z", "error_code": 30003},
        ],
    }
    timeline = appointment_timeline(world.store, appointment["id"], outbox=ListOutbox(record))
    provider = [step.detail for step in story(timeline, key).steps if step.what == "provider"]
    assert provider == [
        "Twilio outbox: SM0001 to +1******1234, attempt 1 queued",
        "Twilio: SM0001 undelivered, error 30003",
    ]
    assert "read: 1 of the 1 message(s)" in timeline.outbox
    printed = render(timeline)
    for secret in (PHONE, "Zelda", "Quist", "HydraFacial", "Dr. A", "example.com"):
        assert secret not in printed


def test_an_appointment_with_no_messages_says_none_was_planned():
    world = World()
    appointment = world.appointment(world.patient())
    printed = render(appointment_timeline(world.store, appointment["id"]))
    assert f"appointment {appointment['id']}: clinic {CLINIC_ID} (America/New_York)" in printed
    assert "no message planned for it" in printed


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"channel": "sms", "status_callback": "https://x/?ledger=k-1&g=3"}, ("k-1", 3)),
        ({"channel": "email", "custom_args": {"ledger_key": "k-2:2"}}, ("k-2", 2)),
        ({"channel": "email", "custom_args": {"ledger_key": "k-3"}}, ("k-3", None)),
        ({"channel": "sms"}, (None, None)),
    ],
)
def test_a_provider_message_names_the_ledger_key_and_attempt_it_was_sent_for(record, expected):
    assert sent_for(record) == expected


def test_ops_why_in_the_cloud_says_the_outbox_is_not_read(monkeypatch, capsys):
    world = World()
    appointment = world.appointment(world.patient())
    planned(world, appointment)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "medspa-test")
    for name in ("FIRESTORE_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST", "PROVIDER_SANDBOX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(clients, "store", lambda: world.store)
    assert main(["why", "--appointment", appointment["id"]]) == 0
    out = capsys.readouterr().out
    assert "provider outbox: not read: in the cloud there is none" in out and "reminder 24 h before" in out


def test_ops_why_of_an_unknown_appointment_fails(monkeypatch, capsys):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "medspa-test")
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("PROVIDER_SANDBOX_URL", raising=False)
    monkeypatch.setattr(clients, "store", lambda: World().store)
    assert main(["why", "--appointment", "appt-nope"]) == 1
    assert "no such appointment document" in capsys.readouterr().out
