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
from datetime import date, datetime
from typing import Any

from shared.platform.errors import PermanentError
from shared.tasks.payload import VERSION, doc_id, instant, require_fields, small_int, task_type

CLINIC_DAY = "fanout_clinic_day"
AUDIT = "fanout_audit"
UNIT_TYPES = (CLINIC_DAY, AUDIT)
# What an operator does with a unit that failed for good (the retry sweep re-enqueues only the handler's tasks).
UNIT_NOTES = {
    CLINIC_DAY: "a fan-out unit: run python -m ops replay-tick --date DATE --clinic CLINIC_ID (both in the payload; "
    "it fills exactly the gap), then resolve",
    AUDIT: "the contract audit of [since, until): it only logs documents that break the contract, nothing is sent; "
    "resolve",
}
REMINDERS, FOLLOWUPS = "reminders", "followups"  # what a window's appointments are planned for
MAX_SHARDS = 1000
MAX_WINDOWS = 16  # per shard: a split never cuts a day into more pieces than this per shard
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PLAN = re.compile(r"[0-9a-f]{1,16}")


@dataclass(frozen=True)
class Window:
    """Appointments starting in [start, end), and what to plan for them."""

    kind: str  # REMINDERS | FOLLOWUPS
    start: datetime
    end: datetime

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class ClinicDayTask:
    """Plan one clinic's local day `date` as of `planned_at`: the whole day, or shard `shard` of `shards`."""

    clinic_id: str
    date: date
    planned_at: datetime
    shard: int = 0
    shards: int = 1  # 1: the whole day, windows worked out by the unit
    plan: str = ""  # a split's id, the same in each of its shards
    windows: tuple[Window, ...] = ()  # a shard's share of the day
    type: str = CLINIC_DAY
    v: int = VERSION

    FIELDS = ("clinic_id", "date", "planned_at", "shard", "shards", "plan", "windows")

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

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "v": self.v,
            "clinic_id": self.clinic_id,
            "date": self.date.isoformat(),
            "planned_at": self.planned_at.isoformat(),
        }
        if self.is_shard:
            body.update(
                shard=self.shard,
                shards=self.shards,
                plan=self.plan,
                windows=[window.to_json() for window in self.windows],
            )
        return body


@dataclass(frozen=True)
class AuditTask:
    """Check the appointments written in [since, until) against the contract (fanout.audit_recent_appointments)."""

    since: datetime
    until: datetime
    type: str = AUDIT
    v: int = VERSION

    FIELDS = ("since", "until")

    @property
    def clinic_id(self) -> str:
        return ""  # every clinic's appointments

    @property
    def business_key(self) -> str:
        return f"{AUDIT}:{self.since.isoformat()}:{self.until.isoformat()}"

    @property
    def failure_key(self) -> str:
        return f"fanout-audit-{self.since.strftime('%Y%m%dT%H%M%S')}"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "v": self.v, "since": self.since.isoformat(), "until": self.until.isoformat()}


def _date(body: dict[str, Any], name: str) -> date:
    value = body.get(name)
    try:
        if isinstance(value, str) and _DATE.fullmatch(value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise PermanentError(f"task field '{name}' must be a date YYYY-MM-DD", code="bad_payload")


def _windows(body: dict[str, Any]) -> tuple[Window, ...]:
    raw = body.get("windows")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_WINDOWS:
        raise PermanentError(f"task field 'windows' must list 1 to {MAX_WINDOWS} windows", code="bad_payload")
    windows = []
    for item in raw:
        if (
            not isinstance(item, dict)
            or set(item) != {"kind", "start", "end"}
            or item["kind"]
            not in (
                REMINDERS,
                FOLLOWUPS,
            )
        ):
            raise PermanentError("a window is {kind, start, end}", code="bad_payload")
        start, end = instant(item, "start"), instant(item, "end")
        if not start < end:
            raise PermanentError("a window ends after it starts", code="bad_payload")
        windows.append(Window(item["kind"], start, end))
    return tuple(windows)


def parse_unit(body: dict[str, Any]) -> ClinicDayTask | AuditTask:
    """A unit's body → its task, or PermanentError (recorded in failed_tasks, never retried)."""
    kind = task_type(body)
    if kind == AUDIT:
        require_fields(body, AuditTask.FIELDS)
        since, until = instant(body, "since"), instant(body, "until")
        if not since < until:
            raise PermanentError("an audit window ends after it starts", code="bad_payload")
        return AuditTask(since, until)
    if kind != CLINIC_DAY:
        raise PermanentError("not a fan-out unit", code="unknown_type")
    require_fields(body, ClinicDayTask.FIELDS)
    clinic_id, day, planned_at = doc_id(body, "clinic_id"), _date(body, "date"), instant(body, "planned_at")
    shards = small_int(body, "shards", low=1, high=MAX_SHARDS) or 1
    if shards == 1:
        if any(name in body for name in ("shard", "plan", "windows")):
            raise PermanentError("only a shard names its share of the day", code="bad_payload")
        return ClinicDayTask(clinic_id, day, planned_at)
    shard = small_int(body, "shard", low=0, high=shards - 1)
    plan = body.get("plan")
    if shard is None or not isinstance(plan, str) or not _PLAN.fullmatch(plan):
        raise PermanentError("a shard names its index and its split", code="bad_payload")
    return ClinicDayTask(clinic_id, day, planned_at, shard, shards, plan, _windows(body))
