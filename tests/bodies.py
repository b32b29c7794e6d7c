"""Task bodies parsed as the router parses them (the envelope, then the type's fields), for tests."""

from __future__ import annotations

from typing import Any, TypeVar

from shared.platform.errors import PermanentError
from shared.reminders.fanout import UNIT_DECLARATIONS
from shared.tasks.payload import TaskBody, envelope
from shared.wiring.task_handler import DECLARATIONS

B = TypeVar("B", bound=TaskBody)
BODIES: dict[str, type[TaskBody]] = {d.name: d.body for d in (*DECLARATIONS, *UNIT_DECLARATIONS)}


def parse_task(body: dict[str, Any], cls: type[B]) -> B:
    """`body` as a `cls` task, or the PermanentError the router would record (unknown_type for another type's)."""
    kind = envelope(body)
    if BODIES.get(kind) is not cls:
        raise PermanentError("unknown task type", code="unknown_type")
    return cls.from_json(body, kind)
