"""The task handler's boundary: authenticate, decode, route by type, record failures, answer (DESIGN §3.4).

- auth fails → 401/403 before anything is read or written;
- a permanent failure (bad body, unknown type, invalid document, rejected recipient) → failed_tasks
  + 2xx, so Cloud Tasks stops;
- a retryable one → 503/429 with Retry-After; on the queue's last attempt it is recorded as well;
- anything unexpected is treated as retryable (and recorded on the last attempt), never swallowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.platform import log
from shared.platform.errors import MedspaError, PermanentError, RetryableError, Unauthorized
from shared.platform.http import Response, json_response, to_response
from shared.tasks.auth import TaskAuthenticator
from shared.tasks.failed_tasks import FailedTasks, failure_id, payload_summary
from shared.tasks.payload import decode, task_type

# A task handler takes the decoded body and returns an outcome with .status/.reason/.channel.
Handler = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Attempt:
    """What Cloud Tasks tells us about this delivery, from its X-CloudTasks-* headers."""

    task_name: str | None
    retry_count: int
    queue: str | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Attempt:
        try:
            retries = int(headers.get("X-CloudTasks-TaskRetryCount") or 0)
        except ValueError:
            retries = 0
        return cls(task_name=headers.get("X-CloudTasks-TaskName"), retry_count=retries,
                   queue=headers.get("X-CloudTasks-QueueName"))

    def is_last(self, max_attempts: int) -> bool:
        return self.retry_count + 1 >= max_attempts


class TaskRouter:
    def __init__(self, *, authenticator: TaskAuthenticator, failures: FailedTasks, max_attempts: int,
                 handlers: Mapping[str, tuple[Handler, Callable[[dict[str, Any]], dict[str, Any]]]]) -> None:
        """`handlers` maps a task type to (handler, ids_of(body)) — ids_of says what failed_tasks may keep."""
        self.authenticator, self.failures, self.max_attempts = authenticator, failures, max_attempts
        self.handlers = dict(handlers)

    def handle(self, headers: Mapping[str, str], raw_body: bytes) -> Response:
        attempt = Attempt.from_headers(headers)
        with log.bound(task_id=attempt.task_name, trace=log.trace_field(headers)):
            try:
                self.authenticator.verify(headers)
            except Unauthorized as exc:
                log.warning("task request refused", error_code=exc.code, reason=str(exc))
                return to_response(exc)
            body: Any = None
            kind = "unknown"
            try:
                body = decode(raw_body)
                kind = task_type(body)
                if kind not in self.handlers:
                    raise PermanentError(f"unknown task type {kind[:40]!r}", code="unknown_type")
                handler, _ = self.handlers[kind]
                outcome = handler(body)
            except Exception as exc:  # noqa: BLE001 - classified by _failed, never swallowed
                return self._failed(exc, kind, body, raw_body, attempt)
            log.info(f"task {outcome.status}", task_type=kind, outcome=outcome.status, reason=outcome.reason,
                     channel=outcome.channel, retry_count=attempt.retry_count)
            return json_response({"outcome": outcome.status, "reason": outcome.reason, "channel": outcome.channel})

    def _failed(self, exc: Exception, kind: str, body: Any, raw_body: bytes, attempt: Attempt) -> Response:
        response = to_response(exc)
        permanent = isinstance(exc, PermanentError)
        code = exc.code if isinstance(exc, MedspaError) else type(exc).__name__
        last = attempt.is_last(self.max_attempts)
        severity = "ERROR" if permanent or last else "WARNING"
        log.log(severity, f"task {'rejected' if permanent else 'will be retried'}", task_type=kind,
                error_code=code, http_status=response[1], retry_count=attempt.retry_count, last_attempt=last)
        if (permanent or last) and not self._record(exc, code, kind, body, raw_body, attempt, response[1]):
            if permanent:
                # Losing the record would lose the failure: let Cloud Tasks retry instead.
                return to_response(RetryableError("failed_tasks write failed", code="record_failed"))
        return response

    def _record(self, exc: Exception, code: str, kind: str, body: Any, raw_body: bytes, attempt: Attempt,
                status: int) -> bool:
        ids: dict[str, Any] = payload_summary(body)
        if isinstance(body, dict) and kind in self.handlers:
            try:
                ids = self.handlers[kind][1](body)
            except MedspaError:
                pass  # the body did not parse: keep its shape only
        business_key = ids.get("dedup_key") if isinstance(ids.get("dedup_key"), str) else None
        try:
            self.failures.record(
                failure_id(business_key=business_key, task_name=attempt.task_name, body=raw_body),
                task_type=kind, task_name=attempt.task_name, payload=ids, error_code=code,
                error=str(exc), http_status=status, attempts=attempt.retry_count + 1,
                clinic_id=ids.get("clinic_id") if isinstance(ids.get("clinic_id"), str) else None,
                queue=attempt.queue,
            )
        except Exception as record_error:  # noqa: BLE001 - reported through the answer, see _failed
            log.error("could not record the failed task", error_code=type(record_error).__name__)
            return False
        return True
