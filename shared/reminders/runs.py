"""fanout_runs/{clinic_id}_{date}: which clinic-days the reminders tick has fully planned.

The only writer of the collection. A run is recorded once every message of the clinic's day has its
ledger doc and its task; the tick for the next day reads it to know whether it must also cover what
this one would have (a first day, a missed Scheduler run, an outage: shared.reminders.plan).
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


class Runs:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def completed(self, clinic_id: str, day: date) -> bool:
        return self.store.get(path(clinic_id, day)) is not None

    def record(self, clinic_id: str, day: date, summary: dict[str, Any]) -> None:
        """The clinic's day is planned (a re-run overwrites the record with its own figures)."""
        counts = {k: v for k, v in summary.items() if isinstance(v, int)}
        now = self.clock.now()
        self.store.put(
            path(clinic_id, day),
            {
                "clinic_id": clinic_id,
                "date": day.isoformat(),
                "completed_at": now,
                "expire_at": now + RETENTION,
                **counts,
            },
        )
