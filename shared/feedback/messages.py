"""The feedback's messages at send time (docs/feedback.md): the review link to a patient who scored high, the
alert to the managers of a clinic whose patient scored low. Everything is re-read: the review goes only
while the first score is high and the clinic has a review link (else skipped, with the reason, in the
ledger); the alert goes through the staff emails' path (shared.reports.emails), one ledger message per
manager. Both through the one sender, so a redelivered task sends nothing twice.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from shared.contract.models import APPOINTMENTS, PATIENTS, Appointment, Clinic, Patient
from shared.feedback.scores import Scores, Survey
from shared.feedback.scores import path as feedback_path
from shared.feedback.tasks import REVIEW, AlertTask, ReviewTask
from shared.messaging.channels import recipients, unreachable_reason
from shared.messaging.delivery import ClinicCache
from shared.messaging.ledger import Entry, Ledger
from shared.messaging.ledger import path as ledger_path
from shared.messaging.sender import MessageSender, Wording, duplicate_of
from shared.messaging.templates import EMAILS, format_local, render, render_sms
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError
from shared.platform.html_templates import render_html
from shared.platform.masking import mask_name
from shared.platform.store import Store
from shared.reports.emails import StaffEmails
from shared.reports.render import Email
from shared.tasks.router import Attempt, Outcome, Status


def alert_email(clinic: Clinic, survey: Survey, patient: Patient | None, appointment: Appointment | None) -> Email:
    """The managers' email about a low score: which visit, the score, the patient as a masked hint (initials and
    the patient id; the name stays in Firestore, where the front desk's request and the console show it)."""
    initials = f"{mask_name(patient.first_name)} {mask_name(patient.last_name)}".strip() if patient else ""
    who = f"A patient ({initials + ', ' if initials else ''}id {survey.patient_id})"
    when = format_local(appointment.start, clinic.zone) if appointment else "an earlier visit"
    provider = f" with {appointment.provider_name}" if appointment and appointment.provider_name else ""
    subject = f"{clinic.name}: a patient scored their visit {survey.score}/5"
    lines = [
        f"{who} scored their visit of {when}{provider} {survey.score} out of 5.",
        "A patient request is open for the front desk (patient_requests, kind feedback_low_score).",
        f"Appointment {survey.appointment_id}.",
    ]
    html = render_html(EMAILS, "message.html", paragraphs=lines, signoff="", clinic="medspa-jobs")
    return Email(subject=subject, text="\n".join(lines) + "\n", html=html)


class FeedbackMessages:
    """The service behind feedback_review and feedback_alert."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sender: MessageSender,
        emails: StaffEmails,
        clock: Clock,
        clinics: ClinicCache | None = None,
    ) -> None:
        self.store, self.ledger, self.sender, self.emails, self.clock = store, ledger, sender, emails, clock
        self.clinics = clinics or ClinicCache(ttl_seconds=0)  # rare messages: the clinic as it stands, never cached
        self.scores = Scores(store, clock)

    def deliver_review(self, task: ReviewTask, attempt: Attempt) -> Outcome:
        paths = {
            "ledger": ledger_path(task.dedup_key),
            "feedback": feedback_path(task.appointment_id),
            "appointment": f"{APPOINTMENTS}/{task.appointment_id}",
        }
        found, clinic = self.clinics.read(self.store, task.clinic_id, paths)
        entry = Entry.from_doc(found["ledger"]) if found["ledger"] else None
        if entry is not None and entry.is_done:
            return duplicate_of(entry)
        survey = Survey.from_doc(found["feedback"]) if found["feedback"] else None
        fields: dict[str, Any] = {
            "kind": REVIEW,
            "clinic_id": task.clinic_id,
            "appointment_id": task.appointment_id,
            "patient_id": survey.patient_id if survey else None,
            "send_at": self.clock.now(),
        }

        def skip(reason: str) -> Outcome:
            return self.sender.skip(task.dedup_key, entry, reason, fields)

        if survey is None or survey.clinic_id != task.clinic_id:
            return skip("no_survey")
        if survey.score is None or not survey.high:
            return skip("not_high")
        url = clinic.feedback.review_url
        if not url:
            return skip("no_review_url")
        if found["appointment"] is None:
            return skip("appointment_missing")
        appointment = Appointment.from_doc(found["appointment"].id, found["appointment"].data)
        patient_doc = self.store.get(f"{PATIENTS}/{survey.patient_id}")
        if patient_doc is None:
            raise PermanentError("patient not found", code="patient_missing")
        patient = Patient.from_doc(patient_doc.id, patient_doc.data)
        reachable = recipients(patient, clinic)
        if not reachable:
            return skip(unreachable_reason(patient))
        wording = Wording(
            sms=partial(render_sms, REVIEW, clinic=clinic, patient=patient, appointment=appointment, link=url),
            email=partial(render, REVIEW, clinic=clinic, patient=patient, appointment=appointment, link=url),
        )
        outcome = self.sender.deliver(task.dedup_key, entry, fields, reachable, wording, attempt, patient_id=patient.id)
        if outcome.status in (Status.SENT, Status.DUPLICATE):
            self.scores.mark_review_sent(task.appointment_id)
        return outcome

    def deliver_alert(self, task: AlertTask, attempt: Attempt) -> Outcome:
        survey = self.scores.read(task.appointment_id)
        if survey is None or survey.clinic_id != task.clinic_id:
            raise PermanentError("the low score's survey does not exist for this clinic", code="payload_mismatch")
        if not survey.low:
            return Outcome(Status.SKIPPED, reason="not_low")
        docs = self.store.get_all([f"{PATIENTS}/{survey.patient_id}", f"{APPOINTMENTS}/{task.appointment_id}"])
        patient_doc = docs.get(f"{PATIENTS}/{survey.patient_id}")
        appointment_doc = docs.get(f"{APPOINTMENTS}/{task.appointment_id}")
        patient = Patient.from_doc(patient_doc.id, patient_doc.data) if patient_doc else None
        appointment = Appointment.from_doc(appointment_doc.id, appointment_doc.data) if appointment_doc else None
        fields = {"kind": task.type, "appointment_id": task.appointment_id}

        def email_of(clinic: Clinic) -> Email:
            return alert_email(clinic, survey, patient, appointment)

        return self.emails.deliver_to_managers(task.clinic_id, task.recipient_key, fields, email_of, attempt)
