"""The booking platform's booking.started / booking.abandoned / booking.completed, published on
appointment-events (docs/booking-recovery.md, "Contract"), into nudges and the session's recovery record.

started or abandoned → the session's record (shared/booking_recovery/recoveries.py) and its nudges, planned by
shared/booking_recovery/plan.py and written by the reminders' MessageScheduler: one ledger doc and one named
Cloud Task each, keyed by session and nudge, so a redelivered event, or an abandoned after a started, plans
nothing twice. completed → the record says so; the nudges still queued read it at send time and skip.

Everything wrong with what arrived is an EventRejected with its code, acknowledged and logged: the session's
document missing ("session_missing") or breaking the contract ("invalid_session"), an unknown clinic
("unknown_clinic"), a patient that does not exist ("patient_missing") or is another clinic's
("clinic_mismatch"), a start time ahead of now ("started_in_future").
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.booking_recovery.plan import plan_nudges
from shared.booking_recovery.recoveries import Recoveries
from shared.booking_recovery.sessions import ABANDONED, STARTED, BookingSession
from shared.booking_recovery.sessions import path as session_path
from shared.contract.clinics import named_clinic
from shared.contract.events import BOOKING_ABANDONED, BookingEvent, EventRejected
from shared.contract.models import PATIENTS
from shared.platform.errors import InvalidDocument
from shared.reminders.fanout import Fanout
from shared.reminders.fanout_summary import FanoutSummary

CLOCK_SKEW = timedelta(minutes=5)  # the platform's clock may run a little ahead of ours


def read_session(fanout: Fanout, session_id: str) -> BookingSession:
    """The session an event names, or EventRejected (missing, breaking the contract)."""
    doc = fanout.store.get(session_path(session_id))
    if doc is None:
        raise EventRejected(f"booking session {session_id} does not exist", code="session_missing")
    try:
        return BookingSession.from_doc(doc.id, doc.data)
    except InvalidDocument as exc:
        raise EventRejected(str(exc), code="invalid_session") from None


def handle_booking_event(event: BookingEvent, fanout: Fanout, *, now: datetime) -> FanoutSummary:
    report = FanoutSummary(trigger=event.event)
    session = read_session(fanout, event.session_id)
    clinic = named_clinic(fanout.store, session.clinic_id)
    patient = fanout.store.get(f"{PATIENTS}/{session.patient_id}")
    if patient is None:
        raise EventRejected(f"patient {session.patient_id} does not exist", code="patient_missing")
    if patient.get("clinic_id") != clinic.id:
        raise EventRejected(f"patient {session.patient_id} is not clinic {clinic.id}'s", code="clinic_mismatch")
    if session.started_at > now + CLOCK_SKEW:
        raise EventRejected("a booking session cannot start ahead of now", code="started_in_future")
    report.clinics = 1
    recoveries = Recoveries(fanout.store, fanout.clock)
    if event.is_completion or session.is_completed:
        report.counts["completed" if recoveries.completed(session) else "already_completed"] += 1
        return report
    recoveries.started(session, status=ABANDONED if event.event == BOOKING_ABANDONED else STARTED)
    planned = plan_nudges(session, clinic, now=now)
    if not planned:
        report.skipped["recovery_off"] += 1
        return report
    report.appointments = 1  # the fan-out summary's unit of work: here, one session
    scheduler = fanout.scheduler(report, {clinic.id: clinic})
    scheduler.add_all(planned)
    return scheduler.finish()
