"""No reminder lost silently (issue 8, bug 8): a clinic's first days in every zone of the world's
extremes, ticked by the documented `0 10 * * *` UTC schedule on MemoryStore + RecordingQueue.

After each tick every message of every appointment ahead whose nominal send time falls before the
tick's horizon (the end of the clinic's local tomorrow) has a ledger doc: scheduled with its named task,
or skipped with a reason. Before the catch-up policy, a UTC+14 clinic's first-day reminders that were
already due at the tick had no ledger doc at all, only a count in a log line.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.contract.clinic_time import in_quiet_hours, local_day_range, local_tomorrow
from shared.contract.events import TickRequest
from shared.contract.models import QuietHours
from shared.messaging.appointment_tasks import PREP, REMINDER
from shared.messaging.keys import message_key
from shared.reminders.coordinator import run_tick
from shared.reminders.fanout import Fanout
from shared.reminders.scheduler import Queues
from tests.builders import World
from tests.fakes import RecordingQueue

UTC = timezone.utc
ZONES = (
    "Pacific/Honolulu",  # UTC-10
    "Pacific/Marquesas",  # UTC-9:30
    "America/St_Johns",  # UTC-3:30 (-2:30 in summer)
    "Asia/Kolkata",  # UTC+5:30
    "Asia/Kathmandu",  # UTC+5:45
    "Pacific/Chatham",  # UTC+12:45 (+13:45 in summer)
    "Pacific/Kiritimati",  # UTC+14
)
FIRST_TICK = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # the Scheduler job: 0 10 * * * in UTC
TICKS = 3
OFFSETS = (24, 2)
LATEST_BEFORE_START = timedelta(minutes=30)
SKIP_REASONS = {"past", "too_late", "opted_out", "no_contact"}


def messages_of(appointment: dict) -> list[tuple[str, int, datetime]]:
    """(kind, lead hours, nominal send time) of every message this appointment should get."""
    leads = [(REMINDER, hours) for hours in OFFSETS]
    if appointment["requires_prep"]:
        leads.append((PREP, 48))
    return [(kind, hours, appointment["start"] - timedelta(hours=hours)) for kind, hours in leads]


@pytest.mark.parametrize("zone", ZONES)
def test_every_message_due_before_each_ticks_horizon_has_a_task_or_a_skipped_ledger_doc(zone):
    world = World()
    world.clinic(timezone=zone, reminder_offsets_hours=list(OFFSETS))
    queue = RecordingQueue()
    fanout = Fanout(
        store=world.store, tasks=queue, queues=Queues("reminders-sms", "reminders-email"), clock=world.clock
    )
    appointments = []
    start = FIRST_TICK - timedelta(hours=1)
    for index in range(int(4 * 24 * 60 / 37)):  # every 37 minutes for four days: every local hour, quiet ones too
        at = start + timedelta(minutes=37 * index)
        patient = world.patient(sms_opt_out=index % 11 == 0, email_opt_out=index % 11 == 0)
        appointments.append(
            world.appointment(patient, start=at, requires_prep=index % 3 == 0, prep_instructions="No retinoids.")
        )

    for day in range(TICKS):
        now = FIRST_TICK + timedelta(days=day)
        world.clock.instant = now
        report = run_tick(TickRequest(), fanout, now=now)
        assert report.failed == 0
        horizon = local_day_range(local_tomorrow(now, ZoneInfo(zone)), ZoneInfo(zone))[1]
        ledger = world.store.docs("notifications")
        tasks = {spec.business_key: spec for spec in queue.created}
        lost = []
        for appointment in appointments:
            if appointment["start"] <= FIRST_TICK:
                continue  # already begun when the clinic's first tick ran: nothing to remind
            for kind, hours, nominal in messages_of(appointment):
                if nominal >= horizon:
                    continue  # a later tick's
                key = message_key(kind, appointment["id"], appointment["start"], hours)
                entry = ledger.get(key)
                if entry is None:
                    lost.append((appointment["start"].isoformat(), kind, hours))
                elif entry["state"] == "scheduled":
                    assert key in tasks, f"scheduled without a task: {key}"
                    send_at = tasks[key].schedule_time
                    assert send_at is not None and send_at <= appointment["start"] - LATEST_BEFORE_START
                    assert not in_quiet_hours(send_at, ZoneInfo(zone), QuietHours())
                else:
                    assert entry["state"] == "skipped" and entry["reason"] in SKIP_REASONS, entry
                    assert key not in tasks
        assert lost == [], f"{zone}, tick {day + 1}: {len(lost)} message(s) with no ledger doc: {lost[:5]}"
        assert set(tasks) <= set(ledger)  # never a task without its ledger doc
        first_tick_tasks = [
            spec for spec in tasks.values() if spec.schedule_time is None or spec.schedule_time < FIRST_TICK
        ]
        assert first_tick_tasks == []  # nothing is scheduled in the past
