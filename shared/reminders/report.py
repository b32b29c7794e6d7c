"""What one fan-out run did, as one log line: counts and ids, never PHI."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.platform.errors import RetryableError

MAX_PROBLEMS = 5  # problems quoted in the summary line (ids and error classes only)


@dataclass
class FanoutReport:
    trigger: str
    clinics: int = 0
    appointments: int = 0
    created: int = 0  # new ledger doc + its task
    recovered: int = 0  # the doc existed (a crashed run's), its task did not: created now
    already_present: int = 0  # doc and task both there (a re-run)
    skipped: Counter[str] = field(default_factory=Counter)  # recorded in the ledger as skipped, by reason
    problems: Counter[str] = field(default_factory=Counter)  # contract breaches seen (logged one by one)
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    units: int = 0  # fan-out units this run enqueued (a coordinator's clinic-days, a split's shards)
    units_present: int = 0  # units already enqueued by an earlier delivery of the same run
    shards: int = 0  # the clinic-day was split into this many shards

    def fail(self, count: int, problem: str) -> None:
        self.failed += count
        if len(self.failures) < MAX_PROBLEMS:
            self.failures.append(problem[:200])

    def merge(self, other: FanoutReport) -> None:
        for name in (
            "clinics",
            "appointments",
            "created",
            "recovered",
            "already_present",
            "failed",
            "units",
            "units_present",
            "shards",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped.update(other.skipped)
        self.problems.update(other.problems)
        self.failures.extend(other.failures[: max(0, MAX_PROBLEMS - len(self.failures))])

    def summary(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger,
            "clinics": self.clinics,
            "appointments": self.appointments,
            "created": self.created,
            "recovered": self.recovered,
            "already_present": self.already_present,
            "skipped": dict(sorted(self.skipped.items())),
            "problems": dict(sorted(self.problems.items())),
            "failed": self.failed,
            "failures": self.failures,
            "units": self.units,
            "units_present": self.units_present,
            "shards": self.shards,
        }

    def raise_if_failed(self) -> None:
        """After the summary is logged: a run with failures raises so the event is redelivered."""
        if self.failed:
            raise RetryableError(
                f"{self.failed} creation(s) failed; the redelivered event fills the gap", code="fanout_incomplete"
            )
