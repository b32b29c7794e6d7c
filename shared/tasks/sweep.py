"""Operator retries: failed_tasks docs set to status "retry" in the console are re-enqueued exactly once.

For each such doc the sweep re-reads what it can trust (the task type must be registered, the stored
payload must parse, `retry_generation` must be a whole number); a doc it cannot use gets a `note`
saying why and goes back to open, and the sweep goes on with the next one: operators edit these docs by
hand, and one bad edit must not stop every other retry. For a usable doc the type's state is first made
ready for a new attempt (its `reopen` hook), and by what that says the doc is then:
- resolved, when the message already went or was rightly skipped (nothing to re-send);
- left marked retry with a note, when a delivery is in flight (a live claim is never reopened);
- otherwise won (one versioned update: retry → retried, generation + 1, so two sweeps racing on one
  doc cannot both win) and re-enqueued as a task named from (doc id, generation): the same retry is
  never enqueued twice either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.platform import log
from shared.platform.errors import PermanentError
from shared.platform.store import Doc
from shared.tasks.declaration import Reopen
from shared.tasks.failed_tasks import FailedTasks
from shared.tasks.payload import envelope
from shared.tasks.queue import TaskQueue, TaskSpec
from shared.tasks.router import TaskType


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    lost_race: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    not_retryable: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {name: len(value) for name, value in vars(self).items()}


class RetrySweep:
    def __init__(
        self,
        failures: FailedTasks,
        queue: TaskQueue,
        types: Mapping[str, TaskType[Any]],
        *,
        queues: tuple[str, ...],
        redone_elsewhere: Mapping[str, str] | None = None,
    ) -> None:
        """A task goes back to the queue it failed on when that is one of `queues`, else to its type's.
        `redone_elsewhere`: task types this sweep does not re-enqueue, each with the note saying how to redo one."""
        self.failures, self.queue, self.types, self.queues = failures, queue, dict(types), queues
        self.redone_elsewhere = dict(redone_elsewhere or {})

    def run(self, *, only: str | None = None) -> SweepReport:
        """Re-enqueue every failed task an operator marked "retry" (or just `only`)."""
        report = SweepReport()
        if only:
            doc = self.failures.read(only)
            docs = [doc] if doc is not None and doc.get("status") == "retry" else []
        else:
            docs = list(self.failures.marked_for_retry())
        for doc in docs:
            try:
                self._retry(doc, report)
            except Exception as exc:  # noqa: BLE001 - one doc's trouble must not stop the others
                log.exception("retry sweep could not handle a failed task", exc, failed_task=doc.id)
                report.failed.append(doc.id)
        log.info("retry sweep finished", **report.summary())
        return report

    def _retry(self, doc: Doc, report: SweepReport) -> None:
        type_name = doc.get("task_type") if isinstance(doc.get("task_type"), str) else None
        kind = self.types.get(type_name) if type_name else None
        if kind is None and type_name in self.redone_elsewhere:
            return self._reject(doc, report, self.redone_elsewhere[type_name])
        if kind is None:
            return self._reject(doc, report, "unknown task type: fix the sender, then resolve")
        payload = doc.get("payload")
        if not isinstance(payload, dict):
            return self._reject(doc, report, "no payload to re-send: resolve")
        try:
            if envelope(payload) != kind.name:
                raise PermanentError("the payload is another type's", code="unknown_type")
            task = kind.parse(dict(payload))
        except PermanentError as exc:
            return self._reject(doc, report, f"the stored payload does not parse ({exc.code}): nothing to re-send")
        generation = doc.get("retry_generation", 0)
        if generation is None:
            generation = 0
        if type(generation) is not int or not 0 <= generation < 1_000_000:
            return self._reject(doc, report, "retry_generation must be a whole number: set it back, or delete it")
        verdict = kind.reopen(task) if kind.reopen else None
        if verdict == Reopen.ALREADY_DONE:
            self.failures.resolve(doc, "already sent or rightly skipped: nothing to re-send")
            report.already_done.append(doc.id)
            return None
        if verdict == Reopen.IN_FLIGHT:
            self.failures.defer_retry(doc, "a delivery is in flight; the next sweep retries")
            report.in_flight.append(doc.id)
            return None
        if not self.failures.claim_retry(doc, generation + 1):
            report.lost_race.append(doc.id)  # another sweep took this generation
            return None
        queue = doc.get("queue") if doc.get("queue") in self.queues else kind.queue
        spec = TaskSpec(queue=str(queue), business_key=f"{doc.id}#retry{generation + 1}", payload=task.to_json())
        try:
            self.queue.create(spec)
        except Exception as exc:  # noqa: BLE001 - put it back for the next sweep, and say so
            self.failures.retry_failed(doc.id, f"re-enqueue failed: {type(exc).__name__}; the next sweep retries")
            report.failed.append(doc.id)
            return None
        report.requeued.append(doc.id)
        return None

    def _reject(self, doc: Doc, report: SweepReport, note: str) -> None:
        self.failures.reject_retry(doc, note)
        report.not_retryable.append(doc.id)
