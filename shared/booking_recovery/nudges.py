"""Sending one booking nudge: re-read, decide (send / skip), choose marketing or transactional, then the one
sender (docs/booking-recovery.md, "At send time").

Nothing in the body is trusted beyond its ids (the ledger key is checked against session and nudge). In order,
each a ledger skip with its reason:
- the session gone ("session_missing"), the clinic's recovery turned off ("recovery_off");
- the booking completed: the session doc or our record says so ("completed");
- the slot's start passed ("slot_past"), or someone else holds an active appointment at it ("slot_taken");
- the patient booked at the clinic since the session started: an appointment of theirs at the slot, or one
  created since `started_at` that is not cancelled ("booked_since"; without `created_at`, an upcoming one
  written since then);
- the patient gone ("patient_missing"), opted out or unreachable ("opted_out" / "no_contact").
Then the discount: with a code set, an SMS recipient, marketing SMS consent (shared/consent/consents.py), the
recipient's allowed window (shared/consent/recipient_time.py, the clinic's marketing hours) and room under the
daily marketing cap (shared/consent/caps.py), the nudge is marketing: it offers the code, ends with the STOP
line, and its send record says purpose marketing on that consent. Otherwise it goes transactional without the
code, at its planned time (already outside the clinic's quiet hours). A retry keeps the first attempt's choice
(the purpose its send record holds), so an answer lost is reconciled against the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.booking_recovery.links import RestoreLinks
from shared.booking_recovery.recoveries import Recoveries
from shared.booking_recovery.recoveries import path as recovery_path
from shared.booking_recovery.sessions import COMPLETED, BookingSession
from shared.booking_recovery.sessions import path as session_path
from shared.booking_recovery.tasks import NudgeTask
from shared.booking_recovery.wording import Nudge
from shared.campaigns.model import Marketing
from shared.consent.caps import MarketingCaps
from shared.consent.consents import Consents
from shared.consent.evidence import SendRecord
from shared.consent.evidence import path as record_path
from shared.consent.recipient_time import allowed, place_of
from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, Appointment, Clinic, Patient
from shared.messaging.channels import SMS, Recipient, recipients, unreachable_reason
from shared.messaging.ledger import Entry, Ledger
from shared.messaging.ledger import path as ledger_path
from shared.messaging.sender import MessageSender, Wording, duplicate_of
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, PermanentError
from shared.platform.store import Doc, Store
from shared.tasks.router import Attempt, Outcome, Status

MARKETING, TRANSACTIONAL = "marketing", "transactional"
MAX_APPOINTMENTS_READ = 50  # a patient's appointments at one clinic, or one slot's: a bounded read


def booked_since(session: BookingSession, appointments: list[Appointment]) -> bool:
    """Did the patient book at the clinic since the session started (the patient's appointments there)?"""
    for appointment in appointments:
        if appointment.status == "cancelled":
            continue
        if appointment.is_active and appointment.start == session.slot_start:
            return True
        # When it was booked: its created_at; a doc without one, its last write, but only for a visit still
        # ahead (a "C" confirming or the front desk completing an earlier booking is no new booking).
        written = appointment.created_at or (appointment.updated_at if appointment.is_active else None)
        if written is not None and written >= session.started_at:
            return True
    return False


def slot_taken(session: BookingSession, appointments: list[Appointment]) -> bool:
    """Does someone else hold an active appointment at the session's slot (with its provider, when it names one)?"""
    return any(
        a.is_active
        and a.patient_id != session.patient_id
        and a.start == session.slot_start
        and (session.provider_id is None or a.provider_id == session.provider_id)
        for a in appointments
    )


class BookingNudges:
    """The service behind booking_nudge."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sender: MessageSender,
        clock: Clock,
        consents: Consents,
        caps: MarketingCaps,
        links: Callable[[], RestoreLinks],
    ) -> None:
        """`links` provides the restore links' signer (built on the first nudge that goes out)."""
        self.store, self.ledger, self.sender, self.clock = store, ledger, sender, clock
        self.consents, self.caps, self.links = consents, caps, links
        self.recoveries = Recoveries(store, clock)

    def _appointments(self, where: list[tuple[str, str, Any]]) -> list[Appointment]:
        found = []
        for doc in self.store.query(APPOINTMENTS, where=where, limit=MAX_APPOINTMENTS_READ):
            try:
                found.append(Appointment.from_doc(doc.id, doc.data))
            except InvalidDocument as exc:
                log.warning("appointment breaks the contract; not counted", **exc.where())
        return found

    def deliver(self, task: NudgeTask, attempt: Attempt) -> Outcome:
        paths = {
            "ledger": ledger_path(task.dedup_key),
            "session": session_path(task.session_id),
            "recovery": recovery_path(task.session_id),
            "patient": f"{PATIENTS}/{task.patient_id}",
            "clinic": f"{CLINICS}/{task.clinic_id}",
            "record": record_path(task.dedup_key),  # an earlier attempt's send record: its purpose stands
        }
        docs = self.store.get_all(list(paths.values()))
        found = {name: docs.get(doc_path) for name, doc_path in paths.items()}
        ledger_doc = found["ledger"]
        entry = Entry.from_doc(ledger_doc) if ledger_doc is not None else None
        if entry is not None and entry.is_done:
            return duplicate_of(entry)
        fields = task.ledger_fields(entry.channel if entry is not None else None)

        def skip(reason: str) -> Outcome:
            return self.sender.skip(task.dedup_key, entry, reason, fields)

        if found["session"] is None:
            return skip("session_missing")
        session = BookingSession.from_doc(found["session"].id, found["session"].data)
        if session.clinic_id != task.clinic_id or session.patient_id != task.patient_id:
            raise PermanentError("task ids do not match the booking session", code="payload_mismatch")
        clinic_doc = found["clinic"]
        if clinic_doc is None:
            raise PermanentError("clinic not found", code="clinic_missing")
        clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
        reason = self._skip_reason(session, clinic, found["recovery"], self.clock.now())
        if reason:
            return skip(reason)
        if found["patient"] is None:
            return skip("patient_missing")
        patient = Patient.from_doc(found["patient"].id, found["patient"].data)
        if patient.clinic_id != clinic.id:
            raise PermanentError("task ids do not match the patient", code="payload_mismatch")
        reachable = recipients(patient, clinic)
        if not reachable:
            return skip(unreachable_reason(patient))
        earlier = SendRecord.of(task.dedup_key, found["record"].data).purpose if found["record"] else None
        code = self._discount(clinic, clinic_doc, patient, reachable[0], earlier, fields)
        if code is not None:
            reachable = reachable[:1]  # the consent is the SMS channel's: a marketing nudge goes by SMS only
        nudge = Nudge(clinic, patient, session, task.nudge, self.links().link_for(session, task.nudge), code)
        outcome = self.sender.deliver(
            task.dedup_key,
            entry,
            fields,
            reachable,
            Wording(sms=nudge.sms, email=nudge.email),
            attempt,
            patient_id=patient.id,
        )
        if outcome.status == Status.SENT:
            self._nudged(session)
        return outcome

    def _skip_reason(self, session: BookingSession, clinic: Clinic, recovery: Doc | None, now: datetime) -> str | None:
        """Why this nudge must not go out any more (the order of the module doc), or None."""
        if not clinic.booking_recovery.enabled:
            return "recovery_off"
        if session.is_completed or (recovery is not None and recovery.get("status") == COMPLETED):
            return "completed"
        if session.slot_start <= now:
            return "slot_past"
        mine = self._appointments([("patient_id", "==", session.patient_id), ("clinic_id", "==", clinic.id)])
        if booked_since(session, mine):
            return "booked_since"
        at_slot = self._appointments([("clinic_id", "==", clinic.id), ("start", "==", session.slot_start)])
        if slot_taken(session, at_slot):
            return "slot_taken"
        return None

    def _discount(
        self,
        clinic: Clinic,
        clinic_doc: Doc,
        patient: Patient,
        first: Recipient,
        earlier: str | None,
        fields: dict[str, Any],
    ) -> str | None:
        """The discount code when this nudge may be marketing (and `fields` say so), else None (transactional).
        `earlier`: the purpose an earlier attempt's send record holds (an answer lost): that choice stands."""
        code = clinic.booking_recovery.discount_code
        basis = None
        if code and first.channel == SMS and earlier in (None, MARKETING):
            basis = self.consents.current(patient.id).marketing_basis("sms")
            if basis is not None and earlier is None and not self._marketing_allowed(clinic, clinic_doc, patient):
                basis = None
        if basis is None or code is None:
            fields.update(purpose=TRANSACTIONAL, basis=None)
            return None
        fields.update(purpose=MARKETING, basis=basis)
        return code

    def _marketing_allowed(self, clinic: Clinic, clinic_doc: Doc, patient: Patient) -> bool:
        """Inside the recipient's allowed window (and the clinic's marketing hours) and under the daily cap."""
        if patient.phone is None:
            return False
        try:
            marketing = Marketing.of_clinic(clinic.id, clinic_doc.data)
        except InvalidDocument as exc:
            log.warning(
                "clinic's marketing settings break the contract; nudge sent without the discount", **exc.where()
            )
            return False
        now = self.clock.now()
        place = place_of(patient.phone, clinic.timezone)
        if not allowed(now, place, marketing.hours):
            return False
        return not self.caps.at_cap(patient.id, place, marketing.daily_cap, now)

    def _nudged(self, session: BookingSession) -> None:
        """Count the nudge on the session's record; the message stands if this write fails (logged, no PHI)."""
        try:
            self.recoveries.nudged(session, self.clock.now())
        except Exception as exc:  # noqa: BLE001 - the report misses one nudge; the message is sent and recorded
            log.error("booking nudge not counted", session_id=session.id, error=type(exc).__name__)
