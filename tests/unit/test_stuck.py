"""A message that can no longer finish on its own (a sender dead on the last attempt) is recorded in
failed_tasks once, with a payload the retry sweep can re-send."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.keys import message_key
from shared.messaging.ledger import Ledger, Planned
from shared.messaging.stuck import record_provider_failure, record_stuck
from shared.tasks.failed_tasks import FailedTasks
from shared.tasks.router import Outcome, Status, TaskType
from tests.bodies import parse_task
from tests.fakes import FixedClock, MemoryStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
START = NOW + timedelta(days=1)
TYPES = {
    "appointment_reminder": TaskType(
        name="appointment_reminder",
        body=AppointmentTask,
        queue="reminders-sms",
        run=lambda task, attempt: Outcome(Status.DONE),
        from_ledger=AppointmentTask.from_ledger,
    )
}


def task(appointment_id: str) -> AppointmentTask:
    return AppointmentTask(
        type="appointment_reminder",
        appointment_id=appointment_id,
        clinic_id="c1",
        patient_id="p1",
        dedup_key=message_key("appointment_reminder", appointment_id, START, 24),
        send_at=START - timedelta(hours=24),
        appointment_start=START,
        offset_hours=24,
    )


def test_a_dead_senders_message_is_recorded_once_with_a_resendable_payload():
    store, clock = MemoryStore(), FixedClock(NOW)
    ledger, failures = Ledger(store, clock), FailedTasks(store, clock)
    dead, done, fresh = task("a-dead"), task("a-done"), task("a-fresh")
    ledger.schedule([Planned(t.dedup_key, t.ledger_fields("sms")) for t in (dead, done, fresh)])
    ledger.claim(dead.dedup_key, ledger.read(dead.dedup_key), {})  # then it died, on the last attempt
    claim = ledger.claim(done.dedup_key, ledger.read(done.dedup_key), {})
    ledger.mark_sent(claim, channel="sms", provider_message_id="SM" + "a" * 32)

    clock.advance(minutes=30)
    assert record_stuck(ledger, failures, TYPES, clock) == {}  # not stuck yet: retries may still come
    later = FixedClock(NOW + timedelta(hours=2))
    recent = Ledger(store, FixedClock(later.now() - timedelta(minutes=5)))
    recent.claim(fresh.dedup_key, recent.read(fresh.dedup_key), {})  # a sender at work minutes ago: not stuck
    assert record_stuck(Ledger(store, later), failures, TYPES, later) == {"recorded": 1}
    record = store.stored(f"failed_tasks/{dead.dedup_key}")
    assert record["error_code"] == "stuck_sending" and record["status"] == "open"
    assert parse_task(record["payload"], AppointmentTask) == dead
    store.update(f"failed_tasks/{dead.dedup_key}", {"status": "retry"})  # the operator's answer stands
    assert record_stuck(Ledger(store, later), failures, TYPES, later) == {"already_recorded": 1}
    assert store.stored(f"failed_tasks/{dead.dedup_key}")["status"] == "retry"


def sent(ledger: Ledger, reminder: AppointmentTask, sid: str) -> None:
    ledger.schedule([Planned(reminder.dedup_key, reminder.ledger_fields("sms"))])
    claim = ledger.claim(reminder.dedup_key, ledger.read(reminder.dedup_key), {})
    ledger.mark_sent(claim, channel="sms", provider_message_id=sid)


def test_a_message_the_provider_failed_after_accepting_it_is_recorded_with_a_resendable_payload():
    store, clock = MemoryStore(), FixedClock(NOW)
    ledger, failures = Ledger(store, clock), FailedTasks(store, clock)
    dead_number, sid = task("a-dead-number"), "SM" + "b" * 32
    sent(ledger, dead_number, sid)
    outcome = ledger.record_delivery(
        dead_number.dedup_key, generation=1, message_id=sid, status="undelivered", error_code="30005"
    )
    assert outcome == "failed"
    assert record_provider_failure(ledger, failures, TYPES, dead_number.dedup_key) is True
    record = store.stored(f"failed_tasks/{dead_number.dedup_key}")
    assert record["error_code"] == "provider_30005" and record["status"] == "open" and record["http_status"] == 0
    assert "undelivered" in record["error"] and "30005" in record["error"]
    assert parse_task(record["payload"], AppointmentTask) == dead_number and record["clinic_id"] == "c1"
    # A replayed callback after an operator's answer leaves their record as it is.
    store.update(f"failed_tasks/{dead_number.dedup_key}", {"status": "resolved"})
    assert record_provider_failure(ledger, failures, TYPES, dead_number.dedup_key, replayed=True) is False
    assert store.stored(f"failed_tasks/{dead_number.dedup_key}")["status"] == "resolved"


def test_only_a_provider_failed_message_is_recorded_by_the_webhook():
    store, clock = MemoryStore(), FixedClock(NOW)
    ledger, failures = Ledger(store, clock), FailedTasks(store, clock)
    delivered, own, unknown = task("a-delivered"), task("a-own"), task("a-unknown")
    sent(ledger, delivered, "SM" + "c" * 32)
    ledger.record_delivery(
        delivered.dedup_key, generation=1, message_id="SM" + "c" * 32, status="delivered", error_code=None
    )
    ledger.schedule([Planned(own.dedup_key, own.ledger_fields("sms"))])
    ledger.fail(ledger.claim(own.dedup_key, ledger.read(own.dedup_key), {}), "twilio_21211")  # the router records it
    for key in (delivered.dedup_key, own.dedup_key, unknown.dedup_key):
        assert record_provider_failure(ledger, failures, TYPES, key) is False
    assert store.docs("failed_tasks") == {}
