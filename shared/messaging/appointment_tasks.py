"""The task bodies of appointment messages: reminders, prep instructions, booking confirmations and
follow-ups. Written by the reminder planner, read by the task handler (shared.tasks.payload checks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.messaging.keys import is_key
from shared.platform.errors import PermanentError
from shared.tasks.payload import VERSION, TaskBody, doc_id, instant, require_fields, small_int, task_type

REMINDER = "appointment_reminder"
PREP = "prep_instructions"
CONFIRMATION = "booking_confirmation"
FOLLOWUP = "followup"
APPOINTMENT_TASK_TYPES = (REMINDER, CONFIRMATION, PREP, FOLLOWUP)


def ledger_key(body: dict[str, Any], name: str = "dedup_key") -> str:
    value = body.get(name)
    if not is_key(value):
        raise PermanentError(f"task field '{name}' is missing or not a ledger key", code="bad_payload")
    return value


@dataclass(frozen=True)
class AppointmentTask(TaskBody):
    """A message about one appointment: which kind, for which appointment, as of which start time."""

    type: str
    appointment_id: str
    clinic_id: str
    patient_id: str
    dedup_key: str
    send_at: datetime
    appointment_start: datetime  # the start when this was scheduled; a different start now means "moved"
    offset_hours: int | None = None
    v: int = VERSION

    FIELDS = ("appointment_id", "clinic_id", "patient_id", "dedup_key", "send_at", "appointment_start", "offset_hours")

    def ledger_fields(self, channel: str | None = None) -> dict[str, Any]:
        """What its ledger doc records: enough for an operator to read, and to rebuild this task from."""
        return {
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
    def from_ledger(cls, key: str, doc: dict[str, Any]) -> AppointmentTask | None:
        """The task a ledger doc was written for (None when the doc does not hold enough to say)."""
        body = {
            "type": doc.get("kind"),
            "v": VERSION,
            "dedup_key": key,
            **{name: doc.get(name) for name in ("appointment_id", "clinic_id", "patient_id", "offset_hours")},
            **{
                name: doc[name].isoformat()
                for name in ("send_at", "appointment_start")
                if isinstance(doc.get(name), datetime)
            },
        }
        try:
            return parse_appointment_task({k: v for k, v in body.items() if v is not None})
        except PermanentError:
            return None

    @property
    def failure_key(self) -> str:
        """Its failed_tasks doc id: one record per intended message, whatever task delivered it."""
        return self.dedup_key


def parse_appointment_task(body: dict[str, Any]) -> AppointmentTask:
    kind = task_type(body)
    if kind not in APPOINTMENT_TASK_TYPES:
        raise PermanentError("not an appointment message type", code="unknown_type")
    require_fields(body, AppointmentTask.FIELDS)
    return AppointmentTask(
        type=kind,
        appointment_id=doc_id(body, "appointment_id"),
        clinic_id=doc_id(body, "clinic_id"),
        patient_id=doc_id(body, "patient_id"),
        dedup_key=ledger_key(body),
        send_at=instant(body, "send_at"),
        appointment_start=instant(body, "appointment_start"),
        offset_hours=small_int(body, "offset_hours", low=1, high=24 * 14),
    )
