"""failed_tasks/{id}: every failure a clinic would care about, readable and retryable in the console.

One document per failing task (its id derived from the task's business key, or from the Cloud Tasks
task name, or from the body's hash), so repeated failures of one task update one document. Documents
hold IDs, codes and masked values only: the error text passes through the log scrubber as well.
"""

from __future__ import annotations

import hashlib
from typing import Any

from google.api_core import exceptions as gexc

from shared.platform.clock import Clock
from shared.platform.log import scrub

COLLECTION = "failed_tasks"


def failure_id(*, business_key: str | None = None, task_name: str | None = None, body: bytes = b"") -> str:
    if business_key:
        return business_key
    if task_name:
        return "task-" + hashlib.sha256(task_name.encode()).hexdigest()[:40]
    return "body-" + hashlib.sha256(body).hexdigest()[:40]


def payload_summary(body: Any) -> dict[str, Any]:
    """What may be kept of a body we could not trust: its shape, never its values."""
    if isinstance(body, dict):
        return {"keys": sorted(str(k)[:40] for k in body)[:30], "type": str(body.get("type", ""))[:40]}
    return {"shape": type(body).__name__}


class FailedTasks:
    def __init__(self, db: Any, clock: Clock) -> None:
        self.db, self.clock = db, clock

    def record(
        self,
        doc_id: str,
        *,
        task_type: str,
        task_name: str | None,
        payload: dict[str, Any],
        error_code: str,
        error: str,
        http_status: int,
        attempts: int,
        clinic_id: str | None = None,
        queue: str | None = None,
    ) -> None:
        """Open (or re-open) the failure record; the first failure's time is kept."""
        now = self.clock.now()
        fields = {
            "task_type": task_type,
            "task_name": task_name,
            "payload": payload,
            "error_code": error_code,
            "error": scrub(error)[:500],
            "http_status": http_status,
            "attempts": attempts,
            "clinic_id": clinic_id,
            "queue": queue,
            "status": "open",
            "last_failed_at": now,
        }
        ref = self.db.collection(COLLECTION).document(doc_id)
        try:
            ref.create({**fields, "first_failed_at": now})
        except gexc.AlreadyExists:
            ref.update(fields)
