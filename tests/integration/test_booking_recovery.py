"""Abandoned-booking recovery through the real local stack (docs/booking-recovery.md): the booking platform's
session written on the Firestore emulator and its events published to appointment-events, the nudges as named
Cloud Tasks run by the task handler on the stack's clock, the SMS through the Twilio sandbox, and the restore
link followed on the booking-restore function.

Each test's clinic has its own sender number (tests/waitlist_live.py), so its SMS are its own. The session
starts on a weekday at 10:00 in New York (the clinic's zone); the stack's clock stands just before the first
nudge's time when the events arrive (the Cloud Tasks wrapper judges a task's wait on the stack's clock when it
is created), so the first nudge is due within seconds, and then just past the second's, whose task is delivered
as Cloud Tasks would deliver it then. No test waits an hour, and none depends on how long anything took.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from shared.booking_recovery.tasks import NudgeTask, nudge_key
from shared.platform import clients
from shared.platform.settings import settings
from tests.handler_support import post
from tests.integration.test_waitlist import live  # noqa: F401  (the fixture: one clinic and its sender per test)
from tests.polling import eventually
from tests.stack_logs import FunctionLogs, publish
from tests.waitlist_live import WAIT, Live

pytestmark = pytest.mark.integration

PATTERN = "https://book.example.com/resume?s={session_id}"


def weekday_morning() -> datetime:
    """10:00 in New York (15:00 UTC, outside the clinic's quiet hours) on a weekday a few days ahead."""
    day = datetime.now(timezone.utc).date() + timedelta(days=3)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 15, 0, tzinfo=timezone.utc)


class Recovery:
    """One clinic with recovery on, one patient and their booking session on the emulator."""

    def __init__(self, world: Live, started: datetime) -> None:
        self.world, self.started = world, started
        self.store = world.store
        clinic = f"clinics/{world.scene.clinic_id}"
        self.store.put(clinic, {"booking_recovery": {"enabled": True, "restore_url": PATTERN}}, merge=True)
        self.patient = world.scene.patient()
        self.session = f"sess-{uuid.uuid4().hex[:12]}"
        self.store.put(
            f"booking_sessions/{self.session}",
            {
                "clinic_id": world.scene.clinic_id,
                "patient_id": self.patient,
                "service_name": "HydraFacial",
                "slot_start": started + timedelta(days=2),
                "started_at": started,
                "status": "started",
            },
        )

    def publish(self, *events: dict[str, Any]) -> list[str]:
        return publish(self.world.stack, "appointment-events", [json.dumps(e).encode() for e in events])

    def event(self, kind: str) -> dict[str, str]:
        return {"event": kind, "session_id": self.session}

    def entry(self, nudge: int) -> dict[str, Any]:
        found = self.store.get(f"notifications/{nudge_key(self.session, nudge)}")
        return found.data if found is not None else {}

    def record(self) -> dict[str, Any]:
        found = self.store.get(f"booking_recoveries/{self.session}")
        return found.data if found is not None else {}

    def sms(self) -> list[dict[str, Any]]:
        return [
            m
            for m in self.world.sandbox.messages(channel="sms")
            if m["direction"] == "outbound" and m["from"] == self.world.scene.sms_from
        ]


def test_a_started_booking_gets_one_nudge_with_a_working_link_and_completion_stops_the_second(live):  # noqa: F811
    world: Live = live()
    start = weekday_morning()
    world.move_clock(start + timedelta(minutes=59, seconds=50))
    booking = Recovery(world, start)
    logs = FunctionLogs(world.stack, "appointment-events", WAIT)
    # started, redelivered, then abandoned by the platform's timeout: two nudges planned, once
    ids = booking.publish(booking.event("booking.started"), booking.event("booking.started"))
    ids += booking.publish(booking.event("booking.abandoned"))
    done = logs.wait_for(
        lambda line: line.get("event_id") in ids and line.get("message") == "appointment event done", 3
    )
    assert sorted(line["created"] for line in done) == [0, 0, 2]
    assert booking.entry(1)["state"] == booking.entry(2)["state"] == "scheduled"
    assert booking.record()["status"] == "abandoned"

    eventually(lambda: booking.entry(1).get("state") in ("sent", "delivered"), WAIT)
    (nudge,) = booking.sms()
    assert nudge["to"] == world.phone(booking.patient) and "HydraFacial" not in nudge["body"]
    link = next(word for word in nudge["body"].split() if word.startswith(world.stack.url("booking-restore")))
    assert booking.session not in link  # the token is opaque: ids signed, nothing readable
    answer = requests.get(link, allow_redirects=False, timeout=30)
    assert answer.status_code == 302 and answer.headers["Location"] == PATTERN.format(session_id=booking.session)
    record = booking.record()
    assert record["nudges_sent"] == 1 and record["clicks"] == 1

    completed = booking.publish(booking.event("booking.completed"))
    logs.wait_for(lambda line: line.get("event_id") in completed and line.get("message") == "appointment event done")
    assert booking.record()["status"] == "completed"
    world.move_clock(start + timedelta(days=1, minutes=1))
    second = booking.entry(2)
    task = NudgeTask(
        booking.session, world.scene.clinic_id, booking.patient, nudge_key(booking.session, 2), second["send_at"], 2
    )
    answer = post(world.stack, task.to_json())  # delivered as Cloud Tasks would, a day on
    assert answer.status_code == 200 and "skipped" in answer.text, answer.text
    assert (booking.entry(2)["state"], booking.entry(2)["reason"]) == ("skipped", "completed")

    replay = booking.publish(booking.event("booking.started"))  # a late redelivery changes nothing
    logs.wait_for(lambda line: line.get("event_id") in replay and line.get("message") == "appointment event done")
    assert booking.entry(1)["state"] in ("sent", "delivered") and booking.entry(2)["state"] == "skipped"
    assert len(booking.sms()) == 1
    # the second nudge's own task is still queued for a day of real time: nothing of this test is left behind
    clients.tasks().purge_queue(name=world.stack.queue_path(settings().queue_sms))


def test_bad_booking_events_are_rejected_by_code_and_acknowledged_and_a_bad_link_gets_a_page(live):  # noqa: F811
    world: Live = live()
    world.move_clock(weekday_morning())
    booking = Recovery(world, weekday_morning())
    good = booking.store.get(f"booking_sessions/{booking.session}")
    assert good is not None
    ghost = f"ghost-{uuid.uuid4().hex[:8]}"
    world.store.put(f"booking_sessions/{ghost}", {**good.data, "patient_id": "nobody-" + ghost})
    stranger = f"stranger-{uuid.uuid4().hex[:8]}"
    world.store.put(f"booking_sessions/{stranger}", {**good.data, "clinic_id": "nowhere-" + stranger})
    broken = f"broken-{uuid.uuid4().hex[:8]}"
    world.store.put(f"booking_sessions/{broken}", {"clinic_id": world.scene.clinic_id, "status": "started"})
    logs = FunctionLogs(world.stack, "appointment-events", WAIT)
    bridge = FunctionLogs(world.stack, "pubsub_bridge", WAIT)
    bad = booking.publish(
        {"event": "booking.started", "session_id": f"missing-{uuid.uuid4().hex[:8]}"},
        {"event": "booking.started", "session_id": ghost},
        {"event": "booking.abandoned", "session_id": stranger},
        {"event": "booking.started", "session_id": broken},
        {"event": "booking.started", "session_id": booking.session, "patient_id": booking.patient},
        {"event": "booking.completed", "session_id": 42},
    )
    rejected = logs.wait_for(lambda line: line.get("event_id") in bad and bool(line.get("error_code")), len(bad))
    assert sorted(line["error_code"] for line in rejected) == sorted(
        ["session_missing", "patient_missing", "unknown_clinic", "invalid_session", "unknown_field", "bad_session_id"]
    )
    assert {line["message"] for line in rejected} == {"appointment event rejected; acknowledged"}
    delivered = bridge.wait_for(lambda line: line.get("messageId") in bad and line.get("message") == "delivered", 12)
    assert all(200 <= line["status"] < 300 for line in delivered)  # acknowledged, never redelivered
    assert not [line for line in bridge.lines() if line.get("messageId") in bad and line.get("message") != "delivered"]
    assert not booking.store.get(f"booking_recoveries/{ghost}") and not booking.entry(1)

    url = world.stack.url("booking-restore")
    forged = requests.get(f"{url}b1.e30.forged", allow_redirects=False, timeout=30)
    empty = requests.get(url, allow_redirects=False, timeout=30)
    cut = requests.get(f"{url}{'x' * 5000}", allow_redirects=False, timeout=30)
    assert [forged.status_code, empty.status_code, cut.status_code] == [404, 404, 404]
    assert "not valid" in forged.text and "Location" not in forged.headers
    assert requests.post(url, timeout=30).status_code == 405
