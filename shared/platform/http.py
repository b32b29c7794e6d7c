"""The one place the error taxonomy becomes HTTP (docs/architecture.md, "Cloud Tasks retries every non-2xx").

Cloud Tasks retries every non-2xx answer, so: success and permanent failures → 2xx; retryable → 503
(or 429 when throttled) with Retry-After; unauthorized → 401/403. Anything unexpected is treated as
retryable (503): a bug must not silently turn retries off, and the last attempt records it.
"""

from __future__ import annotations

import json
from typing import Any

from shared.platform import log
from shared.platform.errors import MedspaError, PermanentError, RetryableError, Unauthorized

Response = tuple[str, int, dict[str, str]]
JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return json.dumps(body, default=str), status, {**JSON_HEADERS, **(headers or {})}


def to_response(exc: BaseException) -> Response:
    """Map an exception to the status code Cloud Tasks (or a webhook caller) should see."""
    if isinstance(exc, Unauthorized):
        status = 403 if exc.forbidden else 401
        return json_response({"error": exc.code}, status)
    if isinstance(exc, RetryableError):
        status = 429 if exc.throttled else 503
        return json_response(
            {"error": exc.code, "retry_after": exc.retry_after_seconds},
            status,
            {"Retry-After": str(exc.retry_after_seconds)},
        )
    if isinstance(exc, PermanentError):
        return json_response({"outcome": "rejected", "error": exc.code}, 200)
    code = exc.code if isinstance(exc, MedspaError) else type(exc).__name__
    log.error("unexpected error; answering 503 so the task is retried", error_code=code, error=str(exc)[:300])
    return json_response({"error": "internal", "retry_after": 30}, 503, {"Retry-After": "30"})
