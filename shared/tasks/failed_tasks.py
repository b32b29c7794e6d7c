"""failed_tasks/{id}: every failure a clinic would care about, readable and retryable in the Firestore
console. This module is the only writer of the collection; its state machine in outline (every transition
and its guard: docs/architecture.md, "failed_tasks"):

    (none) ──record──► open ──operator sets "retry" (console or `ops retry`)──► retry
                        ▲ ▲                                                     │ sweep wins the retry
                        │ └──────── record again (the retried task failed) ──── retried ◄┘
                        └── the sweep cannot use the doc: status open + a `note` saying why
    open | retry ──resolve (operator, or the sweep: "already sent")──► resolved

One document per failing task (its id: the task's business key, else a hash of the Cloud Tasks task
name or of the body), so repeated failures of one task update one document. Whatever is stored is
scrubbed and bounded first (ids, codes, masked text), so the record can always be written: a failure
whose record itself fails would be lost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.contract.bodies import INT64, safe_text
from shared.contract.ids import is_doc_id
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.masking import scrub
from shared.platform.store import DOC_ID, Doc, Store

COLLECTION = "failed_tasks"
MAX_ERROR_CHARS = 500
MAX_VALUE_CHARS = 200
_CODE = re.compile(r"[a-z0-9_]{1,60}")


class Status(StrEnum):
    OPEN = "open"
    RETRY = "retry"
    RETRIED = "retried"
    RESOLVED = "resolved"


def path(doc_id: str) -> str:
    return f"{COLLECTION}/{doc_id}"


def failure_id(*, business_key: str | None = None, task_name: str | None = None, body: bytes = b"") -> str:
    """The failed_tasks doc id of a failing task: stable across its attempts."""
    if business_key and is_doc_id(business_key):
        return business_key
    if task_name:
        return "task-" + hashlib.sha256(task_name.encode("utf-8", "replace")).hexdigest()[:40]
    return "body-" + hashlib.sha256(body).hexdigest()[:40]


def body_shape(body: Any, known_fields: tuple[str, ...]) -> dict[str, Any]:
    """What may be kept of a body we could not trust: its shape, never its values (nor unknown key names,
    which could themselves carry a name or a number)."""
    if not isinstance(body, dict):
        return {"shape": type(body).__name__}
    known = sorted(key for key in body if key in known_fields)
    return {"known_fields": known, "other_fields": len(body) - len(known)}


def safe_value(value: Any, depth: int = 0) -> Any:
    """A value Firestore can always store and a person may read: masked, valid Unicode, bounded."""
    if value is None or isinstance(value, bool | datetime):
        return value
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else str(value)[:20]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        return safe_text(scrub(safe_text(value, MAX_VALUE_CHARS * 2)), MAX_VALUE_CHARS)
    if isinstance(value, Mapping) and depth < 2:
        return {safe_text(str(k), 60): safe_value(v, depth + 1) for k, v in list(value.items())[:40]}
    if isinstance(value, list | tuple) and depth < 2:
        return [safe_value(v, depth + 1) for v in list(value)[:40]]
    return type(value).__name__


def safe_code(code: Any) -> str:
    return code if isinstance(code, str) and _CODE.fullmatch(code) else "error"


class FailedTasks:
    """Records failures and makes every status change of failed_tasks docs."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def record(
        self,
        doc_id: str,
        *,
        task_type: str,
        task_name: str | None,
        payload: Mapping[str, Any],
        error_code: str,
        error: str,
        http_status: int,
        attempts: int,
        clinic_id: str | None = None,
        queue: str | None = None,
        only_if_new: bool = False,
    ) -> bool:
        """Open (or re-open) the failure record; the first failure's time is kept. With `only_if_new`, a
        record that already exists (whatever an operator made of it) is left alone. True when written."""
        now = self.clock.now()
        fields = {
            "task_type": safe_code(task_type),
            "task_name": safe_text(task_name, MAX_VALUE_CHARS * 2) if isinstance(task_name, str) else None,
            "payload": safe_value(dict(payload)),
            "error_code": safe_code(error_code),
            "error": safe_text(scrub(safe_text(error, MAX_ERROR_CHARS * 2)), MAX_ERROR_CHARS),
            "http_status": http_status,
            "attempts": max(0, min(int(attempts), 1_000_000)),
            "clinic_id": clinic_id if is_doc_id(clinic_id) else None,
            "queue": queue if is_doc_id(queue) else None,
            "status": Status.OPEN.value,
            "note": None,
            "last_failed_at": now,
        }
        target = path(doc_id if is_doc_id(doc_id) else failure_id(body=doc_id.encode("utf-8", "replace")))
        if self.store.create(target, {**fields, "first_failed_at": now}) is not None:
            self._opened(target, fields, reopened=False)
            return True
        if only_if_new:
            return False
        self.store.put(target, fields, merge=True)  # keeps first_failed_at and retry_generation
        self._opened(target, fields, reopened=True)
        return True

    @staticmethod
    def _opened(target: str, fields: Mapping[str, Any], *, reopened: bool) -> None:
        """One line per record opened: what the "failed_tasks record opened" alert counts (deploy/monitoring)."""
        log.warning(
            "failed_tasks record opened",
            failed_task=target.rpartition("/")[2],
            task_type=fields["task_type"],
            error_code=fields["error_code"],
            reopened=reopened,
        )

    # ------------------------------------------------------------------ operators and the retry sweep

    def read(self, doc_id: str) -> Doc | None:
        return self.store.get(path(doc_id)) if is_doc_id(doc_id) else None

    def ids_starting_with(self, prefix: str, *, limit: int) -> list[str]:
        """The ids that begin with `prefix`, in id order, at most `limit`: one range query on the id."""
        if not is_doc_id(prefix):
            return []
        where = [(DOC_ID, ">=", prefix), (DOC_ID, "<", prefix + "\uf8ff")]
        return [doc.id for doc in self.store.query(COLLECTION, where=where, fields=[], limit=limit)]

    def marked_for_retry(self) -> Iterator[Doc]:
        return self.store.query(COLLECTION, where=[("status", "==", Status.RETRY.value)])

    def open_failures(
        self,
        *,
        error_code: str | None = None,
        clinic_id: str | None = None,
        status: Status = Status.OPEN,
        limit: int | None = None,
    ) -> Iterator[Doc]:
        where: list[tuple[str, str, Any]] = [("status", "==", status.value)]
        if error_code:
            where.append(("error_code", "==", error_code))
        if clinic_id:
            where.append(("clinic_id", "==", clinic_id))
        return self.store.query(COLLECTION, where=where, limit=limit)

    def request_retry(self, doc_id: str) -> bool:
        """What an operator does in the console: status → retry (the next sweep re-enqueues it)."""
        doc = self.read(doc_id)
        if doc is None or doc.get("status") not in (Status.OPEN, Status.RESOLVED, Status.RETRY):
            return False
        return self.store.update(doc.path, {"status": Status.RETRY.value}, version=doc.version) is not None

    def claim_retry(self, doc: Doc, generation: int) -> bool:
        """Win this retry generation: exactly one sweep gets True for a doc read at `doc.version`."""
        return (
            self.store.update(
                doc.path,
                {
                    "status": Status.RETRIED.value,
                    "retry_generation": generation,
                    "retried_at": self.clock.now(),
                    "note": None,
                },
                version=doc.version,
            )
            is not None
        )

    def retry_failed(self, doc_id: str, note: str) -> None:
        """The re-enqueue after a won retry failed: mark it retry again, so the next sweep tries again."""
        self.store.update(path(doc_id), {"status": Status.RETRY.value, "note": safe_text(note, MAX_ERROR_CHARS)})

    def reject_retry(self, doc: Doc, note: str) -> None:
        """The sweep cannot use this doc as it stands: back to open, with a note saying why."""
        self.store.update(
            doc.path, {"status": Status.OPEN.value, "note": safe_text(note, MAX_ERROR_CHARS)}, version=doc.version
        )

    def defer_retry(self, doc: Doc, note: str) -> None:
        """Not now (a delivery is in flight): stays marked retry, with a note."""
        self.store.update(doc.path, {"note": safe_text(note, MAX_ERROR_CHARS)}, version=doc.version)

    def resolve(self, doc: Doc, note: str) -> None:
        self.store.update(
            doc.path,
            {
                "status": Status.RESOLVED.value,
                "note": safe_text(note, MAX_ERROR_CHARS),
                "resolved_at": self.clock.now(),
            },
            version=doc.version,
        )
