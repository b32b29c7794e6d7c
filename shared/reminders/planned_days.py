"""fanout_runs/{clinic_id}_{date}: which clinic-days the reminders tick has fully planned.

The only writer of the collection. A run is recorded once every message of the clinic's day has its
ledger doc and its task; the tick for the next day reads it to know whether it must also cover what
this one would have (a first day, a missed Scheduler run, an outage: shared.reminders.plan).

A clinic-day split into shards (shared.reminders.shards) is recorded shard by shard, as
fanout_runs/{clinic_id}_{date}_{plan}_{shard}; each shard, once done, writes its own record and then
reads its siblings', and the one that finds them all writes the day's record, with the shards' counts
summed. Two shards finishing together both see each other (each wrote before it read), so the day is
always recorded, possibly twice with the same figures; a split redelivered with another cut (the
bookings changed in between) is another plan, and whichever plan completes records the day.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from shared.platform.clock import Clock
from shared.platform.store import Store

COLLECTION = "fanout_runs"
RETENTION = timedelta(days=40)  # expire_at, for the TTL policy


def path(clinic_id: str, day: date) -> str:
    return f"{COLLECTION}/{clinic_id}_{day.isoformat()}"


def shard_path(clinic_id: str, day: date, plan: str, shard: int) -> str:
    return f"{COLLECTION}/{clinic_id}_{day.isoformat()}_{plan}_{shard}"


def _counts(summary: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in summary.items() if isinstance(v, int) and not isinstance(v, bool)}


class PlannedDays:
    """The fanout_runs records: a clinic-day planned, or a shard of one."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def completed(self, clinic_id: str, day: date) -> bool:
        return self.store.get(path(clinic_id, day)) is not None

    def record(self, clinic_id: str, day: date, summary: dict[str, Any]) -> None:
        """The clinic's day is planned (a re-run overwrites the record with its own figures)."""
        now = self.clock.now()
        self.store.put(
            path(clinic_id, day),
            {
                "clinic_id": clinic_id,
                "date": day.isoformat(),
                "completed_at": now,
                "expire_at": now + RETENTION,
                **_counts(summary),
            },
        )

    def record_shard(
        self, clinic_id: str, day: date, plan: str, shard: int, shards: int, summary: dict[str, Any]
    ) -> bool:
        """Shard `shard` of split `plan` is planned; when every shard of the split is, so is the day (True)."""
        now = self.clock.now()
        counts = _counts(summary)
        self.store.put(
            shard_path(clinic_id, day, plan, shard),
            {
                "clinic_id": clinic_id,
                "date": day.isoformat(),
                "plan": plan,
                "shard": shard,
                "shards": shards,
                "completed_at": now,
                "expire_at": now + RETENTION,
                **counts,
            },
        )
        found = self.store.get_all([shard_path(clinic_id, day, plan, index) for index in range(shards)])
        if len(found) < shards:
            return False
        total: dict[str, int] = {}
        for doc in found.values():
            for name, value in _counts(doc.data).items():
                if name not in ("shard", "shards"):
                    total[name] = total.get(name, 0) + value
        self.record(clinic_id, day, {**total, "shards": shards})
        return True
