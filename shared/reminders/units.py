"""The units of a distributed reminders tick, as Cloud Task bodies (ids, dates and instants only).

The tick's coordinator (shared.reminders.coordinator) enqueues one `ClinicDayTask` per clinic and a few
`AuditTask`s; the reminder-fanout-unit function runs each in its own invocation (shared.reminders.fanout
.run_unit), so Cloud Tasks scales the work out over as many instances as the queue allows. A clinic-day
too large for one invocation is split into shards: `ClinicDayTask`s of the same clinic and day naming
their share of the day's windows (`windows`), their index and count, and the split they belong to
(`plan`). Every body carries the tick's own instant (`planned_at`): a unit plans with it as "now", so a
redelivered unit plans exactly what its first delivery did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Self

from shared.tasks.payload import Day, DocId, Instant, InstantCheck, Matches, TaskBody, Whole, bad

CLINIC_DAY = "fanout_clinic_day"
AUDIT = "fanout_audit"
# What an operator does with a unit that failed for good (the retry sweep re-enqueues only the handler's tasks).
UNIT_NOTES = {
    CLINIC_DAY: "a fan-out unit: run python -m ops replay-tick --date DATE --clinic CLINIC_ID (both in the payload; "
    "it fills exactly the gap), then resolve",
    AUDIT: "the contract audit of [since, until): it only logs documents that break the contract, nothing is sent; "
    "resolve",
}
REMINDERS, FOLLOWUPS = "reminders", "followups"  # what a window's appointments are planned for
REBOOKS, NO_SHOWS = "rebooks", "no_shows"  # rebooking nudges and "we missed you" (docs/rebooking.md)
CHECKINS = "checkins"  # the check-ins after a visit (docs/feedback.md)
KINDS = (REMINDERS, FOLLOWUPS, CHECKINS, REBOOKS, NO_SHOWS)
MAX_SHARDS = 1000
# Per shard. A caught-up day reads at most 32: two each of reminders, follow-ups, check-ins and no-shows, 24 rebooks.
MAX_WINDOWS = 40
_PLAN = re.compile(r"[0-9a-f]{1,16}")
_INSTANT = InstantCheck()


@dataclass(frozen=True)
class Window:
    """Appointments starting in [start, end), and what to plan for them."""

    kind: str  # REMINDERS | FOLLOWUPS | CHECKINS | REBOOKS | NO_SHOWS
    start: datetime
    end: datetime

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat()}


class WindowsCheck:
    """A shard's share of the day: 1 to MAX_WINDOWS windows {kind, start, end}, each ending after it starts."""

    def read(self, raw: Any, name: str) -> tuple[Window, ...]:
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_WINDOWS:
            raise bad(f"task field '{name}' must list 1 to {MAX_WINDOWS} windows")
        windows = []
        for item in raw:
            if not isinstance(item, dict) or set(item) != {"kind", "start", "end"} or item["kind"] not in KINDS:
                raise bad("a window is {kind, start, end}")
            start, end = _INSTANT.read(item["start"], "start"), _INSTANT.read(item["end"], "end")
            if not start < end:
                raise bad("a window ends after it starts")
            windows.append(Window(item["kind"], start, end))
        return tuple(windows)

    def write(self, windows: tuple[Window, ...]) -> list[dict[str, str]]:
        return [window.to_json() for window in windows]


@dataclass(frozen=True)
class ClinicDayTask(TaskBody):
    """Plan one clinic's local day `date` as of `planned_at`: the whole day, or shard `shard` of `shards`."""

    clinic_id: DocId
    date: Day
    planned_at: Instant
    shard: Annotated[int, Whole(0, MAX_SHARDS - 1)] = 0
    shards: Annotated[int, Whole(1, MAX_SHARDS)] = 1  # 1: the whole day, windows worked out by the unit
    plan: Annotated[str, Matches(_PLAN, "a split's id")] = ""  # a split's id, the same in each of its shards
    windows: Annotated[tuple[Window, ...], WindowsCheck()] = ()  # a shard's share of the day
    type: str = CLINIC_DAY

    @classmethod
    def from_json(cls, body: dict[str, Any], kind: str) -> Self:
        share = ("shard", "plan", "windows")
        if body.get("shards") in (None, 1) and any(name in body for name in share):
            raise bad("only a shard names its share of the day")
        if body.get("shards") not in (None, 1) and any(body.get(name) is None for name in share):
            raise bad("a shard names its index, its split and its windows")
        return super().from_json(body, kind)

    def to_json(self) -> dict[str, Any]:
        """A shard names its index even when it is 0 (the default a whole day leaves out)."""
        body = super().to_json()
        return {**body, "shard": self.shard} if self.is_shard else body

    def validate(self) -> None:
        if self.shard >= self.shards:
            raise bad(f"task field 'shard' must be a whole number from 0 to {self.shards - 1}")

    @property
    def is_shard(self) -> bool:
        return self.shards > 1

    @property
    def business_key(self) -> str:
        """Its task's name: one unit per clinic, day, tick (and shard of a split), however often enqueued."""
        base = f"{CLINIC_DAY}:{self.clinic_id}:{self.date.isoformat()}:{self.planned_at.isoformat()}"
        return f"{base}:{self.plan}:{self.shard}" if self.is_shard else base

    @property
    def failure_key(self) -> str:
        suffix = f"-{self.plan}-{self.shard}" if self.is_shard else ""
        return f"fanout-{self.clinic_id}-{self.date.isoformat()}{suffix}"[:200]


@dataclass(frozen=True)
class AuditTask(TaskBody):
    """Check the appointments written in [since, until) against the contract (fanout.audit_recent_appointments)."""

    since: Instant
    until: Instant
    type: str = AUDIT

    def validate(self) -> None:
        if not self.since < self.until:
            raise bad("an audit window ends after it starts")

    @property
    def clinic_id(self) -> str:
        return ""  # every clinic's appointments

    @property
    def business_key(self) -> str:
        return f"{AUDIT}:{self.since.isoformat()}:{self.until.isoformat()}"

    @property
    def failure_key(self) -> str:
        return f"fanout-audit-{self.since.strftime('%Y%m%dT%H%M%S')}"
