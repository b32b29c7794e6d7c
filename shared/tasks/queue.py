"""Named Cloud Tasks HTTP tasks for the task handler: deterministic names, OIDC, bounded-concurrency creation.

A task's name is a hash of its business key (the ledger's dedup key), so a re-run creates nothing new:
AlreadyExists is success. Names are hashed rather than sequential because Cloud Tasks shards on the
name's prefix. Cloud Tasks remembers names for about an hour after a task ran or was deleted; the
ledger is the longer-lived dedup layer (DESIGN §3.2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.platform.clock import Clock
from shared.platform.settings import Settings

DISPATCH_DEADLINE = timedelta(seconds=60)
DEFAULT_CONCURRENCY = 32


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
    already_present: int = 0
    failed: list[tuple[TaskSpec, str]] = field(default_factory=list)


class TaskQueue(Protocol):
    def create(self, spec: TaskSpec) -> bool: ...


class CloudTasksQueue:
    """Creates HTTP tasks aimed at the task handler, signed with an OIDC token for its audience."""

    def __init__(self, client: Any, settings: Settings, clock: Clock) -> None:
        self.client, self.settings, self.clock = client, settings, clock

    def queue_path(self, queue: str) -> str:
        return self.client.queue_path(self.settings.project, self.settings.tasks_location, queue)

    def _schedule_time(self, when: datetime | None) -> datetime | None:
        if when is None:
            return None
        scale = self.settings.demo_time_scale
        if scale <= 1:
            return when
        # Local demo only (settings keeps the scale at 1 off the emulator): compress the wait.
        now = self.clock.now()
        return now + max(timedelta(0), when - now) / scale

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
        when = self._schedule_time(spec.schedule_time)
        if when is not None:
            task["schedule_time"] = when
        return task

    def create(self, spec: TaskSpec) -> bool:
        """Create the task; False when a task of that name already exists (a re-run), never an error."""
        from google.api_core import exceptions as gexc

        try:
            self.client.create_task(parent=self.queue_path(spec.queue), task=self.build(spec))
        except gexc.AlreadyExists:
            return False
        return True


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
                report.already_present += 1
    return report
