"""patient_requests/{id}: what the front desk must act on (a patient texted to reschedule or cancel, or
a text that may revoke their consent to be texted: they were opted out, and the front desk checks; a
visit scored low, or a free-text reply to a feedback survey: docs/feedback.md).
The only writer of the collection; never an automatic change to an appointment.

One document per inbound message (its id from the MessageSid), so a Twilio retry records nothing twice.
It holds ids and codes: the text itself stays in Twilio's message log (message_sid finds it).
"""

from __future__ import annotations

from enum import StrEnum

from shared.platform.clock import Clock
from shared.platform.store import Store

COLLECTION = "patient_requests"


class Kind(StrEnum):
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    OPT_OUT_REVIEW = "opt_out_review"  # a text that may revoke consent: opted out, the front desk checks
    FEEDBACK_COMMENT = "feedback_comment"  # free text in answer to a feedback survey
    FEEDBACK_LOW_SCORE = "feedback_low_score"  # a visit scored at or below the clinic's threshold (one per visit)
    OTHER = "other"


class Status(StrEnum):
    OPEN = "open"  # set to "done" by the front desk
    DONE = "done"


def request_id(message_sid: str) -> str:
    return f"sms-{message_sid}"


class PatientRequests:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def record(
        self,
        *,
        clinic_id: str,
        patient_id: str,
        kind: Kind,
        message_sid: str | None,
        appointment_id: str | None,
        doc_id: str | None = None,
        source: str = "sms",
    ) -> bool:
        """(none) → open; False when this message (or `doc_id`, a request named otherwise) was recorded already."""
        fields = {
            "clinic_id": clinic_id,
            "patient_id": patient_id,
            "kind": kind.value,
            "source": source,
            "message_sid": message_sid,
            "appointment_id": appointment_id,
            "received_at": self.clock.now(),
            "status": Status.OPEN.value,
        }
        name = doc_id or request_id(str(message_sid))
        return self.store.create(f"{COLLECTION}/{name}", fields) is not None
