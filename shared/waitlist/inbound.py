"""A patient's text, from Twilio's inbound-SMS webhook (already signature-checked by the entry point),
to its one effect and its TwiML reply (docs/waitlist.md, "Inbound SMS").

- The clinic is the one whose sms_from is the number (or Messaging Service) written to; the patient, the
  clinic's patient with the sender's number.
- The text's intent (shared.waitlist.keywords) routes it: YES claims the offer the patient holds (their
  latest pending prompt of that kind); C / CONFIRM confirms their next booked appointment; Twilio's
  opt-out and opt-in words are recorded on the patient and in consents/ (shared.messaging.opt_outs), and
  so is any other text that revokes (shared.consent.revocation), answered with the opt-out confirmation
  Twilio did not send; a text that may revoke opts out too and lands in patient_requests for the front
  desk; the clinic's marketing keyword (JOIN) records a marketing SMS grant and answers the CTIA
  confirmation; HELP answers as CTIA expects; a request to reschedule or cancel becomes a
  patient_requests doc for the front desk; while the patient has a feedback survey open (shared.feedback,
  docs/feedback.md), a 1-5 is its score, another number ("7", "five") is answered with the ask for one,
  and other text reaches the front desk (patient_requests, kind feedback_comment); anything else gets a
  short help text.
- Idempotent on Twilio's retries: inbound_sms/{MessageSid} (this module is its only writer) records the
  outcome, and a delivery of a MessageSid seen before answers the same reply and changes nothing.
  Every effect is itself idempotent too, so two deliveries racing have one effect.
- A form that names nothing (no MessageSid, a sender that is not a phone number, an unknown clinic) is
  answered with an empty TwiML response and logged: never a 5xx.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.consent.consents import ConsentEvent, Consents, ConsentStatus, Purpose
from shared.contract.bodies import safe_text
from shared.contract.models import CLINICS, E164, LATEST, MESSAGING_SERVICE_SID, PATIENTS, Clinic, Patient
from shared.messaging.opt_outs import OptOuts
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument
from shared.platform.store import Doc, Store
from shared.waitlist import keywords
from shared.waitlist.bookings import Bookings
from shared.waitlist.claims import Claims, answered_offer
from shared.waitlist.entries import WaitlistEntries
from shared.waitlist.keywords import Intent
from shared.waitlist.requests import Kind, PatientRequests
from shared.waitlist.templates import reply_text

if TYPE_CHECKING:
    from shared.feedback.surveys import Surveys

COLLECTION = "inbound_sms"
RETENTION = timedelta(days=30)  # expire_at, for a TTL policy: Twilio retries within minutes
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
MAX_PATIENTS_PER_NUMBER = 5  # a family may share a phone
SENDER_CACHE_SECONDS = 60.0
SILENT = ("opted_out", "opted_in")  # Twilio answers its own keywords; we add nothing


@dataclass(frozen=True)
class InboundSms:
    message_sid: str
    sender: str  # the patient's number (From)
    to: str  # the clinic's number written to (To)
    messaging_service_sid: str | None
    body: str


@dataclass(frozen=True)
class Reply:
    text: str | None  # None: an empty <Response/>
    outcome: str


def parse_inbound(form: Mapping[str, str]) -> InboundSms | str:
    """The message, or why the form names nothing we can answer."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not MESSAGE_SID.fullmatch(sid):
        return "bad_message_sid"
    sender, to = (form.get("From") or "").strip(), (form.get("To") or "").strip()
    if not E164.match(sender):
        return "bad_sender"
    service = (form.get("MessagingServiceSid") or "").strip()
    if not (E164.match(to) or MESSAGING_SERVICE_SID.match(to)) and not MESSAGING_SERVICE_SID.match(service):
        return "bad_recipient"
    body = safe_text(form.get("Body") or "", keywords.MAX_CHARS)
    return InboundSms(sid, sender, to, service if MESSAGING_SERVICE_SID.match(service) else None, body)


def twiml(text: str | None) -> str:
    """A TwiML messaging response: one reply message, or none."""
    from twilio.twiml.messaging_response import MessagingResponse

    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


class ClinicsBySender:
    """Which clinic sends from a number or Messaging Service; clinics change rarely (a minute per instance)."""

    def __init__(self, store: Store, ttl_seconds: float = SENDER_CACHE_SECONDS) -> None:
        self.store, self.ttl, self._lock = store, ttl_seconds, threading.Lock()
        self._items: dict[str, tuple[float, Clinic | None]] = {}

    def find(self, message: InboundSms) -> Clinic | None:
        for sender in (message.messaging_service_sid, message.to):
            if sender:
                clinic = self._lookup(sender)
                if clinic is not None:
                    return clinic
        return None

    def _lookup(self, sender: str) -> Clinic | None:
        with self._lock:
            item = self._items.get(sender)
        if item is not None and time.monotonic() - item[0] <= self.ttl:
            return item[1]
        clinic = None
        for doc in self.store.query(CLINICS, where=[("sms_from", "==", sender)], limit=2):
            try:
                clinic = Clinic.from_doc(doc.id, doc.data)
                break
            except InvalidDocument as exc:
                log.warning("clinic breaks the contract; not matched", doc_id=exc.doc_id, field=exc.field)
        with self._lock:
            self._items[sender] = (time.monotonic(), clinic)
        return clinic


class Conversations:
    """The service behind the inbound-SMS webhook."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        claims: Claims,
        clinics: ClinicsBySender | None = None,
        surveys: Surveys | None = None,
    ) -> None:
        """`surveys`: the feedback surveys a text may answer (without it, a number is plain text)."""
        self.store, self.clock, self.claims, self.surveys = store, clock, claims, surveys
        self.clinics = clinics or ClinicsBySender(store)
        self.opt_outs, self.requests = OptOuts(store, clock), PatientRequests(store, clock)
        self.consents = Consents(store, clock)
        self.entries, self.bookings = WaitlistEntries(store, clock), Bookings(store, clock)

    def handle(self, form: Mapping[str, str]) -> Reply:
        message = parse_inbound(form)
        if isinstance(message, str):
            log.warning("inbound SMS names nothing; answered empty", outcome=message)
            return Reply(None, message)
        with log.bound(message_sid=message.message_sid):
            clinic = self.clinics.find(message)
            if clinic is None:
                log.warning("inbound SMS to a number no clinic sends from; answered empty", outcome="unknown_clinic")
                return Reply(None, "unknown_clinic")
            patients = self._patients(clinic, message.sender)
            seen = self.store.get(f"{COLLECTION}/{message.message_sid}")
            if seen is not None:
                outcome, start = str(seen.get("outcome") or "other"), seen.get("start")
                log.info("inbound SMS seen before; same answer", outcome=outcome)
                return self._reply(outcome, clinic, patients, start if isinstance(start, datetime) else None)
            intent = keywords.classify(message.body, clinic.marketing.keyword)
            outcome, start = self._act(intent, message, clinic, patients)
            self.store.create(
                f"{COLLECTION}/{message.message_sid}",
                {
                    "clinic_id": clinic.id,
                    "patient_id": patients[0].id if patients else None,
                    "intent": intent.value,
                    "outcome": outcome,
                    "start": start,
                    "received_at": self.clock.now(),
                    "expire_at": self.clock.now() + RETENTION,
                },
            )
            log.info("inbound SMS answered", intent=intent.value, outcome=outcome, clinic_id=clinic.id)
            return self._reply(outcome, clinic, patients, start)

    def _reply(self, outcome: str, clinic: Clinic, patients: list[Patient], start: datetime | None) -> Reply:
        if outcome in SILENT:
            return Reply(None, outcome)
        from shared.feedback import replies

        if outcome in replies.OUTCOMES:
            return Reply(replies.reply_text(outcome, clinic=clinic, patient=patients[0] if patients else None), outcome)
        return Reply(
            reply_text(outcome, clinic=clinic, patient=patients[0] if patients else None, start=start), outcome
        )

    def _patients(self, clinic: Clinic, phone: str) -> list[Patient]:
        found = []
        where = [("clinic_id", "==", clinic.id), ("phone", "==", phone)]
        for doc in self.store.query(PATIENTS, where=where, limit=MAX_PATIENTS_PER_NUMBER):
            try:
                found.append(Patient.from_doc(doc.id, doc.data))
            except InvalidDocument as exc:
                log.warning("patient breaks the contract; not matched", doc_id=exc.doc_id, field=exc.field)
        return sorted(found, key=lambda patient: patient.id)

    def _act(
        self, intent: Intent, message: InboundSms, clinic: Clinic, patients: list[Patient]
    ) -> tuple[str, datetime | None]:
        """Do what the text asks; returns (outcome, the time it is about)."""
        if intent in (Intent.OPT_OUT, Intent.UNCERTAIN_OPT_OUT, Intent.OPT_IN):
            return self._opt_out_or_in(intent, message, clinic, patients), None
        if intent == Intent.HELP:
            return "help", None
        if not patients:
            return "unknown_patient", None
        if intent == Intent.MARKETING_OPT_IN:
            for patient in patients:  # the number's owner said JOIN: a family sharing it shares the answer
                self.consents.record(
                    ConsentEvent(
                        patient_id=patient.id,
                        clinic_id=clinic.id,
                        purpose=Purpose.MARKETING,
                        channel="sms",
                        status=ConsentStatus.GRANTED,
                        at=self.clock.now(),
                        source="keyword",
                        wording_version=clinic.marketing.wording_version,
                        event_id=message.message_sid,
                        message_sid=message.message_sid,
                    )
                )
            return "joined", None
        if intent == Intent.CLAIM:
            return self._claim(message, clinic, patients)
        if intent == Intent.CONFIRM:
            doc = self._next_appointment(clinic, patients)
            if doc is None:
                return "no_appointment", None
            return self.bookings.confirm(doc), _start(doc.data)
        if intent in (Intent.CANCEL_REQUEST, Intent.RESCHEDULE_REQUEST):
            doc = self._next_appointment(clinic, patients)
            patient_id = str(doc.get("patient_id")) if doc is not None else patients[0].id
            kind = Kind.CANCEL if intent == Intent.CANCEL_REQUEST else Kind.RESCHEDULE
            self.requests.record(
                clinic_id=clinic.id,
                patient_id=patient_id,
                kind=kind,
                message_sid=message.message_sid,
                appointment_id=doc.id if doc is not None else None,
            )
            return "request", None
        if intent in (Intent.SCORE, Intent.NOT_A_SCORE, Intent.OTHER) and self.surveys is not None:
            survey = self.surveys.open_survey(clinic.id, [p.id for p in patients])
            if survey is not None:
                if intent == Intent.OTHER:
                    return self.surveys.comment(survey, clinic, message.message_sid), None
                return self.surveys.text(survey, clinic, keywords.score(message.body), message.message_sid), None
        return "other", None

    def _opt_out_or_in(self, intent: Intent, message: InboundSms, clinic: Clinic, patients: list[Patient]) -> str:
        """Record the opt-out (or its end) on each patient with the number: Twilio stops (or resumes) delivery
        to the number whoever we match. The outcome says whether Twilio already answered the text."""
        opted_out, sid = intent != Intent.OPT_IN, message.message_sid
        by_twilio = keywords.answered_by_twilio(message.body) or intent == Intent.OPT_IN
        source = "keyword" if by_twilio else "revocation_text"
        for patient in patients:
            self.opt_outs.set_sms_opt_out(
                patient.id,
                opted_out,
                source="sms_opt_out" if opted_out else "sms_opt_in",
                event_id=sid,
                message_sid=sid,
                consent_source=source,
            )
        if intent == Intent.UNCERTAIN_OPT_OUT:
            if patients:
                self.requests.record(
                    clinic_id=clinic.id,
                    patient_id=patients[0].id,
                    kind=Kind.OPT_OUT_REVIEW,
                    message_sid=sid,
                    appointment_id=None,
                )
            return "opted_out_uncertain"
        if not opted_out:
            return "opted_in"
        return "opted_out" if by_twilio else "revoked"

    def _claim(self, message: InboundSms, clinic: Clinic, patients: list[Patient]) -> tuple[str, datetime | None]:
        if keywords.opts_back_in(message.body):
            for patient in patients:  # Twilio treats YES as opting back in: so do we
                if patient.sms_opt_out:
                    sid = message.message_sid
                    self.opt_outs.set_sms_opt_out(
                        patient.id, False, source="sms_yes", event_id=sid, message_sid=sid, consent_source="keyword"
                    )
        target = answered_offer(self.entries.of_patients([p.id for p in patients]), clinic.id)
        if target is None:
            return "no_offer", None
        offer_id, entry = target
        result = self.claims.claim(offer_id, entry.id, channel="sms")
        return result.outcome, result.offer.start if result.offer else None

    def _next_appointment(self, clinic: Clinic, patients: list[Patient]) -> Doc | None:
        docs = [doc for p in patients if (doc := self.bookings.next_appointment(clinic.id, p.id)) is not None]
        return min(docs, key=lambda doc: (_start(doc.data) or LATEST, doc.id)) if docs else None


def _start(data: Mapping[str, Any]) -> datetime | None:
    value = data.get("start")
    return value if isinstance(value, datetime) else None
