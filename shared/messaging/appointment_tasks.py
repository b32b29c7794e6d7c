"""The task types of appointment messages: reminders, prep instructions, booking confirmations,
follow-ups (the feedback survey), check-ins after a visit (docs/feedback.md) and group bookings' messages
(docs/groups.md). Written by the reminder planner, run by shared/messaging/delivery.py's AppointmentMessages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from shared.messaging.keys import is_key
from shared.platform.errors import PermanentError
from shared.tasks.declaration import Declaration, Queue, Service
from shared.tasks.payload import DocId, Instant, TaskBody, Whole, bad

if TYPE_CHECKING:
    from shared.messaging.delivery import AppointmentMessages
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome

REMINDER = "appointment_reminder"
PREP = "prep_instructions"
CONFIRMATION = "booking_confirmation"
FOLLOWUP = "followup"  # the feedback survey, a week after a completed visit (docs/feedback.md)
CHECKIN = "checkin"  # a day or two after a completed visit, when the clinic sets it
GROUP = "group_reminder"  # a seat of a group booking: organizer 72 h, every seat 24 h and 2 h
APPOINTMENT_TASK_TYPES = (REMINDER, CONFIRMATION, PREP, FOLLOWUP, CHECKIN, GROUP)
AFTER_VISIT = (FOLLOWUP, CHECKIN)  # sent about a completed appointment


class LedgerKeyCheck:
    """A ledger key (shared/messaging/keys.py), as a task field."""

    def read(self, value: Any, name: str) -> str:
        if not is_key(value):
            raise bad(f"task field '{name}' is missing or not a ledger key")
        return value

    def write(self, value: str) -> str:
        return value


LedgerKey = Annotated[str, LedgerKeyCheck()]


@dataclass(frozen=True)
class AppointmentTask(TaskBody):
    """A message about one appointment: which kind, for which appointment, as of which start time."""

    type: str
    appointment_id: DocId
    clinic_id: DocId
    patient_id: DocId
    dedup_key: LedgerKey
    send_at: Instant
    appointment_start: Instant  # the start when this was scheduled; a different start now means "moved"
    offset_hours: Annotated[int, Whole(1, 24 * 14)] | None = None
    group_id: DocId | None = None  # a group message's group (GROUP only)

    def ledger_fields(self, channel: str | None = None) -> dict[str, Any]:
        """What its ledger doc records: enough for an operator to read, and to rebuild this task from."""
        group = {"group_id": self.group_id} if self.group_id is not None else {}
        return {
            **group,
            "kind": self.type,
            "offset_hours": self.offset_hours,
            "channel": channel,
            "clinic_id": self.clinic_id,
            "appointment_id": self.appointment_id,
            "patient_id": self.patient_id,
            "send_at": self.send_at,
            "appointment_start": self.appointment_start,
        }

    @classmethod
    def from_ledger(
        cls, key: str, doc: dict[str, Any], kinds: tuple[str, ...] = APPOINTMENT_TASK_TYPES
    ) -> AppointmentTask | None:
        """The task a ledger doc of one of `kinds` was written for (None when the doc does not hold enough to say)."""
        kind = doc.get("kind")
        if kind not in kinds:
            return None
        body = {
            "dedup_key": key,
            **{name: doc.get(name) for name in ("appointment_id", "clinic_id", "patient_id", "offset_hours")},
            "group_id": doc.get("group_id"),
            **{
                name: doc[name].isoformat()
                for name in ("send_at", "appointment_start")
                if isinstance(doc.get(name), datetime)
            },
        }
        try:
            return cls.from_json({k: v for k, v in body.items() if v is not None}, str(kind))
        except PermanentError:
            return None

    def validate(self) -> None:
        if (self.type == GROUP) != (self.group_id is not None):
            raise bad("task field 'group_id' belongs to group messages only, and each names its group")

    @property
    def failure_key(self) -> str:
        """Its failed_tasks doc id: one record per intended message, whatever task delivered it."""
        return self.dedup_key


APPOINTMENT_MESSAGES: Service[AppointmentMessages] = Service("appointment_messages")


def _deliver(messages: AppointmentMessages, task: AppointmentTask, attempt: Attempt) -> Outcome:
    return messages.deliver(task, attempt)


def _reopen(messages: AppointmentMessages, task: AppointmentTask) -> Reopen:
    return messages.ledger.reopen(task.dedup_key)


DECLARATIONS = tuple(
    Declaration(kind, AppointmentTask, Queue.SMS, APPOINTMENT_MESSAGES, _deliver, _reopen, AppointmentTask.from_ledger)
    for kind in APPOINTMENT_TASK_TYPES
)
