"""What one reports or inventory run did, as one log line (counts and ids, never PHI), and the clinics it
runs for: the one named (unknown → rejected) or every clinic whose document keeps the contract."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shared.contract.events import EventRejected
from shared.contract.models import CLINICS, Clinic
from shared.platform import log
from shared.platform.errors import InvalidDocument, RetryableError
from shared.platform.store import Store

MAX_LISTED = 10  # ids and problems quoted in the summary line


@dataclass
class RunReport:
    trigger: str
    counts: Counter[str] = field(default_factory=Counter)
    problems: Counter[str] = field(default_factory=Counter)
    invalid: list[dict[str, str]] = field(default_factory=list)  # {collection, doc_id, field}
    ids: list[str] = field(default_factory=list)  # the documents written (first MAX_LISTED)
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_LISTED:
            self.failures.append(problem[:200])

    def invalid_document(self, exc: InvalidDocument) -> None:
        """A document breaking the contract: counted, logged by id and field, listed in the summary."""
        self.problems[f"invalid_{exc.collection}"] += 1
        if len(self.invalid) < MAX_LISTED:
            self.invalid.append({"collection": exc.collection, "doc_id": exc.doc_id, "field": exc.field})
        log.warning(
            "document breaks the contract; skipped",
            collection=exc.collection,
            doc_id=exc.doc_id,
            field=exc.field,
            error_code=exc.code,
        )

    def skipped_fields(self, clinic: Clinic, name: str, *, code: str = "invalid_recipient") -> int:
        """A clinic setting skipped rather than refused (a bad staff address, the currency): logged masked and
        counted here; a skipped address is also recorded in failed_tasks by the email task."""
        skipped = clinic.problems_of(name)
        for problem in skipped:
            log.warning(
                "clinic setting skipped; the rest of the clinic goes on",
                clinic_id=clinic.id,
                field=problem.field,
                problem=problem.problem,
                error_code=code,
            )
        if skipped:
            self.problems[code] += len(skipped)
        return len(skipped)

    def merge(self, other: RunReport) -> None:
        self.counts.update(other.counts)
        self.problems.update(other.problems)
        self.invalid.extend(other.invalid[: max(0, MAX_LISTED - len(self.invalid))])
        self.ids.extend(other.ids[: max(0, MAX_LISTED - len(self.ids))])
        self.failed += other.failed
        self.failures.extend(other.failures[: max(0, MAX_LISTED - len(self.failures))])

    def summary(self) -> dict[str, Any]:
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
        """After the summary is logged: a run with failures raises so the event is redelivered."""
        if self.failed:
            raise RetryableError(
                f"{self.failed} clinic(s) failed; the redelivered event redoes them", code=f"{self.trigger}_incomplete"
            )


def clinics(store: Store, clinic_id: str | None, report: RunReport) -> list[Clinic]:
    """The one clinic asked for (unknown → EventRejected), or every valid clinic (invalid ones reported)."""
    if clinic_id is not None:
        doc = store.get(f"{CLINICS}/{clinic_id}")
        if doc is None:
            raise EventRejected(f"clinic {clinic_id} does not exist", code="unknown_clinic")
        return [Clinic.from_doc(doc.id, doc.data)]
    found = []
    for doc in store.query(CLINICS):
        try:
            found.append(Clinic.from_doc(doc.id, doc.data))
        except InvalidDocument as exc:
            report.invalid_document(exc)
    return found
