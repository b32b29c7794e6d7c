"""reminder_fanout's services: the units of a reminders tick and appointment events → scheduled messages.

A tick is planned clinic by clinic, each clinic-day a unit of its own (`run_unit`): read the clinic's
appointments in the day's windows (one equality + range query each), plan with shared.reminders.plan,
write with MessageScheduler, record the day (shared.reminders.planned_days). In the cloud each unit runs
in its own invocation, enqueued by shared.reminders.coordinator; `coordinator.run_tick` runs the same
units in one process (operators' replays, tests). "Now" is the tick's own time (the CloudEvent's, carried
by every unit), so a redelivered tick or unit plans exactly what the first delivery did. A clinic-day
with more appointments than one invocation should take (`Fanout.max_day_appointments`) is split into
shards of `Fanout.shard_appointments` (shared.reminders.shards), each a unit enqueued by the one that
split. Problems with what was sent (unknown clinic, missing appointment, a date out of range) raise
`EventRejected`: the entry point logs and acknowledges them. Transient failures propagate, or are
counted in the summary, which the entry point raises after logging, so the redelivered event or unit
fills exactly the gap.

A group booking's seats (docs/groups.md) are planned with their group, read in one batched read per unit or
event; a seat whose group is missing or broken is counted in the summary's problems (the tick) or rejected
with its code (an event), a cancelled group's seats are skipped: never a 5xx.

Appointments are read with the fields the plan needs only (`PLAN_FIELDS`): a document whose other
fields break the contract is caught where they are read, at send time (the handler's failed_tasks).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.contract.clinic_time import local_day_range
from shared.contract.clinics import named_clinic
from shared.contract.events import AppointmentEvent, EventRejected
from shared.contract.models import APPOINTMENTS, Appointment, Clinic
from shared.groups.model import GROUP_CANCELLED, Group, read_groups, seat_problem
from shared.messaging.ledger import Ledger
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import ConfigError, InvalidDocument, PermanentError
from shared.platform.store import Store
from shared.rebooking.plan import no_show_days, plan_no_show, plan_rebook, rebook_days
from shared.reminders.fanout_summary import FanoutSummary
from shared.reminders.plan import (
    catch_up_window,
    checkin_day,
    event_horizon,
    followup_day,
    plan_checkin,
    plan_confirmation,
    plan_followup,
    plan_reminders,
    reminder_window,
)
from shared.reminders.planned_days import PlannedDays
from shared.reminders.scheduler import MessageScheduler, Queues
from shared.reminders.shards import cut, plan_id
from shared.reminders.units import (
    AUDIT,
    CHECKINS,
    CLINIC_DAY,
    FOLLOWUPS,
    MAX_SHARDS,
    NO_SHOWS,
    REBOOKS,
    REMINDERS,
    UNIT_NOTES,
    AuditTask,
    ClinicDayTask,
    Window,
)
from shared.tasks.declaration import Declaration, Queue, Service
from shared.tasks.queue import TaskQueue, TaskSpec, create_all
from shared.tasks.router import Attempt, Outcome, Status

# Cloud Tasks refuses schedule times more than 30 days ahead; a tick that far out would fail forever.
MAX_DAYS_AHEAD = 25
MAX_DAYS_BACK = 7  # a replay after an outage; older days have nothing left worth sending
AUDIT_LOOKBACK = timedelta(hours=36)  # appointments written since then are checked against the contract
# A clinic-day of more appointments is split; a shard holds about this many. Chosen from measured unit
# times and memory (docs/deploy.md, "Fan-out sizes"): far inside one invocation's limits.
MAX_DAY_APPOINTMENTS = 2000
SHARD_APPOINTMENTS = 1500
CREATE_CONCURRENCY = 32  # CreateTask calls in flight per unit (docs/deploy.md, "Fan-out sizes")
PLAN_FIELDS = ("clinic_id", "patient_id", "service_name", "requires_prep", "start", "end", "status", "group_id")
AUDIT_FIELDS = ("clinic_id", "start")


@dataclass(frozen=True)
class UnitQueue:
    """Where units go: the fan-out queue, through a TaskQueue aimed at the reminder-fanout-unit function."""

    tasks: TaskQueue
    queue: str


@dataclass(frozen=True)
class Fanout:
    """The collaborators every fan-out step needs, wired once per instance."""

    store: Store
    tasks: TaskQueue
    queues: Queues
    clock: Clock
    units: UnitQueue | None = None  # None: nothing is enqueued as a unit, a large day is not split
    max_day_appointments: int = MAX_DAY_APPOINTMENTS
    shard_appointments: int = SHARD_APPOINTMENTS
    create_concurrency: int = CREATE_CONCURRENCY

    def scheduler(self, report: FanoutSummary, clinics: dict[str, Clinic]) -> MessageScheduler:
        return MessageScheduler(
            store=self.store,
            ledger=Ledger(self.store, self.clock),
            tasks=self.tasks,
            queues=self.queues,
            report=report,
            clinics=clinics,
            concurrency=self.create_concurrency,
        )


def check_tick_date(day: date | None, now: datetime) -> None:
    if day is None:
        return
    if day > now.date() + timedelta(days=MAX_DAYS_AHEAD):
        raise EventRejected(f"tick date {day} is more than {MAX_DAYS_AHEAD} days ahead", code="date_out_of_range")
    if day < now.date() - timedelta(days=MAX_DAYS_BACK):
        raise EventRejected(f"tick date {day} is more than {MAX_DAYS_BACK} days back", code="date_out_of_range")


def day_windows(
    clinic: Clinic, day: date, now: datetime, planned_days: PlannedDays, report: FanoutSummary
) -> list[Window]:
    """What the tick for `day` covers: every message sending before its end, plus what a tick that never ran
    would have covered (shared.reminders.plan), as windows of appointment starts."""
    first, end, _ = reminder_window(clinic, day)
    windows = [Window(REMINDERS, first, end)]
    followup_days = [followup_day(day)]
    checkin_days = [checkin_day(day)] if clinic.feedback.checkin_days else []
    missed = catch_up_window(clinic, day, now)
    caught_up = False
    if missed is not None and not planned_days.completed(clinic.id, day - timedelta(days=1)):
        caught_up = True
        windows.insert(0, Window(REMINDERS, *missed))
        followup_days.insert(0, followup_day(day - timedelta(days=1)))
        checkin_days[:0] = [checkin_day(day - timedelta(days=1))] if checkin_days else []
        report.problems["caught_up_missed_tick"] += 1
    return (
        windows
        + [Window(FOLLOWUPS, *local_day_range(d, clinic.zone)) for d in followup_days]
        + [Window(REBOOKS, *local_day_range(d, clinic.zone)) for d in rebook_days(clinic, day, caught_up=caught_up)]
        + [
            Window(NO_SHOWS, *local_day_range(d, clinic.zone))
            for d in (no_show_days(day, caught_up=caught_up) if clinic.no_show_message else [])
        ]
        + [Window(CHECKINS, *local_day_range(d, clinic.zone)) for d in checkin_days]
    )


def _plan(
    clinic: Clinic,
    day: date,
    windows: Sequence[tuple[Window, Sequence[Appointment]]],
    fanout: Fanout,
    report: FanoutSummary,
    *,
    now: datetime,
) -> None:
    """Plan and write the messages of these windows' appointments (read before the first write: a query
    stream left open while chunks flush can time out)."""
    horizon = reminder_window(clinic, day)[2]
    scheduler = fanout.scheduler(report, {clinic.id: clinic})
    seats = [a for w, appointments in windows if w.kind == REMINDERS for a in appointments if a.group_id]
    groups = read_groups(fanout.store, [a.group_id for a in seats if a.group_id])
    for seat in seats:
        problem = seat_problem(groups.get(seat.group_id or ""), seat) if seat.is_active else None
        if problem is not None:
            count_seat_problem(report, problem, seat)
    for window, appointments in windows:
        for appointment in appointments:
            if window.kind == REMINDERS:
                group = groups.get(appointment.group_id) if appointment.group_id else None
                planned = plan_reminders(appointment, clinic, now=now, horizon=horizon, group=group)
                report.appointments += bool(planned)
                scheduler.add_all(planned)
            elif window.kind == REBOOKS:
                nudge = plan_rebook(appointment, clinic, day=day, now=now)
                report.appointments += nudge is not None
                scheduler.add(nudge)
            elif window.kind == NO_SHOWS:
                missed_you = plan_no_show(appointment, clinic, now=now)
                report.appointments += missed_you is not None
                scheduler.add(missed_you)
            else:
                plan_after = plan_followup if window.kind == FOLLOWUPS else plan_checkin
                followup = plan_after(appointment, clinic, now=now)
                report.appointments += followup is not None
                scheduler.add(followup)
    scheduler.finish()


def read_window(store: Store, clinic_id: str, window: Window, report: FanoutSummary) -> list[Appointment]:
    """A window's appointments, whole."""
    return list(_appointments(store, clinic_id, window.start, window.end, report))


# ------------------------------------------------------------------------------------------ units


def run_unit(task: ClinicDayTask | AuditTask, fanout: Fanout) -> FanoutSummary:
    """One unit of a tick (shared.reminders.units), planned as of the tick's own instant: the one way a
    clinic-day is planned, in the unit function and in coordinator.run_tick alike."""
    if isinstance(task, AuditTask):
        report = FanoutSummary(trigger="audit")
        audit_recent_appointments(fanout.store, task.since, report, until=task.until)
        return report
    clinic = named_clinic(fanout.store, task.clinic_id)
    now = task.planned_at
    if task.is_shard:
        return _run_shard(task, clinic, fanout)
    report = FanoutSummary(trigger="clinic_day")
    report.clinics = 1
    planned_days = PlannedDays(fanout.store, fanout.clock)
    windows = day_windows(clinic, task.date, now, planned_days, report)
    read: list[tuple[Window, list[Appointment]]] = []
    room = fanout.max_day_appointments + 1 if fanout.units is not None else None
    for window in windows:
        counted = _Counted()
        found = list(_appointments(fanout.store, clinic.id, window.start, window.end, report, limit=room, seen=counted))
        read.append((window, found))
        if room is not None:
            room -= counted.docs
            if room <= 0:  # more than one invocation should take: split the day
                _split(task, clinic, windows, fanout, report)
                return report
    _plan(clinic, task.date, read, fanout, report, now=now)
    if not report.failed:
        planned_days.record(clinic.id, task.date, report.summary())
    return report


FANOUT: Service[Fanout] = Service("fanout")


def _run(fanout: Fanout, task: ClinicDayTask | AuditTask, attempt: Attempt) -> Outcome:
    """Run a unit, log one summary line, and raise (503, retried by Cloud Tasks) when anything failed, after
    the rest was done."""
    started = time.monotonic()
    report = run_unit(task, fanout)
    log.info(
        "fan-out unit done",
        clinic_id=task.clinic_id or None,
        retry_count=attempt.retry_count,
        seconds=round(time.monotonic() - started, 2),
        **report.summary(),
    )
    report.raise_if_failed()
    return Outcome(Status.DONE, reason=report.trigger)


# The retry sweep does not re-enqueue a unit: `redone_elsewhere` says what an operator does instead.
UNIT_DECLARATIONS = (
    Declaration(CLINIC_DAY, ClinicDayTask, Queue.FANOUT, FANOUT, _run, redone_elsewhere=UNIT_NOTES[CLINIC_DAY]),
    Declaration(AUDIT, AuditTask, Queue.FANOUT, FANOUT, _run, redone_elsewhere=UNIT_NOTES[AUDIT]),
)
# Each unit type's body, for tools that parse a unit as the router does (ops, benchmarks, tests).
UNIT_BODIES: dict[str, type[ClinicDayTask] | type[AuditTask]] = {d.name: d.body for d in UNIT_DECLARATIONS}


def _split(task: ClinicDayTask, clinic: Clinic, windows: list[Window], fanout: Fanout, report: FanoutSummary) -> None:
    """Cut the day into shards by the hours its appointments start in, and enqueue one unit per shard."""
    if fanout.units is None:  # run_unit splits only when it has a unit queue: reaching here is a wiring mistake
        raise ConfigError("only a fan-out with a unit queue (Fanout.units) splits a day", code="no_unit_queue")
    starts = [
        [
            doc.get("start")
            for doc in fanout.store.query(
                APPOINTMENTS,
                where=[("clinic_id", "==", clinic.id), ("start", ">=", w.start), ("start", "<", w.end)],
                fields=["start"],
            )
        ]
        for w in windows
    ]
    shards = cut(windows, starts, fanout.shard_appointments)
    if len(shards) > MAX_SHARDS:
        raise PermanentError(f"clinic-day cut into {len(shards)} shards, over {MAX_SHARDS}", code="too_many_shards")
    plan = plan_id(shards)
    units = [
        ClinicDayTask(clinic.id, task.date, task.planned_at, index, len(shards), plan, share)
        for index, share in enumerate(shards)
    ]
    report.shards = len(units)
    enqueue_units(fanout.units, units, report)
    log.info("clinic-day split into shards", clinic_id=clinic.id, date=task.date, shards=len(units), plan=plan)


def enqueue_units(units: UnitQueue, tasks: Sequence[ClinicDayTask | AuditTask], report: FanoutSummary) -> None:
    specs = [TaskSpec(queue=units.queue, business_key=t.business_key, payload=t.to_json()) for t in tasks]
    outcome = create_all(units.tasks, specs)
    report.units += outcome.created
    report.units_present += outcome.already_present
    for spec, problem in outcome.failed:
        report.fail(f"unit {spec.payload.get('clinic_id') or spec.payload['type']}: {problem.split(':')[0]}")


def _run_shard(task: ClinicDayTask, clinic: Clinic, fanout: Fanout) -> FanoutSummary:
    report = FanoutSummary(trigger="clinic_day_shard")
    windows = [(w, read_window(fanout.store, clinic.id, w, report)) for w in task.windows]
    _plan(clinic, task.date, windows, fanout, report, now=task.planned_at)
    if not report.failed:
        done = PlannedDays(fanout.store, fanout.clock).record_shard(
            clinic.id, task.date, task.plan, task.shard, task.shards, report.summary()
        )
        report.clinics = int(done)  # the shard that completed the day counts it
    return report


# -------------------------------------------------------------------------------- appointment events


def handle_appointment_event(event: AppointmentEvent, fanout: Fanout, *, now: datetime) -> FanoutSummary:
    """created → confirmation + every message an earlier tick would have made; rescheduled → the same
    for the new start, no confirmation; cancelled → nothing here (the waitlist function owns it)."""
    report = FanoutSummary(trigger=event.event)
    if event.is_cancellation:
        report.skipped["cancellation_handled_by_waitlist"] += 1
        return report
    doc = fanout.store.get(f"{APPOINTMENTS}/{event.appointment_id}")
    if doc is None:
        raise EventRejected(f"appointment {event.appointment_id} does not exist", code="appointment_missing")
    appointment = Appointment.from_doc(doc.id, doc.data)
    clinic = named_clinic(fanout.store, appointment.clinic_id)
    report.clinics = 1
    if not appointment.is_active:
        report.skipped[f"status_{appointment.status}"] += 1
        return report
    group: Group | None = None
    if appointment.group_id is not None:
        read = read_groups(fanout.store, [appointment.group_id]).get(appointment.group_id)
        problem = seat_problem(read, appointment)
        if problem == GROUP_CANCELLED:
            report.skipped[problem] += 1
            return report
        if problem is not None:
            # The seat's own booking confirmation does not depend on its group: it goes (it is planned from this
            # event only). Its group messages wait for a usable group doc and the next event or tick.
            if event.event == "appointment.created":
                confirming = fanout.scheduler(report, {clinic.id: clinic})
                confirming.add(plan_confirmation(appointment, clinic, now=now))
                confirming.finish()
            raise EventRejected(f"appointment {appointment.id}: its group cannot be planned ({problem})", code=problem)
        group = read if isinstance(read, Group) else None
    report.appointments = 1
    scheduler = fanout.scheduler(report, {clinic.id: clinic})
    scheduler.add_all(plan_reminders(appointment, clinic, now=now, horizon=event_horizon(clinic, now), group=group))
    if event.event == "appointment.created":
        scheduler.add(plan_confirmation(appointment, clinic, now=now))
    return scheduler.finish()


# ------------------------------------------------------------------------------------------ reads


def count_seat_problem(report: FanoutSummary, problem: str, seat: Appointment) -> None:
    """A seat the tick plans no group messages for, counted by code; anything but a cancelled group is a
    problem to fix in the group's document (logged with ids and the code only)."""
    report.problems[problem] += 1
    if problem == GROUP_CANCELLED:
        return
    log.warning(
        "group seat without messages; fix the group document",
        appointment_id=seat.id,
        group_id=seat.group_id,
        error_code=problem,
    )


class _Counted:
    """How many documents a read returned, valid or not (a limit counts them all)."""

    docs = 0


def _appointments(
    store: Store,
    clinic_id: str,
    first: datetime,
    end: datetime,
    report: FanoutSummary,
    *,
    limit: int | None = None,
    seen: _Counted | None = None,
) -> Iterator[Appointment]:
    """The clinic's appointments starting in [first, end), streamed; invalid documents counted and logged."""
    query = store.query(
        APPOINTMENTS,
        where=[("clinic_id", "==", clinic_id), ("start", ">=", first), ("start", "<", end)],
        fields=list(PLAN_FIELDS),
        limit=limit,
    )
    for doc in query:
        if seen is not None:
            seen.docs += 1
        try:
            yield Appointment.from_doc(doc.id, doc.data)
        except InvalidDocument as exc:
            report.invalid_document(exc)


def audit_recent_appointments(
    store: Store, since: datetime, report: FanoutSummary, *, until: datetime | None = None
) -> None:
    """Appointments written in [since, until) that break the contract where the clinic's range query cannot
    see them (a `start` that is not a timestamp, a `clinic_id` that is not a string): logged and counted,
    so no appointment is left unreminded without a trace."""
    where = [("updated_at", ">=", since)]
    if until is not None:
        where.append(("updated_at", "<", until))
    for doc in store.query(APPOINTMENTS, where=where, fields=list(AUDIT_FIELDS)):
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
