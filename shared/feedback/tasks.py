"""The feedback's task types (docs/feedback.md), run by shared/feedback/messages.py's FeedbackMessages:

- feedback_review: a high first score's review link to the patient, one ledger message per appointment;
- feedback_alert: a low first score's email to the clinic's managers, one ledger message per manager
  (on the email queue, as an emailed reminder).

Both are enqueued when the first score is recorded (shared.feedback.surveys), named from the appointment,
so a retried answer enqueues nothing twice. Bodies carry ids only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.messaging.keys import dedup_key
from shared.reports.tasks import recipient_slot
from shared.tasks.declaration import Declaration, Queue, Service
from shared.tasks.payload import DocId, TaskBody

if TYPE_CHECKING:
    from shared.feedback.messages import FeedbackMessages
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome

REVIEW = "feedback_review"
ALERT = "feedback_alert"


def review_key(appointment_id: str) -> str:
    """The ledger key of a visit's one review-link message."""
    return dedup_key(REVIEW, appointment_id, "review")


@dataclass(frozen=True)
class ReviewTask(TaskBody):
    """Send the clinic's review link to the patient who scored this visit high."""

    appointment_id: DocId
    clinic_id: DocId
    type: str = REVIEW

    @property
    def dedup_key(self) -> str:
        return review_key(self.appointment_id)

    @property
    def business_key(self) -> str:
        return self.dedup_key

    @property
    def failure_key(self) -> str:
        return self.dedup_key


@dataclass(frozen=True)
class AlertTask(TaskBody):
    """Email the clinic's managers that this visit was scored low."""

    appointment_id: DocId
    clinic_id: DocId
    type: str = ALERT

    @property
    def business_key(self) -> str:
        return self.failure_key

    @property
    def failure_key(self) -> str:
        return dedup_key(ALERT, self.appointment_id, "low")

    def recipient_key(self, address: str) -> str:
        """The ledger key of the alert to one manager."""
        return dedup_key(ALERT, self.appointment_id, recipient_slot("low", address))


FEEDBACK_MESSAGES: Service[FeedbackMessages] = Service("feedback_messages")


def _review(messages: FeedbackMessages, task: ReviewTask, attempt: Attempt) -> Outcome:
    return messages.deliver_review(task, attempt)


def _reopen_review(messages: FeedbackMessages, task: ReviewTask) -> Reopen:
    return messages.ledger.reopen(task.dedup_key)


def _alert(messages: FeedbackMessages, task: AlertTask, attempt: Attempt) -> Outcome:
    return messages.deliver_alert(task, attempt)


def _reopen_alert(messages: FeedbackMessages, task: AlertTask) -> Reopen:
    return messages.emails.reopen(messages.emails.manager_keys(task.clinic_id, task.recipient_key))


DECLARATIONS = (
    Declaration(REVIEW, ReviewTask, Queue.SMS, FEEDBACK_MESSAGES, _review, _reopen_review),
    Declaration(ALERT, AlertTask, Queue.EMAIL, FEEDBACK_MESSAGES, _alert, _reopen_alert),
)
