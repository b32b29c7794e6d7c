"""Sending one rebooking nudge or "we missed you": re-read, decide (send / move / skip), send, record
(docs/rebooking.md).

Nothing in the body is trusted beyond its ids: the ledger key is derived again from the appointment as
re-read. Then, in order:
- both: the appointment gone → skipped "appointment_missing"; its status no longer what was planned for
  (a completed visit, a no-show) → skipped "status_<status>"; the patient booked at the clinic since →
  skipped "rebooked"; the clinic's setting gone → skipped "setting_removed";
- a "we missed you" is transactional (about the patient's own visit): the patient's channels in order,
  like a reminder; no channel → skipped "opted_out" / "no_contact";
- a rebooking nudge is marketing (it invites a purchase): SMS only, skipped "sms_opt_out" / "no_phone" /
  "no_marketing_consent" as a campaign message is; outside the recipient's window or at the daily cap it
  is moved (a new named task, the ledger's send_at moved with it) within REBOOK_VALID of its planned time,
  else skipped "window_ended" / "daily_cap"; its text ends with the STOP line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from shared.campaigns.model import Marketing
from shared.campaigns.wording import STOP_LINE
from shared.consent.caps import WINDOW as CAP_PERIOD
from shared.consent.caps import MarketingCaps
from shared.consent.consents import Consents
from shared.consent.recipient_time import next_allowed_before, place_of
from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, Appointment, Clinic, Patient
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.channels import SMS, Recipient, recipients, unreachable_reason
from shared.messaging.keys import message_key
from shared.messaging.ledger import Entry, Ledger
from shared.messaging.ledger import path as ledger_path
from shared.messaging.sender import MessageSender, Wording, duplicate_of
from shared.messaging.templates import render, render_sms
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.platform.store import Doc, Store
from shared.rebooking.bookings import booked_since
from shared.rebooking.tasks import REBOOK
from shared.tasks.declaration import Queue
from shared.tasks.queue import TaskQueue, TaskSpec
from shared.tasks.router import Attempt, Outcome, Status

REBOOK_VALID = timedelta(days=7)  # a nudge not allowed to go within a week of its planned time is dropped
PLANNED_STATUS = {REBOOK: "completed"}  # the other kind, "we missed you", is about a no_show


def check_task(task: AppointmentTask, appointment: Appointment) -> None:
    """The body must describe this appointment exactly as the planner would have: ids and key."""
    if appointment.clinic_id != task.clinic_id or appointment.patient_id != task.patient_id:
        raise PermanentError("task ids do not match the appointment", code="payload_mismatch")
    if task.offset_hours is not None:
        raise PermanentError("a rebooking message has no offset", code="payload_mismatch")
    if message_key(task.type, appointment.id, task.appointment_start, None) != task.dedup_key:
        raise PermanentError("task dedup_key does not match its appointment", code="dedup_key_mismatch")


def skip_reason(task: AppointmentTask, appointment: Appointment, clinic: Clinic) -> str | None:
    """Why this message must not go out any more (before anything about the patient is read), or None."""
    if appointment.status != PLANNED_STATUS.get(task.type, "no_show"):
        return f"status_{appointment.status}"
    if task.type == REBOOK:
        return None if clinic.rebook_after_days(appointment.service_name) is not None else "setting_removed"
    return None if clinic.no_show_message else "setting_removed"


class RebookingMessages:
    """The service behind rebook_nudge and no_show_message."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sender: MessageSender,
        tasks: TaskQueue,
        queues: Callable[[Queue], str],
        clock: Clock,
        consents: Consents,
        caps: MarketingCaps,
    ) -> None:
        self.store, self.ledger, self.sender, self.tasks, self.queues = store, ledger, sender, tasks, queues
        self.clock, self.consents, self.caps = clock, consents, caps

    def deliver(self, task: AppointmentTask, attempt: Attempt) -> Outcome:
        paths = {
            "ledger": ledger_path(task.dedup_key),
            "appointment": f"{APPOINTMENTS}/{task.appointment_id}",
            "patient": f"{PATIENTS}/{task.patient_id}",
            "clinic": f"{CLINICS}/{task.clinic_id}",
        }
        docs = self.store.get_all(list(paths.values()))
        found = {name: docs.get(doc_path) for name, doc_path in paths.items()}
        entry = Entry.from_doc(found["ledger"]) if found["ledger"] else None
        if entry is not None and entry.is_done:
            return duplicate_of(entry)
        clinic_doc = found["clinic"]
        if clinic_doc is None:
            raise PermanentError("clinic not found", code="clinic_missing")
        clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
        fields = task.ledger_fields()

        def skip(reason: str) -> Outcome:
            return self.sender.skip(task.dedup_key, entry, reason, fields)

        if found["appointment"] is None:
            return skip("appointment_missing")
        appointment = Appointment.from_doc(found["appointment"].id, found["appointment"].data)
        check_task(task, appointment)
        reason = skip_reason(task, appointment, clinic)
        if reason:
            return skip(reason)
        if found["patient"] is None:
            return skip("patient_missing")
        patient = Patient.from_doc(found["patient"].id, found["patient"].data)
        if booked_since(self.store, appointment):
            return skip("rebooked")
        wording = partial(render, task.type, clinic=clinic, patient=patient, appointment=appointment)
        if task.type != REBOOK:
            reachable = recipients(patient, clinic)
            if not reachable:
                return skip(unreachable_reason(patient))
            sms = partial(render_sms, task.type, clinic=clinic, patient=patient, appointment=appointment)
            return self.sender.deliver(
                task.dedup_key,
                entry,
                fields,
                reachable,
                Wording(sms=sms, email=wording),
                attempt,
                patient_id=patient.id,
            )
        return self._nudge(task, entry, fields, skip, clinic, clinic_doc, patient, appointment, attempt)

    def _nudge(
        self,
        task: AppointmentTask,
        entry: Entry | None,
        fields: dict[str, object],
        skip: Callable[[str], Outcome],
        clinic: Clinic,
        clinic_doc: Doc,
        patient: Patient,
        appointment: Appointment,
        attempt: Attempt,
    ) -> Outcome:
        """A marketing SMS: consent, the recipient's window and the daily cap, as a campaign message."""
        if patient.sms_opt_out:
            return skip("sms_opt_out")
        if patient.phone is None or not patient.has_sms_number or not clinic.sms_from:
            return skip("no_phone")
        basis = self.consents.current(patient.id).marketing_basis("sms")
        if basis is None:
            return skip("no_marketing_consent")
        fields.update(channel=SMS.value, purpose="marketing", basis=basis)
        marketing = Marketing.of_clinic(clinic.id, clinic_doc.data)
        place = place_of(patient.phone, clinic.timezone)
        now, deadline = self.clock.now(), task.send_at + REBOOK_VALID
        allowed_at = next_allowed_before(now, place, marketing.hours, deadline)
        if allowed_at is None:
            return skip("window_ended")
        if allowed_at > now:
            return self._move(task, allowed_at)
        if self.caps.at_cap(patient.id, place, marketing.daily_cap, now):
            later = next_allowed_before(now + CAP_PERIOD, place, marketing.hours, deadline)
            return self._move(task, later) if later is not None else skip("daily_cap")
        sms = partial(render_sms, REBOOK, clinic=clinic, patient=patient, appointment=appointment, footer=STOP_LINE)
        recipient = Recipient(SMS, patient.phone, clinic.sms_from, clinic.smoke_test)
        email = partial(render, REBOOK, clinic=clinic, patient=patient, appointment=appointment)
        return self.sender.deliver(
            task.dedup_key, entry, fields, [recipient], Wording(sms=sms, email=email), attempt, patient_id=patient.id
        )

    def _move(self, task: AppointmentTask, at: datetime) -> Outcome:
        """Re-time the nudge to `at`: a new named task, and the ledger's send_at with it (the stuck-message
        sweep looks for scheduled entries past their send_at)."""
        moved = dataclasses.replace(task, send_at=at)
        if not self.ledger.retime(task.dedup_key, at):
            return Outcome(Status.DUPLICATE, reason="not_scheduled")  # another delivery settled it meanwhile
        try:
            spec = TaskSpec(self.queues(Queue.SMS), f"{task.dedup_key}@{at.isoformat()}", moved.to_json(), at)
            self.tasks.create(spec)
        except Exception as exc:
            raise RetryableError("could not re-time the rebooking nudge", code="enqueue_failed") from exc
        return Outcome(Status.DONE, reason="moved")
