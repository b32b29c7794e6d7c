"""The task handler's boundary: authenticate, decode, route by type, record failures, answer.

- auth fails → 401/403 before anything is read or written;
- a permanent failure (bad body, unknown type, invalid document, rejected recipient) → failed_tasks
  + 2xx, so Cloud Tasks stops;
- a retryable one → 503/429 with Retry-After; on the queue's last attempt it is recorded as well;
- anything unexpected is treated as retryable (and recorded on the last attempt), never swallowed.

Task types are declared once beside their services (shared/tasks/declaration.py) and bound by each
function's wiring module into `TaskType`s: the body class the router parses into, what runs it, the queue
it belongs on, and (for the retry sweep) how to get its state ready for an operator's retry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from shared.platform import log
from shared.platform.errors import FailedEarlier, MedspaError, PermanentError, RetryableError, Unauthorized
from shared.platform.http import Response, json_response, to_response
from shared.tasks.declaration import Reopen
from shared.tasks.failed_tasks import body_shape, failure_id
from shared.tasks.payload import TaskBody, decode, envelope

# A body that does not match the documents it names: its own key is not trusted as a failed_tasks id.
UNTRUSTED_KEY_CODES = frozenset({"dedup_key_mismatch", "payload_mismatch"})


@dataclass(frozen=True)
class Attempt:
    """What Cloud Tasks tells us about this delivery (X-CloudTasks-* headers), and whether it is the last."""

    task_name: str | None
    retry_count: int
    queue: str | None
    last: bool = False

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], max_attempts: int) -> Attempt:
        raw = headers.get("X-CloudTasks-TaskRetryCount") or "0"
        retries = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 7 else 0  # int("²") raises
        name = headers.get("X-CloudTasks-TaskName")
        queue = headers.get("X-CloudTasks-QueueName")
        return cls(
            task_name=name[:500] if name else None,
            retry_count=retries,
            queue=queue[:100] if queue else None,
            last=retries + 1 >= max_attempts,
        )


class Status(StrEnum):
    """How a task ended when it did not fail."""

    SENT = "sent"
    SKIPPED = "skipped"  # rightly not sent (opted out, cancelled, no channel ...), recorded in the ledger
    DUPLICATE = "duplicate"  # another delivery of the same message already sent it (or holds its claim)
    SUPERSEDED = "superseded"  # the appointment moved: a newer message replaces this one
    DONE = "done"  # a task that sends nothing itself (a wave, a fan-out unit) ran to the end


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str = ""
    channel: str = ""
    provider_message_id: str = ""


B = TypeVar("B", bound=TaskBody)


@dataclass(frozen=True)
class TaskType(Generic[B]):
    """A declaration bound to its service and queue (shared/tasks/declaration.py): what the router runs."""

    name: str
    body: type[B]
    queue: str  # the deployed queue's name
    run: Callable[[B, Attempt], Outcome]
    reopen: Callable[[B], Reopen] | None = None
    from_ledger: Callable[[str, dict[str, Any]], B | None] | None = None

    def parse(self, body: dict[str, Any]) -> B:
        """A body whose envelope named this type → its task, or PermanentError."""
        return self.body.from_json(body, self.name)


class Authenticator(Protocol):
    """Who called: the token's claims, or Unauthorized (shared/tasks/auth.py TaskAuthenticator)."""

    def verify(self, headers: Mapping[str, str]) -> dict[str, Any]: ...


class FailureRecords(Protocol):
    """Where a failure is recorded (shared/tasks/failed_tasks.py FailedTasks)."""

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
    ) -> object: ...


class TaskRouter:
    def __init__(
        self,
        *,
        authenticator: Authenticator,
        failures: FailureRecords,
        max_attempts: int,
        types: Mapping[str, TaskType[Any]],
    ) -> None:
        self.authenticator, self.failures, self.max_attempts = authenticator, failures, max_attempts
        self.types = dict(types)

    @functools.cached_property
    def known_fields(self) -> tuple[str, ...]:
        """Every field name some task type declares: a body that cannot be parsed is recorded by these only.
        Worked out on the first such body, not at start: it reads every body's annotations (cold starts)."""
        names = {name for t in self.types.values() for name in t.body.field_names()}
        return tuple(sorted({"type", "v", *names}))

    def handle(self, headers: Mapping[str, str], raw_body: bytes) -> Response:
        attempt = Attempt.from_headers(headers, self.max_attempts)
        with log.bound(task_id=attempt.task_name, trace=log.trace_field(headers)):
            try:
                self.authenticator.verify(headers)
            except Unauthorized as exc:
                log.warning("task request refused", error_code=exc.code, reason=str(exc))
                return to_response(exc)
            except RetryableError as exc:  # the caller could not be checked yet (certificates unreachable)
                log.warning("task caller not verified yet; retry", error_code=exc.code)
                return to_response(exc)
            body: dict[str, Any] | None = None
            kind: TaskType[Any] | None = None
            task: TaskBody | None = None
            try:
                body = decode(raw_body)
                kind = self.types.get(envelope(body))
                if kind is None:
                    raise PermanentError("unknown task type", code="unknown_type")
                task = kind.parse(body)
                outcome = kind.run(task, attempt)
            except Exception as exc:  # noqa: BLE001 - classified by _failed, never swallowed
                return self._failed(exc, kind, task, body, raw_body, attempt)
            log.info(
                f"task {outcome.status}",
                task_type=kind.name,
                outcome=outcome.status,
                reason=outcome.reason,
                channel=outcome.channel,
                retry_count=attempt.retry_count,
            )
            return json_response({"outcome": outcome.status, "reason": outcome.reason, "channel": outcome.channel})

    def _failed(
        self,
        exc: Exception,
        kind: TaskType[Any] | None,
        task: TaskBody | None,
        body: dict[str, Any] | None,
        raw_body: bytes,
        attempt: Attempt,
    ) -> Response:
        response = to_response(exc)
        permanent = isinstance(exc, PermanentError)
        code = exc.code if isinstance(exc, MedspaError) else type(exc).__name__
        type_name = kind.name if kind else "unrecognised"
        if isinstance(exc, FailedEarlier):
            what, severity = "task failed on an earlier attempt", "INFO"
        elif permanent:
            what, severity = "task rejected", "ERROR"
        elif attempt.last:
            what, severity = "task failed on its last attempt", "ERROR"
        else:
            what, severity = "task will be retried", "WARNING"
        if not isinstance(exc, MedspaError):
            log.exception(what, exc, task_type=type_name, error_code=code, retry_count=attempt.retry_count)
        else:
            log.log(
                severity,
                what,
                task_type=type_name,
                error_code=code,
                http_status=response[1],
                retry_count=attempt.retry_count,
                last_attempt=attempt.last,
            )
        if (permanent or attempt.last) and not self._record(
            exc, code, type_name, task, body, raw_body, attempt, response[1]
        ):
            # Losing the record would lose the failure: let Cloud Tasks retry instead.
            return to_response(RetryableError("failed_tasks write failed", code="record_failed"))
        return response

    def _record(
        self,
        exc: Exception,
        code: str,
        type_name: str,
        task: TaskBody | None,
        body: dict[str, Any] | None,
        raw_body: bytes,
        attempt: Attempt,
        status: int,
    ) -> bool:
        business_key: str | None
        if task is not None:
            payload, business_key, clinic_id = task.to_json(), task.failure_key, task.clinic_id
            if code in UNTRUSTED_KEY_CODES:
                business_key = None  # a body caught lying must not open (or overwrite) a real message's record
        else:
            payload, business_key, clinic_id = body_shape(body, self.known_fields), None, None
        try:
            self.failures.record(
                failure_id(business_key=business_key, task_name=attempt.task_name, body=raw_body),
                task_type=type_name,
                task_name=attempt.task_name,
                payload=payload,
                error_code=code,
                error=str(exc) if isinstance(exc, MedspaError) else type(exc).__name__,
                http_status=status,
                attempts=attempt.retry_count + 1,
                clinic_id=clinic_id,
                queue=attempt.queue,
                only_if_new=isinstance(exc, FailedEarlier),  # an operator's edits of the first record stand
            )
        except Exception as record_error:  # noqa: BLE001 - reported through the answer, see _failed
            log.error("could not record the failed task", error_code=type(record_error).__name__)
            return False
        return True
