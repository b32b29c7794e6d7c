"""Which messages an appointment should get, and when: pure functions, no I/O (docs/architecture.md).

What a tick covers. The tick for a clinic's local day D (run on D-1, "tomorrow") plans every message
whose send time falls before the end of D, for the appointments that can have one: those starting from
D's first instant up to the end of D plus the longest lead (`reminder_window`); a 48 h prep message for
an appointment on D+2 is planned on D-1, never found already past. It also plans the follow-ups of D-7's
completed appointments, and (when the clinic sets `feedback.checkin_days`) the check-ins of D-2's
(`checkin_day`: the first tick that runs once that day is over). When the tick for D-1 never ran (a
clinic's first day, a missed Scheduler run, an outage), the tick for D also covers what that one would
have: the appointments still ahead today, and D-8's follow-ups and D-3's check-ins (`catch_up_window`).
Appointment events use the same horizon (the end of the clinic's local tomorrow): a new booking gets
every message an earlier tick would have made for it. Re-planning is common and harmless: the ledger
key of a message never changes.

Timing rules:
- reminder: start - offset; prep_instructions: start - 48 h. Moved out of quiet hours, never later than
  30 min before the start (else skipped "too_late").
- booking_confirmation: now + 1 h, same quiet-hours rule.
- followup (the feedback survey, docs/feedback.md): the completed appointment's end + 7 days, same
  local wall time (DST-safe), moved out of quiet hours.
- checkin: the completed appointment's end + the clinic's `feedback.checkin_days` (1 or 2), same rule;
  with 1 day, a visit that ended before the tick's run time of the next day is checked in on at once
  (the catch-up rule below).
- Overdue when planned (send time already past): still sent, at once or at the end of the current quiet
  hours, while it is useful: before start - 30 min, and (for a reminder) not within an hour of a later
  reminder of the same appointment, which then says it all, also when that one is overdue too and
  caught up at the same moment (of two reminders overdue at a clinic's first tick, only the later one
  goes); a follow-up or check-in up to a day late. Otherwise it is recorded in the ledger as skipped with reason
  "past", like every other skip: nothing is dropped silently.

Group bookings (docs/groups.md): a seat (an appointment with `group_id`) gets its group's offsets instead
of the clinic's reminder offsets (organizer 72 h, every seat 24 h and 2 h: shared.groups.model), as
`group_reminder` messages under exactly these rules; a seat whose group is missing, broken or cancelled
gets none (the callers classify why).

Dedup keys include the appointment's start instant: a rescheduled appointment gets new keys (new
reminders), while the old ledger docs stay and their tasks are skipped at send time as "moved".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from shared.contract.clinic_time import local_date, local_day_range, shift_out_of_quiet_hours
from shared.contract.models import Appointment, Clinic
from shared.groups.model import ORGANIZER_HOURS, Read, seat_offsets
from shared.messaging.appointment_tasks import (
    CHECKIN,
    CONFIRMATION,
    FOLLOWUP,
    GROUP,
    PREP,
    REMINDER,
    AppointmentTask,
)
from shared.messaging.keys import message_key

PREP_LEAD_HOURS = 48
LATEST_BEFORE_START = timedelta(minutes=30)
CONFIRMATION_DELAY = timedelta(hours=1)
FOLLOWUP_AFTER_DAYS = 7
FOLLOWUP_GRACE = timedelta(days=1)
CHECKIN_PLANNED_AFTER_DAYS = 2  # a visit's check-in is planned by the tick for two days later (module doc)
LATER_REMINDER_COVERS = timedelta(hours=1)
REMINDER_KINDS = (REMINDER, GROUP)  # the catch-up rule's "reminders"


@dataclass(frozen=True)
class PlannedMessage:
    """One intended message: its task payload (ids only) and, when it must not go out, why."""

    task: AppointmentTask
    skipped: str | None = None  # "past" | "too_late": recorded in the ledger, never sent

    @property
    def key(self) -> str:
        return self.task.dedup_key


def _message(
    kind: str, appointment: Appointment, send_at: datetime, offset_hours: int | None, skipped: str | None = None
) -> PlannedMessage:
    return PlannedMessage(
        AppointmentTask(
            type=kind,
            appointment_id=appointment.id,
            clinic_id=appointment.clinic_id,
            patient_id=appointment.patient_id,
            dedup_key=message_key(kind, appointment.id, appointment.start, offset_hours),
            send_at=send_at,
            appointment_start=appointment.start,
            offset_hours=offset_hours,
            group_id=appointment.group_id if kind == GROUP else None,
        ),
        skipped,
    )


def catch_up_time(clinic: Clinic, now: datetime, latest: datetime) -> datetime | None:
    """When an overdue message can still go: now, or the end of the quiet hours it is in; None if that
    is after `latest`."""
    moment = shift_out_of_quiet_hours(now, clinic.zone, clinic.quiet_hours, not_after=latest)
    return moment if now <= moment <= latest else None


def plan_reminders(
    appointment: Appointment, clinic: Clinic, *, now: datetime, horizon: datetime, group: Read | None = None
) -> list[PlannedMessage]:
    """Reminders (one per clinic offset; for a group's seat, one per offset its role in `group` has) and
    prep instructions sending before `horizon`.

    Messages whose (quiet-hours-adjusted) send time is at or after the horizon belong to a later tick
    and are left out. Overdue ones follow the catch-up rule of the module doc.
    """
    if not appointment.is_active:
        return []
    latest = appointment.start - LATEST_BEFORE_START
    if appointment.group_id is None:
        leads = [(REMINDER, hours) for hours in clinic.reminder_offsets_hours]
    else:
        leads = [(GROUP, hours) for hours in seat_offsets(group, appointment)]
    if appointment.requires_prep:
        leads.append((PREP, PREP_LEAD_HOURS))
    timed = []
    for kind, hours in leads:
        nominal = appointment.start - timedelta(hours=hours)
        timed.append(
            (kind, hours, nominal, shift_out_of_quiet_hours(nominal, clinic.zone, clinic.quiet_hours, not_after=latest))
        )
    catch_up = catch_up_time(clinic, now, latest)
    # When each reminder goes out (on time, or caught up now): an overdue one within an hour of a later
    # reminder (a smaller offset) is covered by it, also when that one is overdue and caught up too.
    reminder_times = {
        hours: (send_at if send_at >= now else catch_up)
        for kind, hours, _, send_at in timed
        if kind in REMINDER_KINDS and send_at <= latest
    }
    planned: list[PlannedMessage] = []
    for kind, hours, nominal, send_at in timed:
        if min(send_at, nominal) >= horizon:
            continue  # a later tick's
        if send_at > latest:
            planned.append(_message(kind, appointment, nominal, hours, skipped="too_late"))
        elif send_at >= now:
            planned.append(_message(kind, appointment, send_at, hours))
        else:
            covered = (
                kind in REMINDER_KINDS
                and catch_up is not None
                and any(
                    later is not None and later - catch_up < LATER_REMINDER_COVERS
                    for later_hours, later in reminder_times.items()
                    if later_hours < hours
                )
            )
            if catch_up is None or covered:
                planned.append(_message(kind, appointment, send_at, hours, skipped="past"))
            else:
                planned.append(_message(kind, appointment, catch_up, hours))
    return planned


def plan_confirmation(appointment: Appointment, clinic: Clinic, *, now: datetime) -> PlannedMessage | None:
    """The booking confirmation an hour after booking (the handler sends it only if still unconfirmed)."""
    if not appointment.is_active:
        return None
    latest = appointment.start - LATEST_BEFORE_START
    send_at = shift_out_of_quiet_hours(now + CONFIRMATION_DELAY, clinic.zone, clinic.quiet_hours, not_after=latest)
    if send_at > latest or send_at < now:  # moved back before now: the evening before is already past
        return _message(
            CONFIRMATION,
            appointment,
            now + CONFIRMATION_DELAY,
            None,
            skipped="too_late" if send_at > latest else "past",
        )
    return _message(CONFIRMATION, appointment, send_at, None)


def plan_followup(appointment: Appointment, clinic: Clinic, *, now: datetime) -> PlannedMessage | None:
    """A follow-up a week after a completed appointment, same local wall time; up to a day late is fine."""
    return _after_visit(FOLLOWUP, FOLLOWUP_AFTER_DAYS, appointment, clinic, now=now)


def plan_checkin(appointment: Appointment, clinic: Clinic, *, now: datetime) -> PlannedMessage | None:
    """The check-in `feedback.checkin_days` after a completed appointment (None when the clinic sets none)."""
    days = clinic.feedback.checkin_days
    return _after_visit(CHECKIN, days, appointment, clinic, now=now) if days else None


def _after_visit(
    kind: str, days: int, appointment: Appointment, clinic: Clinic, *, now: datetime
) -> PlannedMessage | None:
    """A message about a completed visit (follow-up, check-in), `days` after it ended."""
    if appointment.status != "completed":
        return None
    return plan_after_visit(kind, appointment, clinic, appointment.end, days, now=now)


def plan_after_visit(
    kind: str, appointment: Appointment, clinic: Clinic, anchor: datetime, days: int, *, now: datetime
) -> PlannedMessage:
    """A message `days` after `anchor` (a visit's start or end), same local wall time, moved out of quiet
    hours; overdue, it goes now (out of quiet hours) up to FOLLOWUP_GRACE late, else it is skipped "past"."""
    zone = clinic.zone
    # Aware + timedelta is wall-clock arithmetic in `zone`: 10:00 stays 10:00 across a DST change.
    nominal = (anchor.astimezone(zone) + timedelta(days=days)).astimezone(timezone.utc)
    send_at = shift_out_of_quiet_hours(nominal, zone, clinic.quiet_hours)
    if send_at >= now:
        return _message(kind, appointment, send_at, None)
    if now - send_at > FOLLOWUP_GRACE:
        return _message(kind, appointment, send_at, None, skipped="past")
    return _message(kind, appointment, shift_out_of_quiet_hours(now, zone, clinic.quiet_hours), None)


def max_lead(clinic: Clinic) -> timedelta:
    """The longest time between a message and its appointment for this clinic (offsets, prep, a group's
    organizer)."""
    return timedelta(hours=max((*clinic.reminder_offsets_hours, PREP_LEAD_HOURS, ORGANIZER_HOURS)))


def reminder_window(clinic: Clinic, day: date) -> tuple[datetime, datetime, datetime]:
    """(first start, end of starts, horizon) for the tick of local `day`: only appointments starting in
    [first, end) can have messages sending before `horizon`, the end of `day`.

    Why horizon + max_lead is enough: without a quiet-hours move, or moved forward, a message sends at or
    after start - lead. Moved back, it sends 15 min before a quiet window that ends after start - 30 min,
    so less than 24 h 45 min before the start; max_lead is at least the 72 h group organizer's lead.
    """
    first, horizon = local_day_range(day, clinic.zone)
    return first, horizon + max_lead(clinic), horizon


def catch_up_window(clinic: Clinic, day: date, now: datetime) -> tuple[datetime, datetime] | None:
    """The appointments the tick for the day before `day` would have covered and that are still ahead:
    [now, first instant of `day`), or None when none are left."""
    first = local_day_range(day, clinic.zone)[0]
    return (now, first) if now < first else None


def followup_day(day: date) -> date:
    """Completed appointments that started on this local day get their follow-up planned by the tick for `day`."""
    return day - timedelta(days=FOLLOWUP_AFTER_DAYS)


def checkin_day(day: date) -> date:
    """Completed appointments that started on this local day get their check-in planned by the tick for `day`."""
    return day - timedelta(days=CHECKIN_PLANNED_AFTER_DAYS)


def event_horizon(clinic: Clinic, now: datetime) -> datetime:
    """The end of the clinic's local tomorrow: everything before it may already have had its tick."""
    tomorrow = local_date(now, clinic.zone) + timedelta(days=1)
    return local_day_range(tomorrow, clinic.zone)[1]
