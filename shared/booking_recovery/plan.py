"""When a booking session's nudges go (pure; docs/booking-recovery.md, "Timing").

The clinic's delays (default 60 min and 24 h) count from the session's `started_at`; each nudge is moved
out of the clinic's quiet hours (forward, to the morning) as reminders are. A nudge that would go later than
30 minutes before the slot is recorded skipped ("too_late"). One already due when planned (an event that
arrived late, a booking.abandoned after the first delay) goes at once or at the end of the quiet hours it is
in, if it is the latest one due and no later nudge follows within the hour; an earlier one is skipped "past".
Every skip is a ledger doc with its reason, like the reminders'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.booking_recovery.sessions import BookingSession
from shared.booking_recovery.tasks import NudgeTask, nudge_key
from shared.contract.clinic_time import shift_out_of_quiet_hours
from shared.contract.models import Clinic
from shared.reminders.plan import LATER_REMINDER_COVERS, LATEST_BEFORE_START, catch_up_time


@dataclass(frozen=True)
class PlannedNudge:
    """One intended nudge: its task (ids only) and, when it must not go out, why (the scheduler's Schedulable)."""

    task: NudgeTask
    skipped: str | None = None  # "past" | "too_late": recorded in the ledger, never sent

    @property
    def key(self) -> str:
        return self.task.dedup_key


def _nudge(session: BookingSession, number: int, send_at: datetime, skipped: str | None = None) -> PlannedNudge:
    task = NudgeTask(
        session_id=session.id,
        clinic_id=session.clinic_id,
        patient_id=session.patient_id,
        dedup_key=nudge_key(session.id, number),
        send_at=send_at,
        nudge=number,
    )
    return PlannedNudge(task, skipped)


def plan_nudges(session: BookingSession, clinic: Clinic, *, now: datetime) -> list[PlannedNudge]:
    """The session's nudges at the clinic's delays (none when the clinic's recovery is off)."""
    settings = clinic.booking_recovery
    if not settings.enabled:
        return []
    latest = session.slot_start - LATEST_BEFORE_START
    timed = [
        (
            number,
            shift_out_of_quiet_hours(session.started_at + timedelta(minutes=minutes), clinic.zone, clinic.quiet_hours),
        )
        for number, minutes in enumerate(settings.delays_minutes, start=1)
    ]
    catch_up = catch_up_time(clinic, now, latest)
    upcoming = [send_at for _, send_at in timed if now <= send_at <= latest]
    last_due = max((number for number, send_at in timed if send_at < now), default=None)
    planned = []
    for number, send_at in timed:
        if send_at > latest:
            planned.append(_nudge(session, number, send_at, skipped="too_late"))
        elif send_at >= now:
            planned.append(_nudge(session, number, send_at))
        elif (
            number == last_due
            and catch_up is not None
            and not any(later - catch_up < LATER_REMINDER_COVERS for later in upcoming)
        ):
            planned.append(_nudge(session, number, catch_up))
        else:
            planned.append(_nudge(session, number, send_at, skipped="past"))
    return planned
