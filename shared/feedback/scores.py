"""feedback/{appointment_id}: a visit's survey and its score; this module is the collection's only writer
(docs/feedback.md).

- `open` (the follow-up is about to go out) creates the doc: who was asked, when, which ledger message.
- `record` takes one answer, identified by its `ref` (an inbound MessageSid, or the survey page's
  "link-<score>"): the first score wins and decides the routing (`low`, `high`); every later answer is
  kept in `changes`, the score stays. An answer whose ref was seen before changes nothing (a Twilio retry,
  a double click), whatever it said. A reply that is no score (0, 7, "five") is counted in `invalid`.
- Writes are versioned updates re-read on conflict, so two answers racing are both kept, in some order.

The doc holds ids, scores, instants and codes: a free-text reply stays in Twilio's log (its MessageSid is
in patient_requests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.contract.models import SCORES, FeedbackSettings
from shared.platform.clock import Clock
from shared.platform.errors import RetryableError
from shared.platform.store import Doc, Store

COLLECTION = "feedback"
REPLY_DAYS = 14  # a text answers the newest survey sent to the patient within this many days
MAX_CHANGES = 20  # later answers kept per survey; more are counted, not kept
MAX_REFS = 60  # the refs remembered for idempotency (answers beyond it are refused as "too_many")
CAS_ATTEMPTS = 16


def path(appointment_id: str) -> str:
    return f"{COLLECTION}/{appointment_id}"


class Recorded(StrEnum):
    SCORED = "scored"  # the first score: it stands, and is routed
    CHANGED = "changed"  # a later score: kept in the history
    INVALID = "invalid"  # not a score from 1 to 5: counted
    DUPLICATE = "duplicate"  # this ref was recorded before: nothing changed
    NO_SURVEY = "no_survey"  # no survey was sent for this appointment
    TOO_MANY = "too_many"  # past MAX_REFS answers: nothing more is kept


@dataclass(frozen=True)
class Survey:
    """One feedback doc as read."""

    appointment_id: str
    clinic_id: str
    patient_id: str
    asked_at: datetime | None
    score: int | None
    first_ref: str | None
    low: bool
    high: bool
    refs: tuple[str, ...]

    @classmethod
    def from_doc(cls, doc: Doc) -> Survey:
        data = doc.data
        score = data.get("score")
        refs = data.get("refs")
        asked = data.get("asked_at")
        return cls(
            appointment_id=doc.id,
            clinic_id=str(data.get("clinic_id") or ""),
            patient_id=str(data.get("patient_id") or ""),
            asked_at=asked if isinstance(asked, datetime) else None,
            score=score if isinstance(score, int) and score in SCORES else None,
            first_ref=data.get("ref") if isinstance(data.get("ref"), str) else None,
            low=data.get("low") is True,
            high=data.get("high") is True,
            refs=tuple(r for r in refs if isinstance(r, str)) if isinstance(refs, list) else (),
        )


@dataclass(frozen=True)
class Answer:
    outcome: Recorded
    survey: Survey | None

    @property
    def routes(self) -> bool:
        """This answer set the score (or a retry of the one that did): its routing must have happened."""
        return (
            self.survey is not None
            and self.survey.score is not None
            and self.outcome in (Recorded.SCORED, Recorded.DUPLICATE)
        )


def route_of(score: int, settings: FeedbackSettings) -> tuple[bool, bool]:
    """(low, high) for a first score under the clinic's settings."""
    return score <= settings.low_score_max, score >= settings.review_min_score


class Scores:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def open(self, *, appointment_id: str, clinic_id: str, patient_id: str, survey_key: str) -> bool:
        """The survey goes out: its doc, once (False: it was opened before, a retried send)."""
        fields = {
            "appointment_id": appointment_id,
            "clinic_id": clinic_id,
            "patient_id": patient_id,
            "survey_key": survey_key,
            "asked_at": self.clock.now(),
            "score": None,
            "refs": [],
            "changes": [],
            "invalid": 0,
        }
        return self.store.create(path(appointment_id), fields) is not None

    def read(self, appointment_id: str) -> Survey | None:
        doc = self.store.get(path(appointment_id))
        return Survey.from_doc(doc) if doc is not None else None

    def open_survey(self, clinic_id: str, patient_ids: Iterable[str]) -> Survey | None:
        """The newest survey sent to one of these patients by this clinic within REPLY_DAYS, or None."""
        since = self.clock.now() - timedelta(days=REPLY_DAYS)
        found: list[Survey] = []
        for patient_id in patient_ids:
            for doc in self.store.query(COLLECTION, where=[("patient_id", "==", patient_id)], limit=50):
                survey = Survey.from_doc(doc)
                if survey.clinic_id == clinic_id and survey.asked_at is not None and survey.asked_at >= since:
                    found.append(survey)
        return max(found, key=lambda s: (s.asked_at, s.appointment_id)) if found else None

    def record(
        self, appointment_id: str, score: int | None, *, source: str, ref: str, settings: FeedbackSettings
    ) -> Answer:
        """One answer (`score` None: not a score) under the clinic's routing settings."""
        for _ in range(CAS_ATTEMPTS):
            doc = self.store.get(path(appointment_id))
            if doc is None:
                return Answer(Recorded.NO_SURVEY, None)
            survey = Survey.from_doc(doc)
            if ref in survey.refs:
                return Answer(Recorded.DUPLICATE, survey)
            if len(survey.refs) >= MAX_REFS:
                return Answer(Recorded.TOO_MANY, survey)
            now = self.clock.now()
            change: dict[str, Any] = {"refs": [*survey.refs, ref]}
            if score is None or score not in SCORES:
                outcome = Recorded.INVALID
                invalid = doc.get("invalid")
                change["invalid"] = (invalid if isinstance(invalid, int) else 0) + 1
            elif survey.score is None:
                outcome = Recorded.SCORED
                low, high = route_of(score, settings)
                change.update(score=score, scored_at=now, source=source, ref=ref, low=low, high=high)
            else:
                outcome = Recorded.CHANGED
                changes = doc.get("changes")
                kept = changes if isinstance(changes, list) else []
                if len(kept) < MAX_CHANGES:
                    change["changes"] = [*kept, {"score": score, "at": now, "source": source, "ref": ref}]
            if self.store.update(path(appointment_id), change, version=doc.version) is not None:
                after = self.store.get(path(appointment_id))
                return Answer(outcome, Survey.from_doc(after) if after is not None else survey)
        raise RetryableError("feedback answers contended past every attempt", code="feedback_contended")

    def mark_review_sent(self, appointment_id: str) -> None:
        """The review link went (the figures count it): set once."""
        doc = self.store.get(path(appointment_id))
        if doc is not None and doc.get("review_sent_at") is None:
            self.store.update(path(appointment_id), {"review_sent_at": self.clock.now()})

    def period(self, clinic_id: str, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        """The surveys this clinic sent in [start, end): one equality + range query, the figures' fields only."""
        where = [("clinic_id", "==", clinic_id), ("asked_at", ">=", start), ("asked_at", "<", end)]
        fields = ["score", "low", "review_sent_at"]
        return [doc.data for doc in self.store.query(COLLECTION, where=where, fields=fields, limit=limit)]
