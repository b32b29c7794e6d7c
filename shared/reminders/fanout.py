"""reminder_fanout's services: the daily tick and appointment events → scheduled messages.

Reads clinics and appointments (one equality + range query per clinic and window; the stand-in ignores
cursors, so a window is streamed whole), plans with `reminder_plan`, writes with `MessageScheduler`.
Problems with what was sent (unknown clinic, missing appointment) raise `EventRejected`: the entry point
logs and acknowledges them. Transient failures propagate, or are counted in the report, which the entry
point raises after logging, so the redelivered event fills exactly the gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from shared.contract.clinic_time import local_day_range, local_tomorrow
from shared.contract.events import AppointmentEvent, EventRejected, TickRequest
from shared.contract.models import Appointment, Clinic
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument
from shared.platform.settings import Settings
from shared.reminders.plan import (
    event_horizon,
    followup_day,
    plan_confirmation,
    plan_followup,
    plan_reminders,
    reminder_window,
)
from shared.reminders.scheduler import FanoutReport, MessageScheduler
from shared.tasks.queue import TaskQueue

# Cloud Tasks refuses schedule times more than 30 days ahead; a tick that far out would fail forever.
MAX_DAYS_AHEAD = 25


def run_tick(request: TickRequest, *, db: Any, tasks: TaskQueue, settings: Settings, clock: Clock) -> FanoutReport:
    """Plan and schedule every clinic's messages for its target day (its local tomorrow by default)."""
    now = clock.now()
    if request.date is not None and request.date > now.date() + timedelta(days=MAX_DAYS_AHEAD):
        raise EventRejected(f"tick date {request.date} is more than {MAX_DAYS_AHEAD} days ahead",
                            code="date_out_of_range")
    report = FanoutReport(trigger="tick")
    clinics = _clinics(db, request.clinic_id, report)
    scheduler = MessageScheduler(db=db, tasks=tasks, settings=settings, clock=clock, report=report,
                                 clinics={clinic.id: clinic for clinic in clinics})
    for clinic in clinics:
        day = request.date or local_tomorrow(now, clinic.zone)
        report.clinics += 1
        first, end, horizon = reminder_window(clinic, day)
        # Read the window whole before writing: a query stream left open while chunks flush can time out.
        for appointment in list(_appointments(db, clinic.id, first, end, report)):
            decisions = plan_reminders(appointment, clinic, now=now, horizon=horizon)
            report.appointments += bool(decisions)
            for decision in decisions:
                scheduler.add(decision)
        week_ago = local_day_range(followup_day(day), clinic.zone)
        for appointment in list(_appointments(db, clinic.id, *week_ago, report)):
            followup = plan_followup(appointment, clinic, now=now)
            report.appointments += followup is not None
            scheduler.add(followup)
    return scheduler.finish()


def handle_appointment_event(
    event: AppointmentEvent, *, db: Any, tasks: TaskQueue, settings: Settings, clock: Clock
) -> FanoutReport:
    """created → confirmation + every message an earlier tick would have made; rescheduled → the same
    for the new start, no confirmation; cancelled → nothing here (the waitlist function owns it)."""
    report = FanoutReport(trigger=event.event)
    if event.is_cancellation:
        report.skipped["cancellation_handled_by_waitlist"] += 1
        return report
    snapshot = db.collection("appointments").document(event.appointment_id).get()
    if not snapshot.exists:
        raise EventRejected(f"appointment {event.appointment_id} does not exist", code="appointment_missing")
    appointment = Appointment.from_doc(snapshot.id, snapshot.to_dict())
    clinic = _clinic(db, appointment.clinic_id)
    report.clinics = 1
    if not appointment.is_active:
        report.skipped[f"status_{appointment.status}"] += 1
        return report
    now = clock.now()
    report.appointments = 1
    scheduler = MessageScheduler(db=db, tasks=tasks, settings=settings, clock=clock, report=report,
                                 clinics={clinic.id: clinic})
    for decision in plan_reminders(appointment, clinic, now=now, horizon=event_horizon(clinic, now)):
        scheduler.add(decision)
    if event.event == "appointment.created":
        scheduler.add(plan_confirmation(appointment, clinic, now=now))
    return scheduler.finish()


def _clinic(db: Any, clinic_id: str) -> Clinic:
    snapshot = db.collection("clinics").document(clinic_id).get()
    if not snapshot.exists:
        raise EventRejected(f"clinic {clinic_id} does not exist", code="unknown_clinic")
    return Clinic.from_doc(snapshot.id, snapshot.to_dict())


def _clinics(db: Any, clinic_id: str | None, report: FanoutReport) -> list[Clinic]:
    """The one clinic asked for (unknown → rejected), or every valid clinic (invalid ones counted, logged)."""
    if clinic_id is not None:
        return [_clinic(db, clinic_id)]
    clinics = []
    for snapshot in db.collection("clinics").stream():
        try:
            clinics.append(Clinic.from_doc(snapshot.id, snapshot.to_dict()))
        except InvalidDocument as exc:
            report.skipped["invalid_clinic"] += 1
            log.warning("clinic skipped: invalid document", clinic_id=snapshot.id, field=exc.field,
                        error_code=exc.code)
    return clinics


def _appointments(
    db: Any, clinic_id: str, first: datetime, end: datetime, report: FanoutReport
) -> Iterator[Appointment]:
    """The clinic's appointments starting in [first, end), streamed; invalid documents counted and logged."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    query = (db.collection("appointments")
             .where(filter=FieldFilter("clinic_id", "==", clinic_id))
             .where(filter=FieldFilter("start", ">=", first))
             .where(filter=FieldFilter("start", "<", end)))
    for snapshot in query.stream():
        try:
            yield Appointment.from_doc(snapshot.id, snapshot.to_dict())
        except InvalidDocument as exc:
            report.skipped["invalid_appointment"] += 1
            log.warning("appointment skipped: invalid document", appointment_id=snapshot.id, field=exc.field,
                        error_code=exc.code)
