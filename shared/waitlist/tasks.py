"""The waitlist's task types: an offer of a freed slot to one patient (waitlist_offer), its outcome for
them (waitlist_result), both run by shared/waitlist/messages.py; and the end of a wave's window
(waitlist_wave), run by shared/waitlist/waves.py.

Every body carries ids and codes only. The ledger key of an offer or a result is derived from (offer,
waitlist entry), so one patient gets at most one offer and one result per offer, however often a task is
delivered or enqueued.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from shared.messaging.appointment_tasks import LedgerKey
from shared.messaging.keys import dedup_key
from shared.tasks.declaration import Declaration, Queue, Service
from shared.tasks.payload import Code, DocId, TaskBody, Whole, bad

if TYPE_CHECKING:
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome
    from shared.waitlist.messages import WaitlistMessages
    from shared.waitlist.waves import Waves

OFFER = "waitlist_offer"
RESULT = "waitlist_result"
WAVE = "waitlist_wave"
MAX_WAVE = 10_000


class Result(StrEnum):
    """What a waitlist_result tells the patient."""

    WON = "won"  # booked (sent to a winner who claimed by link; an SMS winner reads it in the reply)
    TAKEN = "taken"  # someone else answered first; the patient stays on the waitlist
    EXPIRED = "expired"  # the patient's window passed, or the offer ended unfilled


def offer_key(offer_id: str, entry_id: str) -> str:
    """The ledger key of the offer message to one waitlist entry."""
    return dedup_key(OFFER, offer_id, entry_id)


def result_key(offer_id: str, entry_id: str) -> str:
    """The ledger key of the one result message an entry gets for an offer, whatever the result."""
    return dedup_key(RESULT, offer_id, entry_id)


def _key_matches(key: str, expected: str) -> None:
    if key != expected:
        raise bad("task dedup_key does not match its offer and entry", code="dedup_key_mismatch")


@dataclass(frozen=True)
class WaitlistOfferTask(TaskBody):
    """Offer `offer_id` to the patient of waitlist entry `entry_id` (sent in wave `wave`)."""

    offer_id: DocId
    entry_id: DocId
    clinic_id: DocId
    patient_id: DocId
    wave: Annotated[int, Whole(1, MAX_WAVE)]
    dedup_key: LedgerKey
    type: str = OFFER

    def validate(self) -> None:
        _key_matches(self.dedup_key, offer_key(self.offer_id, self.entry_id))

    @property
    def failure_key(self) -> str:
        return self.dedup_key


@dataclass(frozen=True)
class WaitlistResultTask(TaskBody):
    """Tell the patient of `entry_id` how offer `offer_id` ended for them."""

    offer_id: DocId
    entry_id: DocId
    clinic_id: DocId
    patient_id: DocId
    outcome: Annotated[Result, Code(Result)]
    dedup_key: LedgerKey
    type: str = RESULT

    def validate(self) -> None:
        _key_matches(self.dedup_key, result_key(self.offer_id, self.entry_id))

    @property
    def failure_key(self) -> str:
        return self.dedup_key


@dataclass(frozen=True)
class WaveTask(TaskBody):
    """End the window of `wave` of an offer (wave 0: nobody offered yet), or settle an offer that ended."""

    offer_id: DocId
    clinic_id: DocId
    wave: Annotated[int, Whole(0, MAX_WAVE)]
    type: str = WAVE

    @property
    def failure_key(self) -> str:
        return f"{self.offer_id}:wave:{self.wave}"


def new_offer_task(offer_id: str, entry_id: str, clinic_id: str, patient_id: str, wave: int) -> WaitlistOfferTask:
    return WaitlistOfferTask(offer_id, entry_id, clinic_id, patient_id, wave, offer_key(offer_id, entry_id))


def new_result_task(
    offer_id: str, entry_id: str, clinic_id: str, patient_id: str, outcome: Result
) -> WaitlistResultTask:
    return WaitlistResultTask(offer_id, entry_id, clinic_id, patient_id, outcome, result_key(offer_id, entry_id))


WAITLIST_MESSAGES: Service[WaitlistMessages] = Service("waitlist_messages")
WAVES: Service[Waves] = Service("waves")


def _offer(messages: WaitlistMessages, task: WaitlistOfferTask, attempt: Attempt) -> Outcome:
    return messages.deliver_offer(task, attempt)


def _result(messages: WaitlistMessages, task: WaitlistResultTask, attempt: Attempt) -> Outcome:
    return messages.deliver_result(task, attempt)


def _reopen(messages: WaitlistMessages, task: WaitlistOfferTask | WaitlistResultTask) -> Reopen:
    return messages.reopen(task.dedup_key)


def _wave(waves: Waves, task: WaveTask, attempt: Attempt) -> Outcome:
    return waves.handle(task, attempt)


DECLARATIONS = (
    Declaration(OFFER, WaitlistOfferTask, Queue.WAITLIST, WAITLIST_MESSAGES, _offer, _reopen),
    Declaration(RESULT, WaitlistResultTask, Queue.WAITLIST, WAITLIST_MESSAGES, _result, _reopen),
    Declaration(WAVE, WaveTask, Queue.WAITLIST, WAVES, _wave),  # idempotent: nothing to reopen
)
