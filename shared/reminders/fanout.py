"""reminder_fanout's services: the daily tick and appointment events → scheduled messages.

A tick is planned clinic by clinic, each clinic-day a unit of its own (`run_clinic_day`): read the
clinic's appointments in the day's window (one equality + range query), plan with shared.reminders.plan,
write with MessageScheduler, record the run (shared.reminders.runs). "Now" is the tick's own time (the
CloudEvent's), so a redelivered tick plans exactly what the first delivery did. Problems with what was
sent (unknown clinic, missing appointment, a date out of range) raise `EventRejected`: the entry point
logs and acknowledges them. Transient failures propagate, or are counted in the report, which the entry
point raises after logging, so the redelivered event fills exactly the gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.contract.clinic_time import local_day_range, local_tomorrow
from shared.contract.events import AppointmentEvent, EventRejected, TickRequest
from shared.contract.models import APPOINTMENTS, CLINICS, Appointment, Clinic
from shared.messaging.ledger import Ledger
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument
from shared.platform.store import Store
from shared.reminders.plan import (
    catch_up_window,
    event_horizon,
    followup_day,
    plan_confirmation,
    plan_followup,
    plan_reminders,
    reminder_window,
)
from shared.reminders.report import FanoutReport
from shared.reminders.runs import Runs
from shared.reminders.scheduler import MessageScheduler, Queues
from shared.tasks.queue import TaskQueue

# Cloud Tasks refuses schedule times more than 30 days ahead; a tick that far out would fail forever.
MAX_DAYS_AHEAD = 25
MAX_DAYS_BACK = 7  # a replay after an outage; older days have nothing left worth sending
AUDIT_LOOKBACK = timedelta(hours=36)  # appointments written since then are checked against the contract


@dataclass(frozen=True)
class Fanout:
    """The collaborators every fan-out step needs, wired once per instance."""

    store: Store
    tasks: TaskQueue
    queues: Queues
    clock: Clock

    def scheduler(self, report: FanoutReport, clinics: dict[str, Clinic]) -> MessageScheduler:
        return MessageScheduler(
            store=self.store,
            ledger=Ledger(self.store, self.clock),
            tasks=self.tasks,
            queues=self.queues,
            report=report,
            clinics=clinics,
        )


def check_tick_date(day: date | None, now: datetime) -> None:
    if day is None:
        return
    if day > now.date() + timedelta(days=MAX_DAYS_AHEAD):
        raise EventRejected(f"tick date {day} is more than {MAX_DAYS_AHEAD} days ahead", code="date_out_of_range")
    if day < now.date() - timedelta(days=MAX_DAYS_BACK):
        raise EventRejected(f"tick date {day} is more than {MAX_DAYS_BACK} days back", code="date_out_of_range")


def run_tick(request: TickRequest, fanout: Fanout, *, now: datetime) -> FanoutReport:
    """Plan and schedule every clinic's messages for its target day (its local tomorrow by default)."""
    check_tick_date(request.date, now)
    report = FanoutReport(trigger="tick")
    clinics = _clinics(fanout.store, request.clinic_id, report)
    if request.clinic_id is None:
        audit_recent_appointments(fanout.store, now - AUDIT_LOOKBACK, report)
    for clinic in clinics:
        report.merge(run_clinic_day(clinic, request.date or local_tomorrow(now, clinic.zone), fanout, now=now))
    report.clinics = len(clinics)
    return report


def run_clinic_day(clinic: Clinic, day: date, fanout: Fanout, *, now: datetime) -> FanoutReport:
    """One clinic's local day: every message sending before its end, plus what a tick that never ran
    would have covered (shared.reminders.plan). Idempotent: a rerun after a crash fills exactly the gap."""
    report = FanoutReport(trigger="clinic_day")
    runs = Runs(fanout.store, fanout.clock)
    scheduler = fanout.scheduler(report, {clinic.id: clinic})
    first, end, horizon = reminder_window(clinic, day)
    windows = [(first, end)]
    followup_days = [followup_day(day)]
    missed = catch_up_window(clinic, day, now)
    if missed is not None and not runs.completed(clinic.id, day - timedelta(days=1)):
        windows.insert(0, missed)
        followup_days.insert(0, followup_day(day - timedelta(days=1)))
        report.problems["caught_up_missed_tick"] += 1
    for start, stop in windows:
        # Read the window whole before writing: a query stream left open while chunks flush can time out.
        for appointment in list(_appointments(fanout.store, clinic.id, start, stop, report)):
            planned = plan_reminders(appointment, clinic, now=now, horizon=horizon)
            report.appointments += bool(planned)
            scheduler.add_all(planned)
    for followups_of in followup_days:
        for appointment in list(
            _appointments(fanout.store, clinic.id, *local_day_range(followups_of, clinic.zone), report)
        ):
            followup = plan_followup(appointment, clinic, now=now)
            report.appointments += followup is not None
            scheduler.add(followup)
    scheduler.finish()
    report.clinics = 1
    if not report.failed:
        runs.record(clinic.id, day, report.summary())
    return report


def handle_appointment_event(event: AppointmentEvent, fanout: Fanout, *, now: datetime) -> FanoutReport:
    """created → confirmation + every message an earlier tick would have made; rescheduled → the same
    for the new start, no confirmation; cancelled → nothing here (the waitlist function owns it)."""
    report = FanoutReport(trigger=event.event)
    if event.is_cancellation:
        report.skipped["cancellation_handled_by_waitlist"] += 1
        return report
    doc = fanout.store.get(f"{APPOINTMENTS}/{event.appointment_id}")
    if doc is None:
        raise EventRejected(f"appointment {event.appointment_id} does not exist", code="appointment_missing")
    appointment = Appointment.from_doc(doc.id, doc.data)
    clinic = _clinic(fanout.store, appointment.clinic_id)
    report.clinics = 1
    if not appointment.is_active:
        report.skipped[f"status_{appointment.status}"] += 1
        return report
    report.appointments = 1
    scheduler = fanout.scheduler(report, {clinic.id: clinic})
    scheduler.add_all(plan_reminders(appointment, clinic, now=now, horizon=event_horizon(clinic, now)))
    if event.event == "appointment.created":
        scheduler.add(plan_confirmation(appointment, clinic, now=now))
    return scheduler.finish()


def _clinic(store: Store, clinic_id: str) -> Clinic:
    doc = store.get(f"{CLINICS}/{clinic_id}")
    if doc is None:
        raise EventRejected(f"clinic {clinic_id} does not exist", code="unknown_clinic")
    return Clinic.from_doc(doc.id, doc.data)


def _clinics(store: Store, clinic_id: str | None, report: FanoutReport) -> list[Clinic]:
    """The one clinic asked for (unknown → rejected), or every valid clinic (invalid ones counted, logged)."""
    if clinic_id is not None:
        return [_clinic(store, clinic_id)]
    clinics = []
    for doc in store.query(CLINICS):
        try:
            clinics.append(Clinic.from_doc(doc.id, doc.data))
        except InvalidDocument as exc:
            _problem(report, exc)
    return clinics


def _problem(report: FanoutReport, exc: InvalidDocument) -> None:
    report.problems[f"invalid_{exc.collection.rstrip('s')}"] += 1
    log.warning(
        "document breaks the contract; skipped",
        collection=exc.collection,
        doc_id=exc.doc_id,
        field=exc.field,
        error_code=exc.code,
    )


def _appointments(
    store: Store, clinic_id: str, first: datetime, end: datetime, report: FanoutReport
) -> Iterator[Appointment]:
    """The clinic's appointments starting in [first, end), streamed; invalid documents counted and logged."""
    query = store.query(
        APPOINTMENTS, where=[("clinic_id", "==", clinic_id), ("start", ">=", first), ("start", "<", end)]
    )
    for doc in query:
        try:
            yield Appointment.from_doc(doc.id, doc.data)
        except InvalidDocument as exc:
            _problem(report, exc)


def audit_recent_appointments(store: Store, since: datetime, report: FanoutReport) -> None:
    """Appointments written since `since` that break the contract where the clinic's range query cannot
    see them (a `start` that is not a timestamp, a `clinic_id` that is not a string): logged and counted,
    so no appointment is left unreminded without a trace."""
    for doc in store.query(
        APPOINTMENTS,
        where=[("updated_at", ">=", since)],
        fields=["clinic_id", "start", "end", "status", "patient_id", "service_name"],
    ):
        clinic_id, start = doc.get("clinic_id"), doc.get("start")
        if not isinstance(clinic_id, str) or not isinstance(start, datetime):
            field = "clinic_id" if not isinstance(clinic_id, str) else "start"
            report.problems["unreachable_appointment"] += 1
            log.warning(
                "appointment the reminders cannot find; fix the document",
                collection=APPOINTMENTS,
                doc_id=doc.id,
                field=field,
                error_code="invalid_document",
            )
