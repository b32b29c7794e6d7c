"""A Pub/Sub-triggered job (Eventarc's messagePublished CloudEvent): envelope → parse → too old? → run →
one summary line.

What the platform does with our answer decides the shape (docs/architecture.md, "Entry points"): an
event function that raises is redelivered, one that returns is acknowledged. So:
- a message that can never succeed (malformed, unknown clinic, a date out of range) is logged and
  acknowledged: the same bytes would fail the same way;
- a scheduled tick older than MAX_EVENT_AGE_SECONDS is logged and acknowledged: the day it would plan
  has moved on (the next tick, or `ops`, covers it);
- a run that failed part-way logs its summary, then raises, so the redelivery redoes exactly the gap
  (every job is idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from shared.contract import events
from shared.contract.freshness import too_old
from shared.platform import log
from shared.platform.clock import Clock, system_clock
from shared.platform.errors import PermanentError

R = TypeVar("R")


class RunResult(Protocol):
    """What a job's run returns: its summary line's fields, and a raise when part of it failed."""

    def summary(self) -> Mapping[str, Any]: ...

    def raise_if_failed(self) -> None: ...


def _no_fields(request: Any) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class PubSubJob(Generic[R]):
    """`name` heads every log line ("reminders tick done"); `parse` reads the message's bytes (raising
    PermanentError); `run(request, now)` does the work. With `max_age` (seconds, read when the first event
    arrives) the job is a scheduled tick: one too old is acknowledged unrun, and "now" is the event's own
    time, so a redelivered tick plans exactly what its first delivery did."""

    name: str
    parse: Callable[[bytes], R]
    run: Callable[[R, datetime], RunResult]
    max_age: Callable[[], int] | None = None
    describe: Callable[[R], Mapping[str, Any]] = _no_fields  # the request's ids for the summary line
    clock: Clock = field(default=system_clock)

    def __call__(self, cloud_event: Any) -> None:
        started = time.monotonic()
        with log.bound(event_id=cloud_event["id"]):
            try:
                envelope = events.envelope(cloud_event)
                request = self.parse(envelope.data)
                now = self.clock.now()
                if self.max_age is not None:
                    age = too_old(envelope, now, self.max_age())
                    if age is not None:
                        log.warning(f"{self.name} too old to run; acknowledged", age_seconds=int(age.total_seconds()))
                        return
                    now = envelope.time or now
                result = self.run(request, now)
            except PermanentError as exc:
                log.warning(f"{self.name} rejected; acknowledged", error_code=exc.code, error=str(exc))
                return
            log.info(
                f"{self.name} done",
                **self.describe(request),
                seconds=round(time.monotonic() - started, 2),
                **result.summary(),
            )
            result.raise_if_failed()
