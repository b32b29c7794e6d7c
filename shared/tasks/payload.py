"""The task body envelope and field checks shared by every task type (each type's dataclass and parser
live with its service: shared.messaging.appointment_tasks, …).

POST JSON {"type": …, "v": 1, ids…}: ids, codes and instants only, never PHI (docs/architecture.md).
`decode` + a type's parser are the one place a body is validated; every problem is a PermanentError
with a code, so the handler records it in failed_tasks and answers 2xx instead of letting Cloud Tasks
retry garbage. Unknown fields are refused too: a body is ours, and a stray field could carry PHI.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, ClassVar

from shared.contract.bodies import decode_object
from shared.contract.ids import is_doc_id
from shared.contract.models import EARLIEST, LATEST
from shared.platform.errors import PermanentError

VERSION = 1
MAX_BODY_BYTES = 16 * 1024
ENVELOPE_FIELDS = ("type", "v")


class TaskBody:
    """What every task dataclass shares: its body is the envelope plus its FIELDS, instants and dates in
    ISO form, unset optional fields left out (the parsers read them back as None)."""

    FIELDS: ClassVar[tuple[str, ...]] = ()
    type: str
    v: int

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "v": self.v}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                body[name] = value.isoformat() if isinstance(value, date) else value  # datetime is a date
        return body


def decode(raw: bytes) -> dict[str, Any]:
    """Bytes → a JSON object of checked values, or a PermanentError saying why not."""
    return decode_object(raw, max_bytes=MAX_BODY_BYTES, what="task body", not_object_code="malformed_json")


def task_type(body: dict[str, Any]) -> str:
    """The body's type (any string; the router decides whether it knows it) once its version is 1."""
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise PermanentError("task body has no 'type'", code="bad_payload")
    version = body.get("v")
    if type(version) is not int or version != VERSION:  # true and 1.0 are not the integer 1
        raise PermanentError("unsupported task version", code="unsupported_version")
    return kind


def require_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = set(body) - set(ENVELOPE_FIELDS) - set(allowed)
    if unknown:
        raise PermanentError(f"task body has {len(unknown)} unknown field(s)", code="bad_payload")


def doc_id(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not is_doc_id(value):
        raise PermanentError(f"task field '{name}' is missing or not a document id", code="bad_payload")
    return value


def instant(body: dict[str, Any], name: str) -> datetime:
    """An ISO instant with offset, in range; every overflow is a bad payload, never an exception."""
    value = body.get(name)
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
        utc = parsed.astimezone(timezone.utc) if parsed is not None and parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise PermanentError(f"task field '{name}' must be an ISO instant with offset", code="bad_payload")
    return utc


def small_int(body: dict[str, Any], name: str, *, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise PermanentError(f"task field '{name}' must be a whole number from {low} to {high}", code="bad_payload")
    return value
