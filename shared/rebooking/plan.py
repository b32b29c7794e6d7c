"""When a rebooking nudge and a "we missed you" go, and which days' appointments a tick reads for them: pure
functions, no I/O, planned by the reminders tick beside the follow-ups (docs/rebooking.md).

- rebook_nudge: `rebook_after_days` (the clinic's setting for the appointment's service) after a completed
  visit's end, same local wall time, moved out of the clinic's quiet hours. The tick for local day D reads
  the completed appointments of D - N for each distinct N the clinic uses (and D - 1 - N when the tick for
  D - 1 never ran): one bounded query per N.
- no_show_message: the day after a no-show, at the missed visit's local wall time. The tick for D (run on
  D - 1) reads the appointments of D - 2, a day already over everywhere, so the front desk has marked its
  no-shows; their messages go on D - 1, or at once (out of quiet hours) when that time is already past.
Overdue by more than a day when planned: skipped "past" in the ledger, as a follow-up.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from shared.contract.clinic_time import local_date
from shared.contract.models import Appointment, Clinic
from shared.rebooking.tasks import NO_SHOW, REBOOK
from shared.reminders.plan import PlannedMessage, plan_after_visit

NO_SHOW_AFTER_DAYS = 1
NO_SHOW_READ_LAG = 2  # the tick for D reads the no-shows of D - 2
MAX_REBOOK_WINDOWS = 12  # distinct rebook_after_days a tick reads (the 12 shortest; docs/rebooking.md)


def rebook_days(clinic: Clinic, day: date, *, caught_up: bool) -> list[date]:
    """The local days whose completed visits get their nudge planned by the tick for `day`."""
    days = [day - timedelta(days=n) for n in clinic.rebook_days[:MAX_REBOOK_WINDOWS]]
    if caught_up:
        days += [d - timedelta(days=1) for d in days]
    return sorted(set(days))


def no_show_days(day: date, *, caught_up: bool) -> list[date]:
    """The local days whose no-shows get their message planned by the tick for `day`."""
    first = day - timedelta(days=NO_SHOW_READ_LAG)
    return [first - timedelta(days=1), first] if caught_up else [first]


def plan_rebook(appointment: Appointment, clinic: Clinic, *, day: date, now: datetime) -> PlannedMessage | None:
    """The nudge of a completed visit whose service has rebook_after_days N, when it falls due on `day` or
    the day before (a missed tick's); None otherwise (another service's N, another tick's)."""
    if appointment.status != "completed":
        return None
    after = clinic.rebook_after_days(appointment.service_name)
    if after is None:
        return None
    due = local_date(appointment.start, clinic.zone) + timedelta(days=after)
    if due not in (day, day - timedelta(days=1)):
        return None
    return plan_after_visit(REBOOK, appointment, clinic, appointment.end, after, now=now)


def plan_no_show(appointment: Appointment, clinic: Clinic, *, now: datetime) -> PlannedMessage | None:
    """ "We missed you" the day after a no-show, when the clinic sends them."""
    if appointment.status != "no_show" or not clinic.no_show_message:
        return None
    return plan_after_visit(NO_SHOW, appointment, clinic, appointment.start, NO_SHOW_AFTER_DAYS, now=now)
