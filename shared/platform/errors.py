"""The one error taxonomy: permanent (record, answer 2xx), retryable (5xx/429 + Retry-After), unauthorized.

Cloud Tasks retries every non-2xx answer, 4xx included (docs/architecture.md, "Cloud Tasks retries every
non-2xx"), so the class of an error, not its HTTP-ish look, decides the status code.
`shared.platform.http.to_response` is the one place that maps them.
"""

from __future__ import annotations


class MedspaError(Exception):
    """Base of every error this package raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(MedspaError):
    """The function's environment is wrong: a deploy problem, not a task problem."""

    code = "config"


class PermanentError(MedspaError):
    """Retrying cannot help (bad payload, unknown type, invalid number): record in failed_tasks, answer 2xx."""

    code = "permanent"


class FailedEarlier(PermanentError):
    """The work already failed for good on an earlier attempt (the ledger says so): recorded in failed_tasks
    only if no record exists, since that attempt may have died between deciding and recording."""

    code = "failed_earlier"


class InvalidDocument(PermanentError):
    """A contract document (clinic, patient, appointment, waitlist entry) is malformed."""

    code = "invalid_document"

    def __init__(self, collection: str, doc_id: str, field: str, problem: str) -> None:
        super().__init__(f"{collection}/{doc_id}: field '{field}' {problem}")
        self.collection = collection
        self.doc_id = doc_id
        self.field = field

    def where(self) -> dict[str, str]:
        """Which document and field, for a log line (ids and a field name: never the value, never PHI)."""
        return {"collection": self.collection, "doc_id": self.doc_id, "field": self.field, "error_code": self.code}


class RetryableError(MedspaError):
    """Transient (timeout, 5xx, rate limit, claim in flight): answer 503/429 with Retry-After."""

    code = "retryable"

    def __init__(
        self, message: str, *, retry_after_seconds: int = 30, code: str | None = None, throttled: bool = False
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after_seconds = max(1, int(retry_after_seconds))
        self.throttled = throttled  # True → 429 (rate limit), False → 503


class Unauthorized(MedspaError):
    """The caller did not prove who it is (401) or is not allowed (403); business logic never runs."""

    code = "unauthorized"

    def __init__(self, message: str, *, forbidden: bool = False) -> None:
        super().__init__(message)
        self.forbidden = forbidden
