"""Task bodies parsed as the router parses them (the envelope, then the type's fields), for tests."""

from __future__ import annotations

from typing import Any, TypeVar

from shared.reminders.fanout import UNIT_DECLARATIONS
from shared.tasks.payload import TaskBody, parse
from shared.wiring.task_handler import DECLARATIONS

B = TypeVar("B", bound=TaskBody)
BODIES: dict[str, type[TaskBody]] = {d.name: d.body for d in (*DECLARATIONS, *UNIT_DECLARATIONS)}


def parse_task(body: dict[str, Any], cls: type[B]) -> B:
    """`body` as a `cls` task, or the PermanentError the router would record (unknown_type for another type's)."""
    return parse(body, {name: cls for name, declared in BODIES.items() if declared is cls})
