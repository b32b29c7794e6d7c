"""Sending waitlist_offer and waitlist_result messages: re-read, decide (send / skip), then
shared.messaging.sender (claim, send, record) like every other message.

Nothing in a task body is trusted beyond its ids: the ledger key is derived again from (offer, entry),
and an offer is sent only if, as read just now, the offer is still open, the entry still holds it inside
its window, and the patient is still reachable and free at that time. A result is skipped for a patient
who already has their answer (they replied, or clicked the link) and for a winner who claimed by SMS
(their reply was the confirmation). Reading "no answer yet" is not enough, as a YES can be answered between
that read and the send: a "taken" or "expired" result first records the entry's answer itself
(shared.waitlist.offers, channel "message", a create), and is sent only if that create was first (or was
this result's own, on a retry); a YES answered before it wins the create and the result is skipped. SMS
offers ask for YES; email offers carry a one-time claim link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import urlencode

from shared.contract.models import PATIENTS, Clinic, Patient
from shared.messaging.channels import Recipient, recipients, unreachable_reason
from shared.messaging.delivery import ClinicCache
from shared.messaging.ledger import Entry as LedgerEntry
from shared.messaging.ledger import Ledger
from shared.messaging.ledger import path as ledger_path
from shared.messaging.sender import MessageSender, Wording, duplicate_of
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, PermanentError
from shared.platform.store import Doc, Store
from shared.tasks.declaration import Reopen
from shared.tasks.router import Attempt, Outcome
from shared.waitlist import entries as entries_module
from shared.waitlist import offers as offers_module
from shared.waitlist import tokens
from shared.waitlist.bookings import Bookings, booked_appointment_id, overlaps
from shared.waitlist.entries import Entry, Status
from shared.waitlist.offers import SlotOffer
from shared.waitlist.tasks import Result, WaitlistOfferTask, WaitlistResultTask
from shared.waitlist.templates import offer_email, offer_sms, result_message, result_sms


@dataclass(frozen=True)
class _Read:
    ledger: LedgerEntry | None
    offer: SlotOffer | None
    entry: Entry | None
    patient: Patient | None
    clinic: Clinic
    answer: Doc | None


@dataclass(frozen=True)
class Offering:
    """An offer that may go out now, as read: everything its message needs."""

    offer: SlotOffer
    entry: Entry
    deadline: datetime  # the end of the entry's window to answer
    patient: Patient
    to: list[Recipient]


@dataclass(frozen=True)
class Telling:
    """A result that may go out now, as read."""

    offer: SlotOffer
    patient: Patient
    to: list[Recipient]


def claim_link(claim_url: str, token: str) -> str:
    return f"{claim_url}?{urlencode({'t': token})}"


class WaitlistMessages:
    """The service behind waitlist_offer and waitlist_result."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sender: MessageSender,
        clock: Clock,
        claim_url: str,
        token_key: bytes,
        clinics: ClinicCache | None = None,
    ) -> None:
        self.store, self.ledger, self.sender, self.clock = store, ledger, sender, clock
        self.claim_url, self.token_key = claim_url, token_key
        self.clinics = clinics or ClinicCache()
        self.bookings = Bookings(store, clock)
        self.offers = offers_module.SlotOffers(store, clock)

    def _read(self, task: WaitlistOfferTask | WaitlistResultTask) -> _Read:
        """One batched read of everything the decision needs."""
        paths = {
            "ledger": ledger_path(task.dedup_key),
            "offer": offers_module.path(task.offer_id),
            "entry": entries_module.path(task.entry_id),
            "patient": f"{PATIENTS}/{task.patient_id}",
            "answer": offers_module.answer_path(task.offer_id, task.entry_id),
        }
        found, clinic = self.clinics.read(self.store, task.clinic_id, paths)
        ledger_doc, offer_doc, entry_doc, patient_doc = (
            found["ledger"],
            found["offer"],
            found["entry"],
            found["patient"],
        )
        offer = offers_module.SlotOffer.from_doc(offer_doc) if offer_doc else None
        try:
            entry = Entry.from_doc(entry_doc) if entry_doc else None
        except InvalidDocument:
            entry = None  # a hand-broken entry is not offered anything
        patient = Patient.from_doc(patient_doc.id, patient_doc.data) if patient_doc else None
        if offer is not None and offer.clinic_id != task.clinic_id:
            raise PermanentError("task clinic does not match the offer", code="payload_mismatch")
        if entry is not None and entry.patient_id != task.patient_id:
            raise PermanentError("task patient does not match the waitlist entry", code="payload_mismatch")
        return _Read(
            LedgerEntry.from_doc(ledger_doc) if ledger_doc else None, offer, entry, patient, clinic, found["answer"]
        )

    def _fields(self, task: WaitlistOfferTask | WaitlistResultTask) -> dict[str, Any]:
        return {
            "kind": task.type,
            "clinic_id": task.clinic_id,
            "patient_id": task.patient_id,
            "offer_id": task.offer_id,
            "entry_id": task.entry_id,
            "send_at": self.clock.now(),
        }

    def _skip(self, task: WaitlistOfferTask | WaitlistResultTask, read: _Read, reason: str) -> Outcome:
        return self.sender.skip(task.dedup_key, read.ledger, reason, self._fields(task))

    # ------------------------------------------------------------------------------------- offers

    def offering(self, read: _Read) -> Offering | str:
        """The offer as it may go out now, or why it must not (checked just before sending)."""
        offer, entry = read.offer, read.entry
        if offer is None:
            return "offer_missing"
        if not offer.is_open:
            return f"offer_{offer.status}"
        if entry is None or not entry.holds(offer.id):
            return "not_offered"
        if entry.offer_expires_at is None or self.clock.now() >= entry.offer_expires_at:
            return "window_over"
        reach = _reach(read)
        if isinstance(reach, str):
            return reach
        patient, to = reach
        busy = self.bookings.busy([patient.id]).get(patient.id, [])
        if overlaps(busy, offer.start, offer.end, ignore=booked_appointment_id(offer.id)):
            return "busy_then"
        return Offering(offer, entry, entry.offer_expires_at, patient, to)

    def deliver_offer(self, task: WaitlistOfferTask, attempt: Attempt) -> Outcome:
        read = self._read(task)
        if read.ledger is not None and read.ledger.is_done:
            return duplicate_of(read.ledger)
        offering = self.offering(read)
        if isinstance(offering, str):
            return self._skip(task, read, offering)
        offer, patient, clinic, deadline = offering.offer, offering.patient, read.clinic, offering.deadline
        link = claim_link(self.claim_url, tokens.sign(self.token_key, offer.id, offering.entry.id, deadline))
        wording = Wording(
            sms=partial(offer_sms, clinic=clinic, patient=patient, start=offer.start, deadline=deadline),
            email=partial(offer_email, clinic=clinic, patient=patient, start=offer.start, deadline=deadline, link=link),
        )
        return self.sender.deliver(
            task.dedup_key, read.ledger, self._fields(task), offering.to, wording, attempt, patient_id=patient.id
        )

    # ------------------------------------------------------------------------------------ results

    def telling(self, task: WaitlistResultTask, read: _Read) -> Telling | str:
        """The result as it may go out now, or why it must not."""
        offer, entry = read.offer, read.entry
        if offer is None:
            return "offer_missing"
        if entry is None or entry.status == Status.REMOVED:
            return "entry_removed"
        if task.outcome == Result.WON:
            if offer.winner_entry_id != task.entry_id:
                return "not_the_winner"
            if offer.claim_channel != "link":
                return "answered_by_reply"
        elif read.answer is not None and read.answer.get("channel") != offers_module.TOLD:
            return "already_answered"
        reach = _reach(read)
        return reach if isinstance(reach, str) else Telling(offer, *reach)

    def deliver_result(self, task: WaitlistResultTask, attempt: Attempt) -> Outcome:
        read = self._read(task)
        if read.ledger is not None and read.ledger.is_done:
            return duplicate_of(read.ledger)
        telling = self.telling(task, read)
        if isinstance(telling, str):
            return self._skip(task, read, telling)
        offer, patient, clinic = telling.offer, telling.patient, read.clinic
        if task.outcome != Result.WON:
            first = self.offers.record_answer(offer.id, task.entry_id, outcome=task.outcome, channel=offers_module.TOLD)
            if first.by_patient:  # their YES (or click) was answered since the read: the reply told them
                return self._skip(task, read, "already_answered")

        wording = Wording(
            sms=partial(result_sms, task.outcome, clinic=clinic, patient=patient, start=offer.start),
            email=partial(result_message, task.outcome, clinic=clinic, patient=patient, start=offer.start),
        )
        return self.sender.deliver(
            task.dedup_key, read.ledger, self._fields(task), telling.to, wording, attempt, patient_id=patient.id
        )

    def reopen(self, dedup_key: str) -> Reopen:
        """The retry sweep's hook: make the ledger ready for an operator's retry of this message."""
        return self.ledger.reopen(dedup_key)


def _reach(read: _Read) -> tuple[Patient, list[Recipient]] | str:
    """The patient and every channel that reaches them now, or why none does."""
    if read.patient is None:
        return "patient_missing"
    to = recipients(read.patient, read.clinic)
    return (read.patient, to) if to else unreachable_reason(read.patient)
