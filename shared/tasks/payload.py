"""The task body contract between the schedulers (fan-out, waitlist, reports) and the task handler.

POST JSON {"type": …, "v": 1, ids…}: IDs, codes and instants only, never PHI (DESIGN §3.1, §5).
`parse` is the one place a body is validated; every problem is a PermanentError with a code, so the
handler records it in failed_tasks and answers 2xx instead of letting Cloud Tasks retry garbage.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from shared.platform.errors import PermanentError

VERSION = 1
MAX_BODY_BYTES = 16 * 1024
APPOINTMENT_TASK_TYPES = ("appointment_reminder", "booking_confirmation", "prep_instructions", "followup")
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")


@dataclass(frozen=True)
class AppointmentTask:
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

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["send_at"] = self.send_at.isoformat()
        body["appointment_start"] = self.appointment_start.isoformat()
        if self.offset_hours is None:
            body.pop("offset_hours")
        return body

    def ids(self) -> dict[str, Any]:
        """What failed_tasks and logs may hold: everything here is an ID or an instant."""
        return self.to_json()


def _field(body: dict[str, Any], name: str, pattern: re.Pattern[str] = _ID) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not pattern.match(value):
        raise PermanentError(f"task field '{name}' is missing or not an id", code="bad_payload")
    return value


def _instant(body: dict[str, Any], name: str) -> datetime:
    value = body.get(name)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise PermanentError(f"task field '{name}' must be an ISO instant with offset", code="bad_payload")
    return parsed


def decode(raw: bytes) -> dict[str, Any]:
    """Bytes → JSON object, or a PermanentError saying why not."""
    if len(raw) > MAX_BODY_BYTES:
        raise PermanentError(f"task body is {len(raw)} bytes, over {MAX_BODY_BYTES}", code="oversized_body")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PermanentError("task body is not JSON", code="malformed_json") from None
    if not isinstance(body, dict):
        raise PermanentError("task body is not a JSON object", code="malformed_json")
    return body


def task_type(body: dict[str, Any]) -> str:
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise PermanentError("task body has no 'type'", code="bad_payload")
    version = body.get("v")
    if version != VERSION:
        raise PermanentError(f"unsupported task version {str(version)[:10]!r}", code="unsupported_version")
    return kind


def parse_appointment_task(body: dict[str, Any]) -> AppointmentTask:
    kind = task_type(body)
    if kind not in APPOINTMENT_TASK_TYPES:
        raise PermanentError(f"unknown task type {kind[:40]!r}", code="unknown_type")
    offset = body.get("offset_hours")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int)):
        raise PermanentError("task field 'offset_hours' must be an integer", code="bad_payload")
    return AppointmentTask(
        type=kind,
        appointment_id=_field(body, "appointment_id"),
        clinic_id=_field(body, "clinic_id"),
        patient_id=_field(body, "patient_id"),
        dedup_key=_field(body, "dedup_key"),
        send_at=_instant(body, "send_at"),
        appointment_start=_instant(body, "appointment_start"),
        offset_hours=offset,
    )
