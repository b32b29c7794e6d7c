"""Which messages an appointment should get, and when: pure functions, no I/O (DESIGN §2, §3.5).

Who plans what. A message is planned by the tick whose target day is the clinic-local day of its send
time: the tick for day D (run on D-1, "tomorrow") plans every message sending before the end of D. It
reads appointments from D up to the furthest lead ahead (`reminder_window`), so a 48 h reminder or prep
message for an appointment on D+2 is created on D-1 and is never already past when first planned (a
tick that only looked at D's appointments would find every 48 h message in the past). Everything for
D's own appointments is planned by the tick for D too, so re-planning is common; the ledger's dedup key
makes it harmless. Appointment events use the same horizon (the end of the clinic's local tomorrow):
a new booking gets every message an earlier tick would have made for it.

Timing rules:
- reminder: start - offset; prep_instructions: start - 48 h. Moved out of quiet hours, never later
  than 30 min before the start; skipped ("past") when that is already past.
- booking_confirmation: now + 1 h, same quiet-hours rule; skipped when past or after start - 30 min.
- followup: the completed appointment's end + 7 days, same local wall time (DST-safe), moved out of
  quiet hours. A late run that finds it up to a day overdue sends it now (out of quiet hours): a thank-you
  a few hours late is still welcome. Overdue by more than a day it is skipped ("past"), so a backfill
  with an old date does not flood patients with stale follow-ups.

Dedup keys include the appointment's start instant: a rescheduled appointment gets new keys (new
reminders), while the old ledger docs stay and their tasks are skipped at send time as "moved".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from shared.contract.clinic_time import local_date, local_day_range, shift_out_of_quiet_hours
from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.delivery import usable_channels
from shared.messaging.ledger import dedup_key
from shared.tasks.payload import AppointmentTask

REMINDER = "appointment_reminder"
PREP = "prep_instructions"
CONFIRMATION = "booking_confirmation"
FOLLOWUP = "followup"

PREP_LEAD_HOURS = 48
LATEST_BEFORE_START = timedelta(minutes=30)
CONFIRMATION_DELAY = timedelta(hours=1)
FOLLOWUP_AFTER_DAYS = 7
FOLLOWUP_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class PlannedMessage:
    """One intended message: its task payload (IDs only) plus what the ledger doc records."""

    task: AppointmentTask

    @property
    def key(self) -> str:
        return self.task.dedup_key


@dataclass(frozen=True)
class Skipped:
    """An intended message that will not be scheduled, and why (counted, never written: no ledger doc)."""

    kind: str
    appointment_id: str
    reason: str


Decision = PlannedMessage | Skipped


def slot_instant(start: datetime) -> str:
    """The appointment start as it appears in a dedup slot: UTC, fixed format, whatever type Firestore returns."""
    return start.astimezone(timezone.utc).isoformat(timespec="microseconds")


def message_key(kind: str, appointment_id: str, start: datetime, offset_hours: int | None) -> str:
    """Stable key of one message for one start instant: same appointment and start → same key."""
    lead = f"{offset_hours}h" if offset_hours is not None else kind
    return dedup_key(kind, appointment_id, f"{lead}@{slot_instant(start)}")


def _message(kind: str, appointment: Appointment, send_at: datetime, offset_hours: int | None) -> PlannedMessage:
    return PlannedMessage(AppointmentTask(
        type=kind,
        appointment_id=appointment.id,
        clinic_id=appointment.clinic_id,
        patient_id=appointment.patient_id,
        dedup_key=message_key(kind, appointment.id, appointment.start, offset_hours),
        send_at=send_at,
        appointment_start=appointment.start,
        offset_hours=offset_hours,
    ))


def _before_start(
    kind: str, appointment: Appointment, clinic: Clinic, nominal: datetime, offset_hours: int | None,
    *, now: datetime,
) -> Decision:
    latest = appointment.start - LATEST_BEFORE_START
    send_at = shift_out_of_quiet_hours(nominal, clinic.zone, clinic.quiet_hours, not_after=latest)
    if send_at > latest:
        return Skipped(kind, appointment.id, "too_late")
    if send_at < now:
        return Skipped(kind, appointment.id, "past")
    return _message(kind, appointment, send_at, offset_hours)


def _send_at(decision: Decision) -> datetime | None:
    return decision.task.send_at if isinstance(decision, PlannedMessage) else None


def plan_reminders(appointment: Appointment, clinic: Clinic, *, now: datetime, horizon: datetime) -> list[Decision]:
    """Reminders (one per clinic offset) and prep instructions sending before `horizon`.

    Messages whose (quiet-hours-adjusted) send time is at or after the horizon belong to a later tick
    and are left out, not counted. A skipped message is kept when its nominal time is before the horizon.
    """
    if not appointment.is_active:
        return []
    leads = [(REMINDER, hours) for hours in clinic.reminder_offsets_hours]
    if appointment.requires_prep:
        leads.append((PREP, PREP_LEAD_HOURS))
    decisions: list[Decision] = []
    for kind, hours in leads:
        nominal = appointment.start - timedelta(hours=hours)
        decision = _before_start(kind, appointment, clinic, nominal, hours, now=now)
        when = _send_at(decision) or nominal
        if when < horizon:
            decisions.append(decision)
    return decisions


def plan_confirmation(appointment: Appointment, clinic: Clinic, *, now: datetime) -> Decision | None:
    """The booking confirmation an hour after booking (the handler sends it only if still unconfirmed)."""
    if not appointment.is_active:
        return None
    return _before_start(CONFIRMATION, appointment, clinic, now + CONFIRMATION_DELAY, None, now=now)


def plan_followup(appointment: Appointment, clinic: Clinic, *, now: datetime) -> Decision | None:
    """A follow-up a week after a completed appointment, same local wall time; see the module doc for lateness."""
    if appointment.status != "completed":
        return None
    zone = clinic.zone
    # Aware + timedelta is wall-clock arithmetic in `zone`: 10:00 stays 10:00 across a DST change.
    nominal = (appointment.end.astimezone(zone) + timedelta(days=FOLLOWUP_AFTER_DAYS)).astimezone(timezone.utc)
    send_at = shift_out_of_quiet_hours(nominal, zone, clinic.quiet_hours)
    if send_at < now:
        if now - send_at > FOLLOWUP_GRACE:
            return Skipped(FOLLOWUP, appointment.id, "past")
        send_at = shift_out_of_quiet_hours(now, zone, clinic.quiet_hours)
    return _message(FOLLOWUP, appointment, send_at, None)


def max_lead(clinic: Clinic) -> timedelta:
    """The longest time between a message and its appointment for this clinic (offsets, prep)."""
    return timedelta(hours=max((*clinic.reminder_offsets_hours, PREP_LEAD_HOURS)))


def reminder_window(clinic: Clinic, day: date) -> tuple[datetime, datetime, datetime]:
    """(first start, end of starts, horizon) for the tick of local `day`: only appointments starting in
    [first, end) can have messages sending before `horizon`, the end of `day`.

    Why horizon + max_lead is enough: without a quiet-hours move, or moved forward, a message sends at or
    after start - lead. Moved back, it sends 15 min before a quiet window that ends after start - 30 min,
    so less than 24 h 45 min before the start; max_lead is at least the 48 h prep lead.
    """
    first, horizon = local_day_range(day, clinic.zone)
    return first, horizon + max_lead(clinic), horizon


def followup_day(day: date) -> date:
    """Completed appointments that started on this local day get their follow-up planned by the tick for `day`."""
    return day - timedelta(days=FOLLOWUP_AFTER_DAYS)


def event_horizon(clinic: Clinic, now: datetime) -> datetime:
    """The end of the clinic's local tomorrow: everything before it may already have had its tick."""
    tomorrow = local_date(now, clinic.zone) + timedelta(days=1)
    return local_day_range(tomorrow, clinic.zone)[1]


def channel_for(patient: Patient, clinic: Clinic) -> tuple[str | None, str]:
    """(channel, "") for the channel the handler will try first, or (None, reason) when there is none.

    The same rule as the handler's (`delivery.usable_channels`), so a message lands on the queue of the
    channel it will most likely use and SMS traffic stays on the queue rated for the SMS sender. The
    handler decides again at send time (an opt-out may arrive in between).
    """
    channels = usable_channels(patient, clinic)
    if channels:
        return channels[0], ""
    return None, "opted_out" if (patient.sms_opt_out or patient.email_opt_out) else "no_contact"
