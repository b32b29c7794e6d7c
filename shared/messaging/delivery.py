"""Sending one appointment message: re-read, decide (send / skip), claim, send, record.

Firestore round trips per task, counted at the client: one batched read (ledger + appointment +
patient, + clinic when not cached); a skip or a duplicate ends with at most one write; a send adds the
claim (one atomic batch) and the final "sent" update: 3 in all.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.ledger import AlreadyFinal, Ledger
from shared.messaging.providers import EmailSender, OutgoingEmail, OutgoingSms, RecipientRejected, SmsSender
from shared.messaging.templates import render, render_sms
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.tasks.payload import AppointmentTask

CLINIC_CACHE_SECONDS = 60.0
START_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | skipped | duplicate
    reason: str = ""
    channel: str = ""
    provider_message_id: str = ""


class ClinicCache:
    """Clinic documents change rarely: keep each for a minute per instance."""

    def __init__(self, ttl_seconds: float = CLINIC_CACHE_SECONDS) -> None:
        self.ttl, self._lock = ttl_seconds, threading.Lock()
        self._items: dict[str, tuple[float, Clinic]] = {}

    def get(self, clinic_id: str) -> Clinic | None:
        with self._lock:
            item = self._items.get(clinic_id)
        if item is None or time.monotonic() - item[0] > self.ttl:
            return None
        return item[1]

    def put(self, clinic: Clinic) -> None:
        with self._lock:
            self._items[clinic.id] = (time.monotonic(), clinic)


def usable_channels(patient: Patient, clinic: Clinic) -> list[str]:
    """Channels this patient can get from this clinic, preferred first."""
    sms = patient.has_sms_number and not patient.sms_opt_out and bool(clinic.sms_from)
    email = bool(patient.email) and not patient.email_opt_out and bool(clinic.email_from)
    usable = [channel for channel, ok in (("sms", sms), ("email", email)) if ok]
    return sorted(usable, key=lambda channel: channel != patient.preferred_channel)


def skip_reason(task: AppointmentTask, appointment: Appointment, now: Any) -> str | None:
    """Why this message must not go out any more, or None."""
    if appointment.clinic_id != task.clinic_id or appointment.patient_id != task.patient_id:
        raise PermanentError("task ids do not match the appointment", code="payload_mismatch")
    if task.type == "followup":
        return None if appointment.status == "completed" else f"status_{appointment.status}"
    if appointment.status == "cancelled":
        return "cancelled"
    if not appointment.is_active:
        return f"status_{appointment.status}"
    if abs(appointment.start - task.appointment_start) > START_TOLERANCE:
        return "moved"
    if appointment.start <= now:
        return "past"
    if task.type == "booking_confirmation" and appointment.status == "confirmed":
        return "already_confirmed"
    return None


class AppointmentMessages:
    """The service behind appointment_reminder, booking_confirmation, prep_instructions and followup."""

    def __init__(self, *, db: Any, ledger: Ledger, sms: SmsSender, email: EmailSender, clock: Clock,
                 status_callback_url: str = "", clinics: ClinicCache | None = None) -> None:
        self.db, self.ledger, self.sms, self.email, self.clock = db, ledger, sms, email, clock
        self.status_callback_url = status_callback_url
        self.clinics = clinics or ClinicCache()

    def _read(self, task: AppointmentTask) -> tuple[Any, Any, Any, Clinic | None, Any]:
        """One batched read of everything the decision needs."""
        refs = {
            "ledger": self.ledger.ref(task.dedup_key),
            "appointment": self.db.collection("appointments").document(task.appointment_id),
            "patient": self.db.collection("patients").document(task.patient_id),
        }
        clinic = self.clinics.get(task.clinic_id)
        if clinic is None:
            refs["clinic"] = self.db.collection("clinics").document(task.clinic_id)
        by_path = {snap.reference.path: snap for snap in self.db.get_all(list(refs.values()))}
        snaps = {name: by_path.get(ref.path) for name, ref in refs.items()}
        if clinic is None:
            clinic_snap = snaps["clinic"]
            if clinic_snap is None or not clinic_snap.exists:
                raise PermanentError("clinic not found", code="clinic_missing")
            clinic = Clinic.from_doc(clinic_snap.id, clinic_snap.to_dict())
            self.clinics.put(clinic)
        return snaps["ledger"], snaps["appointment"], snaps["patient"], clinic, refs["patient"]

    def deliver(self, task: AppointmentTask) -> Outcome:
        ledger_snap, appointment_snap, patient_snap, clinic, patient_ref = self._read(task)
        entry = self.ledger.entry(ledger_snap)
        if entry is not None and entry.is_terminal:
            return Outcome("duplicate", reason=entry.state)
        ledger_fields = {"kind": task.type, "clinic_id": task.clinic_id, "appointment_id": task.appointment_id,
                         "patient_id": task.patient_id, "send_at": task.send_at,
                         "appointment_start": task.appointment_start}

        def skip(reason: str) -> Outcome:
            self.ledger.mark_skipped(task.dedup_key, reason, exists=entry is not None, fields=ledger_fields)
            return Outcome("skipped", reason=reason)

        if appointment_snap is None or not appointment_snap.exists:
            return skip("appointment_missing")
        appointment = Appointment.from_doc(appointment_snap.id, appointment_snap.to_dict())
        reason = skip_reason(task, appointment, self.clock.now())
        if reason:
            return skip(reason)
        if patient_snap is None or not patient_snap.exists:
            raise PermanentError("patient not found", code="patient_missing")
        patient = Patient.from_doc(patient_snap.id, patient_snap.to_dict())
        channels = usable_channels(patient, clinic)
        if not channels:
            return skip("opted_out" if (patient.sms_opt_out or patient.email_opt_out) else "no_contact")

        try:
            claim = self.ledger.claim(task.dedup_key, entry, fields=ledger_fields)
        except AlreadyFinal as final:
            return Outcome("duplicate", reason=final.entry.state)
        rejected: RecipientRejected | None = None
        try:
            for channel in channels:
                try:
                    provider_id = self._send(channel, task, clinic, patient, appointment)
                except RecipientRejected as rejection:
                    rejected = rejection
                    if rejection.reason == "sms_opted_out":
                        patient_ref.update({"sms_opt_out": True})  # Twilio says they replied STOP
                    log.warning("recipient rejected; trying the next channel", channel=channel,
                                error_code=rejection.code, dedup_key=task.dedup_key)
                    continue
                self.ledger.mark_sent(claim, channel=channel, provider_message_id=provider_id)
                return Outcome("sent", channel=channel, provider_message_id=provider_id)
        except RetryableError as exc:
            self.ledger.release(claim, exc.code)
            raise
        except PermanentError as exc:
            self.ledger.mark_failed(task.dedup_key, exc.code)
            raise
        assert rejected is not None
        self.ledger.mark_failed(task.dedup_key, rejected.code)
        raise rejected

    def _send(self, channel: str, task: AppointmentTask, clinic: Clinic, patient: Patient,
              appointment: Appointment) -> str:
        if channel == "sms":
            callback = ""
            if self.status_callback_url:
                callback = f"{self.status_callback_url}?{urlencode({'ledger': task.dedup_key})}"
            body = render_sms(task.type, clinic=clinic, patient=patient, appointment=appointment)
            assert patient.phone and clinic.sms_from
            return self.sms.send_sms(OutgoingSms(to=patient.phone, sender=clinic.sms_from, body=body,
                                                 status_callback=callback or None))
        message = render(task.type, clinic=clinic, patient=patient, appointment=appointment)
        assert patient.email and clinic.email_from
        return self.email.send_email(OutgoingEmail(to=patient.email, sender=clinic.email_from,
                                                   subject=message.subject, text=message.text, html=message.html,
                                                   reference=task.dedup_key))
