"""Named Cloud Tasks HTTP tasks: deterministic names, OIDC, bounded-concurrency creation.

Tasks go to the task handler, or to another target (`Target`: the fan-out's units go to their own
function). A task's name is a hash of its business key (the ledger's dedup key), so a re-run creates nothing new:
AlreadyExists is success. Names are hashed rather than sequential because Cloud Tasks shards on the
name's prefix. Cloud Tasks refuses a name while its task exists and for about an hour after it ran or
was deleted; the ledger is the longer-lived dedup layer (docs/architecture.md). Because names are
deterministic, a transient CreateTask error is simply retried in-process (google.api_core's Retry): a
retry that meets the first attempt's task gets AlreadyExists, which is success.

A fan-out creates hundreds of thousands of tasks a day, so `create` builds each CreateTask request by
copying a per-queue protobuf template (target, headers, token, deadline already set) and filling in
name, body and schedule time: what the client would build from `build`'s dict, without converting a
nested dict through proto-plus for every task (tests/unit/test_task_queue.py checks they are equal).
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.platform.settings import Settings

DISPATCH_DEADLINE = timedelta(seconds=60)
# Cloud Tasks refuses a schedule_time more than 720 h (30 days) ahead with INVALID_ARGUMENT (docs/campaigns.md,
# "What Google Cloud does that this relies on"): a task due later must be created later.
MAX_SCHEDULE_AHEAD = timedelta(days=30)
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


@dataclass(frozen=True)
class Target:
    """Where a queue's tasks are POSTed, and the audience their OIDC token names (the target checks it)."""

    url: str
    audience: str


class CloudTasksQueue:
    """Creates HTTP tasks aimed at the task handler (or `target`), signed with an OIDC token for its audience."""

    def __init__(self, client: Any, settings: Settings, *, target: Target | None = None) -> None:
        self.client, self.settings = client, settings
        self.target = target or Target(settings.task_handler_url, settings.task_audience)
        self._templates: dict[str, Any] = {}
        self._lock = threading.Lock()

    def queue_path(self, queue: str) -> str:
        path: str = self.client.queue_path(self.settings.project, self.settings.tasks_location, queue)
        return path

    def _task(self) -> dict[str, Any]:
        return {
            "http_request": {
                "http_method": "POST",
                "url": self.target.url,
                "headers": {"Content-Type": "application/json"},
                "oidc_token": {
                    "service_account_email": self.settings.tasks_service_account,
                    "audience": self.target.audience,
                },
            },
            "dispatch_deadline": DISPATCH_DEADLINE,
        }

    def build(self, spec: TaskSpec) -> dict[str, Any]:
        """The Task resource as a dict: what `request` sends, in the client's dict form."""
        parent = self.queue_path(spec.queue)
        task = self._task()
        task["name"] = f"{parent}/tasks/{task_id(spec.business_key)}"
        task["http_request"]["body"] = json.dumps(spec.payload, sort_keys=True).encode()
        if spec.schedule_time is not None:
            task["schedule_time"] = spec.schedule_time
        return task

    def _template(self, queue: str) -> Any:
        """The queue's CreateTask request with everything but name, body and schedule time, as a protobuf."""
        template = self._templates.get(queue)
        if template is None:
            from google.cloud import tasks_v2

            parent = self.queue_path(queue)
            request = tasks_v2.CreateTaskRequest(parent=parent, task=self._task())
            template = (tasks_v2.CreateTaskRequest.pb(request), parent + "/tasks/")
            with self._lock:
                self._templates[queue] = template
        return template

    def request(self, spec: TaskSpec) -> Any:
        """The CreateTask request for `spec`: the queue's template copied, its three per-task fields set."""
        from google.cloud import tasks_v2

        template, prefix = self._template(spec.queue)
        raw = type(template)()
        raw.CopyFrom(template)
        task = raw.task
        task.name = prefix + task_id(spec.business_key)
        task.http_request.body = json.dumps(spec.payload, sort_keys=True).encode()
        if spec.schedule_time is not None:
            _set_timestamp(task.schedule_time, spec.schedule_time)
        return tasks_v2.CreateTaskRequest.wrap(raw)

    def create(self, spec: TaskSpec) -> bool:
        """Create the task; False when a task of that name already exists (a re-run), never an error."""
        from google.api_core import exceptions as gexc

        try:
            self.client.create_task(request=self.request(spec), retry=_create_retry())
        except gexc.AlreadyExists:
            return False
        return True


def _set_timestamp(target: Any, moment: datetime) -> None:
    """A protobuf Timestamp from a datetime, as proto-plus marshals the schedule_time of a Task dict."""
    target.seconds = int(moment.timestamp())
    target.nanos = moment.microsecond * 1000


@functools.cache
def _create_retry() -> Any:
    """Transient errors only; names are deterministic, so a retried create can never make a second task."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry, if_exception_type

    transient = if_exception_type(
        gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted, gexc.Unknown
    )
    return Retry(predicate=transient, initial=0.2, maximum=5.0, multiplier=2.0, timeout=CREATE_RETRY_SECONDS)


def _create_one(queue: TaskQueue, spec: TaskSpec) -> tuple[TaskSpec, bool | None, str]:
    try:
        return spec, queue.create(spec), ""
    except Exception as exc:  # noqa: BLE001 - recorded per task, re-raised by the caller as a whole
        return spec, None, f"{type(exc).__name__}: {str(exc)[:200]}"


def start_all(
    queue: TaskQueue, specs: Iterable[TaskSpec], pool: Executor, *, concurrency: int = DEFAULT_CONCURRENCY
) -> Callable[[], CreateReport]:
    """Start every creation on `pool` now, `concurrency` at a time; the function returned waits and reports.

    `concurrency` workers each take the next spec until none is left: a handful of futures per call
    rather than one per task (a future and its handoff cost more than a spec's own request building)."""
    pending = iter(list(specs))
    lock = threading.Lock()

    def worker() -> list[tuple[TaskSpec, bool | None, str]]:
        done: list[tuple[TaskSpec, bool | None, str]] = []
        while True:
            with lock:
                spec = next(pending, None)
            if spec is None:
                return done
            done.append(_create_one(queue, spec))

    workers = [pool.submit(worker) for _ in range(max(1, concurrency))]

    def report() -> CreateReport:
        out = CreateReport()
        for future in workers:
            for spec, created, problem in future.result():
                if created is None:
                    out.failed.append((spec, problem))
                elif created:
                    out.created += 1
                else:
                    out.present.add(spec.business_key)
        return out

    return report


def create_all(queue: TaskQueue, specs: Iterable[TaskSpec], *, concurrency: int = DEFAULT_CONCURRENCY) -> CreateReport:
    """Create many tasks with bounded concurrency; a failure is recorded and the rest still go ahead,
    so the caller can raise afterwards and let the event's retry fill exactly the gap."""
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return start_all(queue, specs, pool, concurrency=concurrency)()
