"""The taxonomy maps to the status codes Cloud Tasks needs (docs/architecture.md, "Cloud Tasks retries every
non-2xx")."""

from __future__ import annotations

import json

from shared.platform.errors import InvalidDocument, PermanentError, RetryableError, Unauthorized
from shared.platform.http import to_response


def test_permanent_failures_answer_2xx_so_cloud_tasks_stops():
    body, status, _ = to_response(PermanentError("unknown task type", code="unknown_type"))
    assert status == 200 and json.loads(body)["error"] == "unknown_type"
    assert to_response(InvalidDocument("appointments", "a1", "start", "is required"))[1] == 200


def test_retryable_answers_503_with_retry_after():
    _, status, headers = to_response(RetryableError("twilio 500", retry_after_seconds=12))
    assert status == 503 and headers["Retry-After"] == "12"


def test_throttled_answers_429():
    _, status, headers = to_response(RetryableError("20429", retry_after_seconds=3, throttled=True))
    assert status == 429 and headers["Retry-After"] == "3"


def test_unauthorized_and_forbidden():
    assert to_response(Unauthorized("no token"))[1] == 401
    assert to_response(Unauthorized("wrong caller", forbidden=True))[1] == 403


def test_an_unexpected_bug_is_retried_not_swallowed(capsys):
    _, status, headers = to_response(KeyError("boom"))
    assert status == 503 and "Retry-After" in headers
    assert '"severity": "ERROR"' in capsys.readouterr().out
