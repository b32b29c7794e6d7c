"""Sending one appointment message: re-read, decide (send / skip), claim, send, record.

Firestore round trips per task, counted at the client: one batched read (ledger + appointment +
patient, + clinic when not cached); a skip or a duplicate ends with at most one write; a send adds the
claim and the final "sent" update: 3 in all.

Nothing in the task body is trusted beyond its ids: the ledger key is derived again from the
appointment as re-read (kind, id, start, an offset the clinic really uses), and a body whose key does
not match is refused. An answer lost after the request reached the provider leaves the ledger
`unconfirmed`; the next attempt first looks for the message (a recorded delivery callback for that
generation, or Twilio's message list) and sends again only when it is truly absent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, Appointment, Clinic, Patient
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.channels import SMS, unreachable_reason, usable_channels
from shared.messaging.keys import message_key
from shared.messaging.ledger import AlreadyDone, Claim, Entry, Ledger, Reopen, StaleClaim, State
from shared.messaging.ledger import path as ledger_path
from shared.messaging.opt_outs import OptOuts
from shared.messaging.providers import (
    EmailSender,
    OutgoingEmail,
    OutgoingSms,
    RecipientRejected,
    SendUnconfirmed,
    SmsSender,
)
from shared.messaging.templates import render, render_sms
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.platform.store import Store
from shared.tasks.router import Attempt, Outcome

CLINIC_CACHE_SECONDS = 60.0
START_TOLERANCE = timedelta(seconds=1)
PREP_LEAD_HOURS = 48


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


def skip_reason(task: AppointmentTask, appointment: Appointment, now: datetime) -> str | None:
    """Why this message must not go out any more, or None."""
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


def check_task(task: AppointmentTask, appointment: Appointment, clinic: Clinic) -> None:
    """The body must describe this appointment exactly as the planner would have: ids, offset and key."""
    if appointment.clinic_id != task.clinic_id or appointment.patient_id != task.patient_id:
        raise PermanentError("task ids do not match the appointment", code="payload_mismatch")
    if task.type == "appointment_reminder":
        offsets_ok = task.offset_hours in clinic.reminder_offsets_hours
    elif task.type == "prep_instructions":
        offsets_ok = task.offset_hours == PREP_LEAD_HOURS
    else:
        offsets_ok = task.offset_hours is None
    if not offsets_ok:
        raise PermanentError("task offset is not one this clinic uses", code="payload_mismatch")
    if message_key(task.type, appointment.id, task.appointment_start, task.offset_hours) != task.dedup_key:
        raise PermanentError("task dedup_key does not match its appointment", code="dedup_key_mismatch")


@dataclass(frozen=True)
class _Read:
    entry: Entry | None
    appointment: Any
    patient: Any
    clinic: Clinic


class AppointmentMessages:
    """The service behind appointment_reminder, booking_confirmation, prep_instructions and followup."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sms: SmsSender,
        email: EmailSender,
        clock: Clock,
        status_callback_url: str = "",
        clinics: ClinicCache | None = None,
    ) -> None:
        self.store, self.ledger, self.sms, self.email, self.clock = store, ledger, sms, email, clock
        self.status_callback_url = status_callback_url
        self.clinics = clinics or ClinicCache()
        self.opt_outs = OptOuts(store, clock)

    def _read(self, task: AppointmentTask) -> _Read:
        """One batched read of everything the decision needs."""
        paths = {
            "ledger": ledger_path(task.dedup_key),
            "appointment": f"{APPOINTMENTS}/{task.appointment_id}",
            "patient": f"{PATIENTS}/{task.patient_id}",
        }
        clinic = self.clinics.get(task.clinic_id)
        if clinic is None:
            paths["clinic"] = f"{CLINICS}/{task.clinic_id}"
        docs = self.store.get_all(list(paths.values()))
        found = {name: docs.get(doc_path) for name, doc_path in paths.items()}
        if clinic is None:
            clinic_doc = found["clinic"]
            if clinic_doc is None:
                raise PermanentError("clinic not found", code="clinic_missing")
            clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
            self.clinics.put(clinic)
        ledger_doc = found["ledger"]
        return _Read(Entry.from_doc(ledger_doc) if ledger_doc else None, found["appointment"], found["patient"], clinic)

    def deliver(self, task: AppointmentTask, attempt: Attempt) -> Outcome:
        read = self._read(task)
        entry, clinic = read.entry, read.clinic
        if entry is not None and entry.is_done:
            return Outcome("duplicate", reason=entry.state.value)
        fields = {
            "kind": task.type,
            "offset_hours": task.offset_hours,
            "clinic_id": task.clinic_id,
            "appointment_id": task.appointment_id,
            "patient_id": task.patient_id,
            "send_at": task.send_at,
        }

        def skip(reason: str) -> Outcome:
            state = self.ledger.skip(task.dedup_key, entry, reason, fields)
            return Outcome("skipped" if state == State.SKIPPED else "duplicate", reason=reason)

        if read.appointment is None:
            return skip("appointment_missing")
        appointment = Appointment.from_doc(read.appointment.id, read.appointment.data)
        check_task(task, appointment, clinic)
        reason = skip_reason(task, appointment, self.clock.now())
        if reason:
            return skip(reason)
        if read.patient is None:
            raise PermanentError("patient not found", code="patient_missing")
        patient = Patient.from_doc(read.patient.id, read.patient.data)
        channels = usable_channels(patient, clinic)
        if not channels:
            return skip(unreachable_reason(patient))
        if entry is not None and entry.state == State.UNCONFIRMED:
            found = self._reconcile(entry, task, clinic, patient, appointment)
            if found is not None:
                return found
        try:
            claim = self.ledger.claim(task.dedup_key, entry, fields)
        except AlreadyDone as done:
            return Outcome("duplicate", reason=done.entry.state.value)
        except RetryableError as exc:
            if attempt.last and exc.code == "claim_lost":
                return Outcome("duplicate", reason="claimed_by_a_concurrent_delivery")
            raise
        try:
            return self._send_all(claim, channels, task, clinic, patient, appointment)
        except StaleClaim as stale:
            log.warning(
                "a takeover finished this message first; its result stands", dedup_key=task.dedup_key, error=str(stale)
            )
            return Outcome("superseded")
        except SendUnconfirmed as exc:
            self.ledger.mark_unconfirmed(claim, channel=exc.channel, reason=exc.code)
            raise
        except RetryableError as exc:
            self._give_back(claim, exc.code, attempt)
            raise
        except PermanentError as exc:
            self.ledger.fail(claim, exc.code)
            raise
        except Exception as exc:
            self._give_back(claim, type(exc).__name__, attempt)
            raise

    def _give_back(self, claim: Claim, code: str, attempt: Attempt) -> None:
        """A transient failure: the retry claims again; on the last attempt the ledger says failed."""
        try:
            if attempt.last:
                self.ledger.fail(claim, code)
            else:
                self.ledger.release(claim, code)
        except StaleClaim:
            pass  # a takeover already moved it on; its result stands

    def _send_all(
        self,
        claim: Claim,
        channels: list[str],
        task: AppointmentTask,
        clinic: Clinic,
        patient: Patient,
        appointment: Appointment,
    ) -> Outcome:
        rejected: RecipientRejected | None = None
        for channel in channels:
            try:
                provider_id = self._send(channel, claim, task, clinic, patient, appointment)
            except RecipientRejected as rejection:
                rejected = rejection
                if rejection.reason == "sms_opted_out":
                    self.opt_outs.set_sms_opt_out(patient.id, True, source="twilio_21610")
                log.warning(
                    "recipient rejected; trying the next channel",
                    channel=channel,
                    error_code=rejection.code,
                    dedup_key=task.dedup_key,
                )
                continue
            self.ledger.mark_sent(claim, channel=channel, provider_message_id=provider_id)
            return Outcome("sent", channel=channel, provider_message_id=provider_id)
        assert rejected is not None
        raise rejected

    def _sms_body(self, task: AppointmentTask, clinic: Clinic, patient: Patient, appointment: Appointment) -> str:
        return render_sms(task.type, clinic=clinic, patient=patient, appointment=appointment)

    def _send(
        self,
        channel: str,
        claim: Claim,
        task: AppointmentTask,
        clinic: Clinic,
        patient: Patient,
        appointment: Appointment,
    ) -> str:
        if channel == SMS:
            callback = None
            if self.status_callback_url:
                query = urlencode({"ledger": task.dedup_key, "g": claim.generation})
                callback = f"{self.status_callback_url}?{query}"
            assert patient.phone and clinic.sms_from
            return self.sms.send_sms(
                OutgoingSms(
                    to=patient.phone,
                    sender=clinic.sms_from,
                    status_callback=callback,
                    body=self._sms_body(task, clinic, patient, appointment),
                )
            )
        message = render(task.type, clinic=clinic, patient=patient, appointment=appointment)
        assert patient.email and clinic.email_from
        return self.email.send_email(
            OutgoingEmail(
                to=patient.email,
                sender=clinic.email_from,
                subject=message.subject,
                text=message.text,
                html=message.html,
                reference=f"{task.dedup_key}:{claim.generation}",
            )
        )

    def _reconcile(
        self, entry: Entry, task: AppointmentTask, clinic: Clinic, patient: Patient, appointment: Appointment
    ) -> Outcome | None:
        """An earlier attempt's answer was lost: did the message go? Evidence first, then the provider."""
        channel = str(entry.data.get("channel") or "")
        evidence = entry.data.get("delivery_message_id")
        if evidence and entry.data.get("delivery_generation") == entry.generation:
            if self.ledger.confirm(entry, channel=channel, provider_message_id=str(evidence)):
                return Outcome(
                    "sent", reason="confirmed_by_callback", channel=channel, provider_message_id=str(evidence)
                )
        if channel == SMS and patient.phone and clinic.sms_from:
            since = entry.data.get("claimed_at")
            since = since if isinstance(since, datetime) else self.clock.now() - timedelta(days=1)
            body = self._sms_body(task, clinic, patient, appointment)
            for message in self.sms.find_sent(to=patient.phone, sender=clinic.sms_from, since=since):
                if message.body == body and self.ledger.confirm(entry, channel=SMS, provider_message_id=message.sid):
                    return Outcome("sent", reason="found_at_provider", channel=SMS, provider_message_id=message.sid)
        log.info("unconfirmed send not found; sending again", dedup_key=task.dedup_key, channel=channel or None)
        return None

    def reopen(self, task: AppointmentTask) -> Reopen:
        """The retry sweep's hook: make the ledger ready for an operator's retry of this message."""
        return self.ledger.reopen(task.dedup_key)
