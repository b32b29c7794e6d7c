"""What one fan-out run did (a tick, a unit, an appointment event): the run summary
(shared.platform.run_summary) with the fan-out's own counters, typed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from shared.platform.run_summary import RunSummary

COUNTERS = ("clinics", "appointments", "created", "recovered", "already_present", "units", "units_present", "shards")


@dataclass
class FanoutSummary(RunSummary):
    clinics: int = 0
    appointments: int = 0
    created: int = 0  # new ledger doc + its task
    recovered: int = 0  # the doc existed (a crashed run's), its task did not: created now
    already_present: int = 0  # doc and task both there (a re-run)
    skipped: Counter[str] = field(default_factory=Counter)  # recorded in the ledger as skipped, by reason
    units: int = 0  # fan-out units this run enqueued (a coordinator's clinic-days, a split's shards)
    units_present: int = 0  # units already enqueued by an earlier delivery of the same run
    shards: int = 0  # the clinic-day was split into this many shards

    FAILED_ITEMS: ClassVar[str] = "creation(s)"
    INCOMPLETE: ClassVar[str | None] = "fanout_incomplete"

    def merge(self, other: Self) -> None:
        super().merge(other)
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)

    def summary(self) -> dict[str, Any]:
        counters = {name: getattr(self, name) for name in COUNTERS}
        return {**super().summary(), **counters, "skipped": dict(sorted(self.skipped.items()))}
