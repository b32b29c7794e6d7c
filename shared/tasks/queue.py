"""Named Cloud Tasks HTTP tasks for the task handler: deterministic names, OIDC, bounded-concurrency creation.

A task's name is a hash of its business key (the ledger's dedup key), so a re-run creates nothing new:
AlreadyExists is success. Names are hashed rather than sequential because Cloud Tasks shards on the
name's prefix. Cloud Tasks refuses a name while its task exists and for about an hour after it ran or
was deleted; the ledger is the longer-lived dedup layer (docs/architecture.md). Because names are
deterministic, a transient CreateTask error is simply retried in-process (google.api_core's Retry): a
retry that meets the first attempt's task gets AlreadyExists, which is success.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.platform.settings import Settings

DISPATCH_DEADLINE = timedelta(seconds=60)
DEFAULT_CONCURRENCY = 32
CREATE_RETRY_SECONDS = 30.0  # total budget for one task's transient CreateTask errors


def task_id(business_key: str) -> str:
    """A Cloud Tasks task id from a business key: hashed, stable, within the allowed characters."""
    return hashlib.sha256(business_key.encode()).hexdigest()


@dataclass(frozen=True)
class TaskSpec:
    """One task to create: where, what (IDs only, never PHI), when."""

    queue: str
    business_key: str
    payload: dict[str, Any]
    schedule_time: datetime | None = None


@dataclass
class CreateReport:
    created: int = 0
    present: set[str] = field(default_factory=set)  # business keys whose task already existed
    failed: list[tuple[TaskSpec, str]] = field(default_factory=list)

    @property
    def already_present(self) -> int:
        return len(self.present)


class TaskQueue(Protocol):
    def create(self, spec: TaskSpec) -> bool: ...


class CloudTasksQueue:
    """Creates HTTP tasks aimed at the task handler, signed with an OIDC token for its audience."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client, self.settings = client, settings

    def queue_path(self, queue: str) -> str:
        return self.client.queue_path(self.settings.project, self.settings.tasks_location, queue)

    def build(self, spec: TaskSpec) -> dict[str, Any]:
        """The Task resource as a dict, exactly what create_task receives."""
        parent = self.queue_path(spec.queue)
        task: dict[str, Any] = {
            "name": f"{parent}/tasks/{task_id(spec.business_key)}",
            "http_request": {
                "http_method": "POST",
                "url": self.settings.task_handler_url,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps(spec.payload, sort_keys=True).encode(),
                "oidc_token": {
                    "service_account_email": self.settings.tasks_service_account,
                    "audience": self.settings.task_audience,
                },
            },
            "dispatch_deadline": DISPATCH_DEADLINE,
        }
        if spec.schedule_time is not None:
            task["schedule_time"] = spec.schedule_time
        return task

    def create(self, spec: TaskSpec) -> bool:
        """Create the task; False when a task of that name already exists (a re-run), never an error."""
        from google.api_core import exceptions as gexc

        try:
            self.client.create_task(parent=self.queue_path(spec.queue), task=self.build(spec), retry=_create_retry())
        except gexc.AlreadyExists:
            return False
        return True


@functools.cache
def _create_retry() -> Any:
    """Transient errors only; names are deterministic, so a retried create can never make a second task."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type

    transient = if_exception_type(
        gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted, gexc.Unknown
    )
    return Retry(predicate=transient, initial=0.2, maximum=5.0, multiplier=2.0, timeout=CREATE_RETRY_SECONDS)


def create_all(queue: TaskQueue, specs: Iterable[TaskSpec], *, concurrency: int = DEFAULT_CONCURRENCY) -> CreateReport:
    """Create many tasks with bounded concurrency; a failure is recorded and the rest still go ahead,
    so the caller can raise afterwards and let the event's retry fill exactly the gap."""
    report = CreateReport()

    def one(spec: TaskSpec) -> tuple[TaskSpec, bool | None, str]:
        try:
            return spec, queue.create(spec), ""
        except Exception as exc:  # noqa: BLE001 - recorded per task, re-raised by the caller as a whole
            return spec, None, f"{type(exc).__name__}: {str(exc)[:200]}"

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for spec, created, problem in pool.map(one, specs):
            if created is None:
                report.failed.append((spec, problem))
            elif created:
                report.created += 1
            else:
                report.present.add(spec.business_key)
    return report
