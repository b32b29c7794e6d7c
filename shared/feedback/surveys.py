"""The feedback survey as a service (docs/feedback.md): opened as the follow-up goes out (the delivery's
`Surveys` hook), answered by a text (shared.waitlist.inbound) or on the survey page (shared.feedback.links),
and routed once, on the first score:

- low (≤ the clinic's `feedback.low_score_max`, default 2): a patient_requests doc for the front desk
  (`feedback-<appointment>`, kind feedback_low_score) and a feedback_alert task that emails the managers;
  never a review link;
- high (≥ `feedback.review_min_score`, default 4) with a `feedback.review_url`: one feedback_review
  message (ledger doc + named task), once.

A retry of the answer that set the score routes again: every step is named, so it completes a routing
that failed half-way and repeats nothing. Free text from a patient with a survey open reaches the front
desk (kind feedback_comment); a reply that is no score (0, 7, "five") is counted and answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.contract.models import CLINICS, Clinic
from shared.feedback.scores import Answer, Recorded, Scores, Survey
from shared.feedback.tasks import REVIEW, AlertTask, ReviewTask
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.ledger import Ledger, Planned
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument
from shared.platform.store import Store
from shared.tasks.declaration import Queue
from shared.tasks.queue import TaskQueue, TaskSpec
from shared.waitlist.requests import Kind, PatientRequests

if TYPE_CHECKING:
    from shared.feedback.links import FeedbackLinks

LINK_DAYS = 30  # a survey page's link works this long after the follow-up's planned send time

# What an inbound text about a survey answers (shared.feedback.replies words each).
SCORED, LOW, CHANGED, INVALID, COMMENT = (
    "score_recorded",
    "score_low",
    "score_changed",
    "score_invalid",
    "feedback_comment",
)
OUTCOMES = (SCORED, LOW, CHANGED, INVALID, COMMENT)


def low_request_id(appointment_id: str) -> str:
    """The front desk's one request about a visit scored low."""
    return f"feedback-{appointment_id}"


class Surveys:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        ledger: Ledger,
        tasks: Callable[[], TaskQueue],
        queues: Callable[[str], str],
        links: Callable[[], FeedbackLinks] | None = None,
    ) -> None:
        """`tasks` gives the queue a first score's routing enqueues on (built then: a follow-up's send needs
        none); `links` signs the survey page's links (built on an emailed survey's first render: it needs the key)."""
        self.store, self.clock, self.ledger, self.tasks, self.queues = store, clock, ledger, tasks, queues
        self.links = links
        self.scores = Scores(store, clock)
        self.requests = PatientRequests(store, clock)

    # ------------------------------------------------------------------ the follow-up (delivery's hook)

    def opened(self, task: AppointmentTask) -> None:
        self.scores.open(
            appointment_id=task.appointment_id,
            clinic_id=task.clinic_id,
            patient_id=task.patient_id,
            survey_key=task.dedup_key,
        )

    def link(self, task: AppointmentTask) -> str:
        if self.links is None:
            from shared.platform.errors import ConfigError

            raise ConfigError("the survey page's links are not wired (FEEDBACK_PAGE_URL, FEEDBACK_LINK_KEY)")
        return self.links().link_for(task.appointment_id, task.send_at + timedelta(days=LINK_DAYS))

    # ---------------------------------------------------------------------------------- answers

    def open_survey(self, clinic_id: str, patient_ids: Iterable[str]) -> Survey | None:
        return self.scores.open_survey(clinic_id, patient_ids)

    def text(self, survey: Survey, clinic: Clinic, score: int | None, message_sid: str) -> str:
        """A score (None: a number that is no score) texted in answer to `survey`: the reply's outcome."""
        answer = self.answer(survey.appointment_id, clinic, score, source="sms", ref=message_sid)
        if answer.outcome == Recorded.INVALID:
            return INVALID
        if answer.outcome == Recorded.CHANGED:
            return CHANGED
        return LOW if answer.survey is not None and answer.survey.low else SCORED

    def comment(self, survey: Survey, clinic: Clinic, message_sid: str) -> str:
        """Free text in answer to a survey: the front desk reads it (the text stays in Twilio's log)."""
        self.requests.record(
            clinic_id=clinic.id,
            patient_id=survey.patient_id,
            kind=Kind.FEEDBACK_COMMENT,
            message_sid=message_sid,
            appointment_id=survey.appointment_id,
        )
        return COMMENT

    def answer(self, appointment_id: str, clinic: Clinic, score: int | None, *, source: str, ref: str) -> Answer:
        """Record one answer and, when it is the first score (or a retry of it), route it, under the clinic's
        settings as they stand (re-read: the callers' clinic may come from a minute-long cache)."""
        clinic = self._current(clinic)
        answer = self.scores.record(appointment_id, score, source=source, ref=ref, settings=clinic.feedback)
        survey = answer.survey
        first = answer.outcome == Recorded.SCORED or (
            answer.outcome == Recorded.DUPLICATE and survey is not None and survey.first_ref == ref
        )
        if first and survey is not None and survey.score is not None:
            self._route(survey, clinic, source=source, ref=ref)
        log.info(
            "feedback answer recorded",
            appointment_id=appointment_id,
            clinic_id=clinic.id,
            outcome=answer.outcome.value,
            score=score if answer.outcome != Recorded.INVALID else None,
        )
        return answer

    def _current(self, clinic: Clinic) -> Clinic:
        doc = self.store.get(f"{CLINICS}/{clinic.id}")
        if doc is None:
            return clinic
        try:
            return Clinic.from_doc(doc.id, doc.data)
        except InvalidDocument:
            return clinic  # broken since it was cached: the cached settings decide

    def _route(self, survey: Survey, clinic: Clinic, *, source: str, ref: str) -> None:
        if survey.low:
            self.requests.record(
                clinic_id=clinic.id,
                patient_id=survey.patient_id,
                kind=Kind.FEEDBACK_LOW_SCORE,
                message_sid=ref if source == "sms" else None,
                appointment_id=survey.appointment_id,
                doc_id=low_request_id(survey.appointment_id),
                source=source,
            )
            alert = AlertTask(survey.appointment_id, clinic.id)
            self.tasks().create(TaskSpec(self.queues(Queue.EMAIL), alert.business_key, alert.to_json()))
        elif survey.high and clinic.feedback.review_url:
            review = ReviewTask(survey.appointment_id, clinic.id)
            fields = {
                "kind": REVIEW,
                "clinic_id": clinic.id,
                "appointment_id": survey.appointment_id,
                "patient_id": survey.patient_id,
                "send_at": self.clock.now(),
            }
            self.ledger.schedule([Planned(review.dedup_key, fields)])
            self.tasks().create(TaskSpec(self.queues(Queue.SMS), review.business_key, review.to_json()))
