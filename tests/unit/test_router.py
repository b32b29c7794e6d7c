"""The task handler's boundary on the fakes: auth first, then decode, route, classify, record, answer.

Permanent → recorded in failed_tasks + 2xx; retryable → 503/429 with Retry-After (recorded on the last
attempt); a record that cannot be written turns a permanent answer into a retry, so no failure is lost.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.messaging.appointment_tasks import AppointmentTask
from shared.platform.errors import FailedEarlier, InvalidDocument, PermanentError, RetryableError, Unauthorized
from shared.tasks.failed_tasks import FailedTasks, failure_id
from shared.tasks.router import Attempt, Outcome, Status, TaskRouter, TaskType
from tests.builders import NOW, REMINDER_BODY, TASK_KEY
from tests.fakes import FixedClock, MemoryStore

KEY, BODY = TASK_KEY, REMINDER_BODY
MAX_ATTEMPTS = 8


class Gate:
    """The authenticator's contract: claims for the one good token, Unauthorized for anything else."""

    def verify(self, headers):
        if headers.get("Authorization") != "Bearer good":
            raise Unauthorized("missing bearer token")
        return {"email": "tasks@p.iam.gserviceaccount.com"}


class Handler:
    """The task type's service: answers what the test tells it to, and counts its calls."""

    def __init__(self) -> None:
        self.answer: Outcome | BaseException = Outcome(Status.SENT, channel="sms")
        self.calls = 0

    def __call__(self, task: Any, attempt: Attempt) -> Outcome:
        self.calls += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def service() -> Handler:
    return Handler()


@pytest.fixture
def router(store, service) -> TaskRouter:
    kind = TaskType(
        name="appointment_reminder",
        body=AppointmentTask,
        queue="reminders-sms",
        run=service,
    )
    return TaskRouter(
        authenticator=Gate(),
        failures=FailedTasks(store, FixedClock(NOW)),
        max_attempts=MAX_ATTEMPTS,
        types={"appointment_reminder": kind},
    )


def headers(retry_count: int = 0, **extra: str) -> dict[str, str]:
    return {
        "Authorization": "Bearer good",
        "X-CloudTasks-TaskName": "task-abc",
        "X-CloudTasks-QueueName": "reminders-sms",
        "X-CloudTasks-TaskRetryCount": str(retry_count),
        **extra,
    }


def answer(response) -> tuple[int, dict[str, Any], dict[str, str]]:
    text, status, response_headers = response
    return status, json.loads(text), response_headers


def raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_a_handled_task_answers_200_with_its_outcome(router, store):
    status, body, _ = answer(router.handle(headers(), raw(BODY)))
    assert status == 200 and body == {"outcome": "sent", "reason": "", "channel": "sms"}
    assert store.docs("failed_tasks") == {}


@pytest.mark.parametrize("auth", [{}, {"Authorization": "Bearer bad"}, {"Authorization": ""}])
def test_auth_is_refused_before_anything_is_read_or_written(router, store, service, auth):
    request = {**headers(), **auth} if auth else {k: v for k, v in headers().items() if k != "Authorization"}
    status, body, _ = answer(router.handle(request, raw(BODY)))
    assert status == 401 and body == {"error": "unauthorized"}
    assert store.round_trips == 0 and service.calls == 0


def test_a_forbidden_caller_is_403(store, service):
    class Forbidding:
        def verify(self, headers):
            raise Unauthorized("not the tasks service account", forbidden=True)

    router = TaskRouter(
        authenticator=Forbidding(),
        failures=FailedTasks(store, FixedClock(NOW)),
        max_attempts=8,
        types={},
    )
    assert router.handle(headers(), raw(BODY))[1] == 403 and store.round_trips == 0


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("clinic not found", code="clinic_missing"),
        InvalidDocument("appointments", "appt-1", "start", "must be a timestamp"),
        PermanentError("rejected", code="invalid_number"),
    ],
)
def test_a_permanent_failure_is_recorded_once_and_answered_2xx(router, store, service, error):
    service.answer = error
    status, body, _ = answer(router.handle(headers(), raw(BODY)))
    assert status == 200 and body == {"outcome": "rejected", "error": error.code}
    failure = store.doc(f"failed_tasks/{KEY}")
    assert failure["error_code"] == error.code and failure["status"] == "open"
    assert failure["task_type"] == "appointment_reminder" and failure["queue"] == "reminders-sms"
    assert failure["payload"] == BODY and failure["clinic_id"] == "clinic-nyc" and failure["attempts"] == 1
    # the same task failing again updates the same record and keeps the first failure's time
    router.handle(headers(retry_count=1), raw(BODY))
    assert list(store.docs("failed_tasks")) == [KEY]
    assert store.doc(f"failed_tasks/{KEY}")["attempts"] == 2 and store.doc(f"failed_tasks/{KEY}")["first_failed_at"]


def test_a_failure_decided_earlier_is_recorded_if_its_record_was_lost_and_never_overwritten(router, store, service):
    # The attempt that failed the message died before its failed_tasks write: the redelivery records it.
    service.answer = FailedEarlier("failed on an earlier attempt", code="twilio_21602")
    status, body, _ = answer(router.handle(headers(retry_count=1), raw(BODY)))
    assert status == 200 and body == {"outcome": "rejected", "error": "twilio_21602"}
    failure = store.doc(f"failed_tasks/{KEY}")
    assert failure["error_code"] == "twilio_21602" and failure["status"] == "open" and failure["payload"] == BODY
    # An operator resolved it: a later duplicate delivery leaves their record as it is.
    store.seed(f"failed_tasks/{KEY}", {**failure, "status": "resolved", "note": "number fixed by the desk"})
    status, _, _ = answer(router.handle(headers(retry_count=2), raw(BODY)))
    assert status == 200
    kept = store.doc(f"failed_tasks/{KEY}")
    assert kept["status"] == "resolved" and kept["note"] == "number fixed by the desk" and kept["attempts"] == 2


@pytest.mark.parametrize(("throttled", "status"), [(False, 503), (True, 429)])
def test_a_retryable_failure_answers_with_retry_after_and_is_not_recorded_yet(
    router, store, service, throttled, status
):
    service.answer = RetryableError("twilio busy", retry_after_seconds=17, code="twilio_throttled", throttled=throttled)
    code, body, response_headers = answer(router.handle(headers(), raw(BODY)))
    assert code == status and response_headers["Retry-After"] == "17" and body["error"] == "twilio_throttled"
    assert store.docs("failed_tasks") == {}


def test_the_last_attempt_of_a_retryable_failure_is_recorded(router, store, service, capsys):
    service.answer = RetryableError("twilio 503", code="twilio_unavailable")
    status, _, _ = answer(router.handle(headers(retry_count=MAX_ATTEMPTS - 1), raw(BODY)))
    assert status == 503
    failure = store.doc(f"failed_tasks/{KEY}")
    assert failure["error_code"] == "twilio_unavailable" and failure["attempts"] == MAX_ATTEMPTS
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # the router's outcome line, then the record's own (what the "failed_tasks record opened" alert counts)
    line, opened = [entry for entry in lines if entry.get("error_code") == "twilio_unavailable"]
    assert line["message"] == "task failed on its last attempt" and line["last_attempt"] is True
    assert opened["message"] == "failed_tasks record opened" and opened["failed_task"] == KEY


def test_an_unexpected_error_is_retried_and_recorded_on_the_last_attempt_by_class_name(router, store, service, capsys):
    service.answer = KeyError("a bug")
    status, _, response_headers = answer(router.handle(headers(), raw(BODY)))
    assert status == 503 and response_headers["Retry-After"] == "30" and store.docs("failed_tasks") == {}
    assert '"traceback"' in capsys.readouterr().out
    router.handle(headers(retry_count=MAX_ATTEMPTS - 1), raw(BODY))
    failure = store.doc(f"failed_tasks/{KEY}")
    assert failure["error_code"] == "error" and failure["error"] == "KeyError"  # a class name is no code


def test_an_unknown_type_is_recorded_as_unrecognised_with_only_the_bodys_shape(router, store, service):
    body = {**BODY, "type": "teleport +15551234567 jane.doe@example.com " + "x" * 15_000}
    status, reply, _ = answer(router.handle(headers(), raw(body)))
    assert status == 200 and reply["error"] == "unknown_type" and service.calls == 0
    ((doc_id, failure),) = store.docs("failed_tasks").items()
    assert doc_id == failure_id(task_name="task-abc")
    assert failure["task_type"] == "unrecognised" and failure["clinic_id"] is None
    assert failure["payload"] == {"known_fields": sorted(BODY), "other_fields": 0}
    stored = json.dumps(failure, default=str)
    assert "15551234567" not in stored and "jane.doe" not in stored and "xxxx" not in stored


@pytest.mark.parametrize(
    ("raw_body", "code", "payload"),
    [
        (b"{not json", "malformed_json", {"shape": "NoneType"}),
        (b"[1, 2]", "malformed_json", {"shape": "NoneType"}),
        (raw({**BODY, "v": True}), "unsupported_version", {"known_fields": sorted(BODY), "other_fields": 0}),
        (raw({**BODY, "Jane Doe": 1}), "bad_payload", {"known_fields": sorted(BODY), "other_fields": 1}),
        (raw({**BODY, "clinic_id": "__x__"}), "bad_payload", {"known_fields": sorted(BODY), "other_fields": 0}),
        (b'{"s": "\\ud800"}', "bad_string", {"shape": "NoneType"}),
        (b'{"n": 18446744073709551616}', "number_out_of_range", {"shape": "NoneType"}),
        (b"[" * 1000 + b"]" * 1000, "too_deep", {"shape": "NoneType"}),
    ],
)
def test_garbage_is_recorded_by_its_shape_only_and_answered_2xx(router, store, raw_body, code, payload):
    status, reply, _ = answer(router.handle(headers(), raw_body))
    assert status == 200 and reply == {"outcome": "rejected", "error": code}
    ((_, failure),) = store.docs("failed_tasks").items()
    assert (
        failure["error_code"] == code
        and failure["payload"] == payload
        and failure["task_type"]
        in (
            "unrecognised",
            "appointment_reminder",
        )
    )
    assert "Jane" not in json.dumps(failure, default=str)


def test_without_a_task_name_a_garbage_body_is_recorded_under_its_hash(router, store):
    plain = {k: v for k, v in headers().items() if k != "X-CloudTasks-TaskName"}
    router.handle(plain, b"{not json")
    router.handle(plain, b"{not json")
    assert list(store.docs("failed_tasks")) == [failure_id(body=b"{not json")]


@pytest.mark.parametrize("kind", ["create", "put"])
def test_a_record_that_cannot_be_written_turns_a_permanent_answer_into_a_retry(router, store, service, kind, capsys):
    service.answer = PermanentError("clinic not found", code="clinic_missing")
    if kind == "put":
        router.handle(headers(), raw(BODY))  # the record exists: the next failure merges into it
    store.fail_next(kind)
    status, body, response_headers = answer(router.handle(headers(retry_count=1), raw(BODY)))
    assert status == 503 and body["error"] == "record_failed" and "Retry-After" in response_headers
    assert "could not record the failed task" in capsys.readouterr().out
    status, _, _ = answer(router.handle(headers(retry_count=2), raw(BODY)))  # the retry records it
    assert status == 200 and store.doc(f"failed_tasks/{KEY}")["attempts"] == 3


@pytest.mark.parametrize(
    ("value", "retries", "last"),
    [
        ("0", 0, False),
        ("6", 6, False),
        ("7", 7, True),
        ("99", 99, True),
        ("abc", 0, False),
        ("-1", 0, False),
        ("²", 0, False),
        ("٣", 0, False),
    ],
)
def test_attempt_reads_cloud_tasks_headers_defensively(value, retries, last):
    attempt = Attempt.from_headers({"X-CloudTasks-TaskRetryCount": value}, MAX_ATTEMPTS)
    assert (attempt.retry_count, attempt.last) == (retries, last)
    assert attempt.task_name is None and attempt.queue is None


def test_attempt_bounds_the_names_it_keeps():
    attempt = Attempt.from_headers(
        {
            "X-CloudTasks-TaskName": "n" * 2000,
            "X-CloudTasks-QueueName": "q" * 2000,
            "X-CloudTasks-TaskRetryCount": "9" * 9,
        },
        MAX_ATTEMPTS,
    )
    assert attempt.task_name is not None and attempt.queue is not None
    assert len(attempt.task_name) == 500 and len(attempt.queue) == 100 and attempt.retry_count == 0


def test_a_malformed_retry_count_header_is_refused_like_any_unauthenticated_request(router, store):
    request = {"X-CloudTasks-TaskRetryCount": "²", "X-CloudTasks-TaskName": "\ud800"}
    assert router.handle(request, raw(BODY))[1] == 401 and store.round_trips == 0
