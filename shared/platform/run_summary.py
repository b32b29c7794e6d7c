"""What one run did (a reports or inventory tick, a fan-out tick or unit, an appointment event), as the
fields of its one summary log line: counts, problems, the documents that broke the contract, the ids
written and the failures. Counts and ids only, never PHI.

Every run's entry point logs `summary()` and then calls `raise_if_failed()`, so a run with failures is
redelivered (Pub/Sub) or retried (Cloud Tasks) after the rest of its work was done. A run with counters
of its own declares them as typed fields of a subclass (shared.reminders.fanout_summary).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from shared.platform import log
from shared.platform.errors import InvalidDocument, RetryableError

MAX_LISTED = 10  # invalid documents, ids and failures quoted in the summary line
MAX_FAILURE_CHARS = 200


@dataclass
class RunSummary:
    trigger: str
    counts: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)  # contract breaches and skips seen, by code
    invalid: list[dict[str, str]] = field(default_factory=list)  # {collection, doc_id, field}
    ids: list[str] = field(default_factory=list)  # the documents written (first MAX_LISTED)
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    FAILED_ITEMS: ClassVar[str] = "clinic(s)"  # what `failed` counts, in the retry's message
    INCOMPLETE: ClassVar[str | None] = None  # the retry's error code; None: "<trigger>_incomplete"

    def fail(self, problem: str, *, count: int = 1) -> None:
        """`count` items failed for `problem` (an id and an error class, never PHI); the run raises at the end."""
        self.failed += count
        if len(self.failures) < MAX_LISTED:
            self.failures.append(problem[:MAX_FAILURE_CHARS])

    def invalid_document(self, exc: InvalidDocument) -> None:
        """A document breaking the contract: counted, logged by id and field, listed in the summary."""
        self.problems[f"invalid_{exc.collection}"] += 1
        if len(self.invalid) < MAX_LISTED:
            self.invalid.append({"collection": exc.collection, "doc_id": exc.doc_id, "field": exc.field})
        log.warning("document breaks the contract; skipped", **exc.where())

    def merge(self, other: Self) -> None:
        """Add a part's figures (a clinic's, a unit's) to this run's."""
        self.counts.update(other.counts)
        self.problems.update(other.problems)
        self.invalid.extend(other.invalid[: max(0, MAX_LISTED - len(self.invalid))])
        self.ids.extend(other.ids[: max(0, MAX_LISTED - len(self.ids))])
        self.failed += other.failed
        self.failures.extend(other.failures[: max(0, MAX_LISTED - len(self.failures))])

    def summary(self) -> dict[str, Any]:
        """The summary line's fields."""
        return {
            "trigger": self.trigger,
            **dict(sorted(self.counts.items())),
            "problems": dict(sorted(self.problems.items())),
            "invalid": self.invalid,
            "ids": self.ids,
            "failed": self.failed,
            "failures": self.failures,
        }

    def raise_if_failed(self) -> None:
        """After the summary is logged: a run with failures raises so the event or task is delivered again,
        and the next delivery redoes exactly what failed."""
        if self.failed:
            raise RetryableError(
                f"{self.failed} {self.FAILED_ITEMS} failed; the redelivery redoes them",
                code=self.INCOMPLETE or f"{self.trigger}_incomplete",
            )
