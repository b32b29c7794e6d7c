"""The task body of a waitlist wave (`waitlist_wave`) and its parser, apart from the service that runs it
(shared.waitlist.waves): the task handler's registry parses every type at start, and imports a type's
service only when its first task arrives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.platform.errors import PermanentError
from shared.tasks.payload import VERSION, TaskBody, doc_id, require_fields, small_int, task_type

WAVE = "waitlist_wave"
MAX_WAVES = 10_000


@dataclass(frozen=True)
class WaveTask(TaskBody):
    """End the window of `wave` of an offer (wave 0: nobody offered yet), or settle an offer that ended."""

    offer_id: str
    clinic_id: str
    wave: int
    type: str = WAVE
    v: int = VERSION

    FIELDS = ("offer_id", "clinic_id", "wave")

    @property
    def failure_key(self) -> str:
        return f"{self.offer_id}:wave:{self.wave}"


def parse_wave_task(body: dict[str, Any]) -> WaveTask:
    if task_type(body) != WAVE:
        raise PermanentError("not a waitlist wave", code="unknown_type")
    require_fields(body, WaveTask.FIELDS)
    wave = small_int(body, "wave", low=0, high=MAX_WAVES)
    if wave is None:
        raise PermanentError("task field 'wave' is required", code="bad_payload")
    return WaveTask(doc_id(body, "offer_id"), doc_id(body, "clinic_id"), wave)
