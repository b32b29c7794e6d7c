"""The booking nudge's task type: one message per session and nudge (the first ~1 h, the second ~24 h after
the session started), planned by shared/booking_recovery/intake.py through the reminders' MessageScheduler and
sent by shared/booking_recovery/nudges.py. The body carries ids and instants only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from shared.messaging.appointment_tasks import LedgerKey
from shared.messaging.keys import dedup_key
from shared.platform.errors import PermanentError
from shared.tasks.declaration import Declaration, Queue, Service
from shared.tasks.payload import DocId, Instant, TaskBody, Whole, bad

if TYPE_CHECKING:
    from shared.booking_recovery.nudges import BookingNudges
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome

NUDGE = "booking_nudge"
MAX_NUDGES = 2


def nudge_key(session_id: str, nudge: int) -> str:
    """The ledger key of a session's nth nudge: a redelivered or a later event about the session plans the same."""
    return dedup_key(NUDGE, session_id, f"nudge{nudge}")


@dataclass(frozen=True)
class NudgeTask(TaskBody):
    """The `nudge`th reminder of a booking the patient started and did not finish."""

    session_id: DocId
    clinic_id: DocId
    patient_id: DocId
    dedup_key: LedgerKey
    send_at: Instant
    nudge: Annotated[int, Whole(1, MAX_NUDGES)]
    type: str = NUDGE

    def validate(self) -> None:
        if self.dedup_key != nudge_key(self.session_id, self.nudge):
            raise bad("task dedup_key does not match its session and nudge", code="dedup_key_mismatch")

    @property
    def failure_key(self) -> str:
        return self.dedup_key

    def ledger_fields(self, channel: str | None = None) -> dict[str, Any]:
        """What its ledger doc records: ids, the nudge, when; never the text."""
        return {
            "kind": NUDGE,
            "channel": channel,
            "clinic_id": self.clinic_id,
            "patient_id": self.patient_id,
            "session_id": self.session_id,
            "nudge": self.nudge,
            "send_at": self.send_at,
        }

    @classmethod
    def from_ledger(cls, key: str, doc: dict[str, Any]) -> NudgeTask | None:
        """The task a ledger doc was written for (the stuck sweep's record), or None."""
        send_at = doc.get("send_at")
        if doc.get("kind") != NUDGE or not isinstance(send_at, datetime):
            return None
        body = {name: doc.get(name) for name in ("session_id", "clinic_id", "patient_id", "nudge")}
        try:
            return cls.from_json({**body, "dedup_key": key, "send_at": send_at.isoformat()}, NUDGE)
        except PermanentError:
            return None


BOOKING_NUDGES: Service[BookingNudges] = Service("booking_nudges")


def _deliver(nudges: BookingNudges, task: NudgeTask, attempt: Attempt) -> Outcome:
    return nudges.deliver(task, attempt)


def _reopen(nudges: BookingNudges, task: NudgeTask) -> Reopen:
    return nudges.ledger.reopen(task.dedup_key)


DECLARATIONS = (Declaration(NUDGE, NudgeTask, Queue.SMS, BOOKING_NUDGES, _deliver, _reopen, NudgeTask.from_ledger),)
