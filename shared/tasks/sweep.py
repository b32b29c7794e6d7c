"""Operator retries: failed_tasks docs set to status "retry" in the console are re-enqueued exactly once.

Each retry is a numbered generation. Winning it is one atomic batch: `create()` of the marker
failed_tasks/{id}/retries/{generation} plus the update to status "retried" (and, for a message whose
ledger says failed, the ledger back to scheduled). Two sweeps racing on one doc race on the marker's
create; exactly one batch commits, so exactly one task is created. The new task's name is derived
from (id, generation), so the same retry is never enqueued twice either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc

from shared.messaging.ledger import COLLECTION as LEDGER
from shared.platform import log
from shared.platform.clock import Clock
from shared.tasks.failed_tasks import COLLECTION
from shared.tasks.payload import APPOINTMENT_TASK_TYPES, parse_appointment_task
from shared.tasks.queue import TaskQueue, TaskSpec

RETRIES = "retries"


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    lost_race: list[str] = field(default_factory=list)
    already_delivered: list[str] = field(default_factory=list)
    not_retryable: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {name: len(value) for name, value in vars(self).items()}


class RetrySweep:
    def __init__(self, db: Any, queue: TaskQueue, clock: Clock, *, default_queue: str) -> None:
        """A task goes back to the queue it failed on (recorded in the doc), else to `default_queue`."""
        self.db, self.queue, self.clock, self.default_queue = db, queue, clock, default_queue

    def run(self, *, only: str | None = None) -> SweepReport:
        """Re-enqueue every failed task an operator marked "retry" (or just `only`)."""
        report = SweepReport()
        collection = self.db.collection(COLLECTION)
        if only:
            snapshots = [s for s in [collection.document(only).get()] if s.exists and s.get("status") == "retry"]
        else:
            from google.cloud.firestore_v1.base_query import FieldFilter

            snapshots = list(collection.where(filter=FieldFilter("status", "==", "retry")).stream())
        for snapshot in snapshots:
            self._retry(snapshot, report)
        log.info("retry sweep finished", **report.summary())
        return report

    def _retry(self, snapshot: Any, report: SweepReport) -> None:
        doc = snapshot.to_dict() or {}
        doc_id = snapshot.id
        payload = doc.get("payload") or {}
        if doc.get("task_type") not in APPOINTMENT_TASK_TYPES:
            self._not_retryable(snapshot, report, "unknown task type: fix the sender, then resolve")
            return
        try:
            task = parse_appointment_task(payload)
        except Exception:  # noqa: BLE001 - a record of a malformed body holds its shape only
            self._not_retryable(snapshot, report, "the original body was malformed: nothing to re-send")
            return
        ledger_ref = self.db.collection(LEDGER).document(task.dedup_key)
        ledger = ledger_ref.get()
        ledger_state = (ledger.to_dict() or {}).get("state") if ledger.exists else None
        if ledger_state in ("sent", "delivered"):
            snapshot.reference.update({"status": "resolved", "note": f"already {ledger_state}",
                                       "resolved_at": self.clock.now()})
            report.already_delivered.append(doc_id)
            return
        generation = int(doc.get("retry_generation", 0) or 0) + 1
        now = self.clock.now()
        batch = self.db.batch()
        batch.create(snapshot.reference.collection(RETRIES).document(str(generation)), {"requested_at": now})
        batch.update(snapshot.reference, {"status": "retried", "retry_generation": generation, "retried_at": now})
        if ledger_state in ("failed", "sending", None):
            batch.set(ledger_ref, {"state": "scheduled", "reason": "operator_retry", "lease_until": None,
                                   "updated_at": now}, merge=True)
        try:
            batch.commit()
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Conflict, gexc.Aborted):
            report.lost_race.append(doc_id)  # another sweep took this generation
            return
        spec = TaskSpec(queue=str(doc.get("queue") or self.default_queue), business_key=f"{doc_id}#retry{generation}",
                        payload=task.to_json(), schedule_time=None)
        try:
            self.queue.create(spec)
        except Exception as exc:  # noqa: BLE001 - put it back for the next sweep, and say so
            snapshot.reference.update({"status": "retry", "note": f"re-enqueue failed: {type(exc).__name__}"})
            report.failed.append(doc_id)
            return
        report.requeued.append(doc_id)

    def _not_retryable(self, snapshot: Any, report: SweepReport, note: str) -> None:
        snapshot.reference.update({"status": "open", "note": note})
        report.not_retryable.append(snapshot.id)
