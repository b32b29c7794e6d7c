"""The task bodies of waitlist messages: an offer of a freed slot (waitlist_offer) and its outcome for one
patient (waitlist_result). Written by shared.waitlist, read by the task handler (shared.tasks.payload checks).

Both carry ids and codes only. The ledger key of each is derived from (offer, waitlist entry), so one
patient gets at most one offer and one result per offer, however often a task is delivered or enqueued.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.messaging.appointment_tasks import ledger_key
from shared.messaging.keys import dedup_key
from shared.platform.errors import PermanentError
from shared.tasks.payload import VERSION, TaskBody, doc_id, require_fields, small_int, task_type

OFFER = "waitlist_offer"
RESULT = "waitlist_result"
MAX_WAVE = 10_000


class Result:
    """What a waitlist_result tells the patient."""

    WON = "won"  # booked (sent to a winner who claimed by link; an SMS winner reads it in the reply)
    TAKEN = "taken"  # someone else answered first; the patient stays on the waitlist
    EXPIRED = "expired"  # the patient's window passed, or the offer ended unfilled
    ALL = ("won", "taken", "expired")


def offer_key(offer_id: str, entry_id: str) -> str:
    """The ledger key of the offer message to one waitlist entry."""
    return dedup_key(OFFER, offer_id, entry_id)


def result_key(offer_id: str, entry_id: str) -> str:
    """The ledger key of the one result message an entry gets for an offer, whatever the result."""
    return dedup_key(RESULT, offer_id, entry_id)


@dataclass(frozen=True)
class WaitlistOfferTask(TaskBody):
    """Offer `offer_id` to the patient of waitlist entry `entry_id` (sent in wave `wave`)."""

    offer_id: str
    entry_id: str
    clinic_id: str
    patient_id: str
    wave: int
    dedup_key: str
    type: str = OFFER
    v: int = VERSION

    FIELDS = ("offer_id", "entry_id", "clinic_id", "patient_id", "wave", "dedup_key")

    @property
    def failure_key(self) -> str:
        return self.dedup_key


@dataclass(frozen=True)
class WaitlistResultTask(TaskBody):
    """Tell the patient of `entry_id` how offer `offer_id` ended for them (`outcome`: Result.ALL)."""

    offer_id: str
    entry_id: str
    clinic_id: str
    patient_id: str
    outcome: str
    dedup_key: str
    type: str = RESULT
    v: int = VERSION

    FIELDS = ("offer_id", "entry_id", "clinic_id", "patient_id", "outcome", "dedup_key")

    @property
    def failure_key(self) -> str:
        return self.dedup_key


def new_offer_task(offer_id: str, entry_id: str, clinic_id: str, patient_id: str, wave: int) -> WaitlistOfferTask:
    return WaitlistOfferTask(offer_id, entry_id, clinic_id, patient_id, wave, offer_key(offer_id, entry_id))


def new_result_task(offer_id: str, entry_id: str, clinic_id: str, patient_id: str, outcome: str) -> WaitlistResultTask:
    return WaitlistResultTask(offer_id, entry_id, clinic_id, patient_id, outcome, result_key(offer_id, entry_id))


def _ids(body: dict[str, Any]) -> tuple[str, str, str, str]:
    return doc_id(body, "offer_id"), doc_id(body, "entry_id"), doc_id(body, "clinic_id"), doc_id(body, "patient_id")


def parse_offer_task(body: dict[str, Any]) -> WaitlistOfferTask:
    if task_type(body) != OFFER:
        raise PermanentError("not a waitlist offer", code="unknown_type")
    require_fields(body, WaitlistOfferTask.FIELDS)
    offer_id, entry_id, clinic_id, patient_id = _ids(body)
    wave = small_int(body, "wave", low=1, high=MAX_WAVE)
    if wave is None:
        raise PermanentError("task field 'wave' is required", code="bad_payload")
    task = WaitlistOfferTask(offer_id, entry_id, clinic_id, patient_id, wave, ledger_key(body))
    if task.dedup_key != offer_key(offer_id, entry_id):
        raise PermanentError("task dedup_key does not match its offer and entry", code="dedup_key_mismatch")
    return task


def parse_result_task(body: dict[str, Any]) -> WaitlistResultTask:
    if task_type(body) != RESULT:
        raise PermanentError("not a waitlist result", code="unknown_type")
    require_fields(body, WaitlistResultTask.FIELDS)
    offer_id, entry_id, clinic_id, patient_id = _ids(body)
    outcome = body.get("outcome")
    if outcome not in Result.ALL:
        raise PermanentError("task field 'outcome' must be won, taken or expired", code="bad_payload")
    task = WaitlistResultTask(offer_id, entry_id, clinic_id, patient_id, str(outcome), ledger_key(body))
    if task.dedup_key != result_key(offer_id, entry_id):
        raise PermanentError("task dedup_key does not match its offer and entry", code="dedup_key_mismatch")
    return task
