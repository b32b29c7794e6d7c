"""Structured JSON log lines on stdout, the shape Cloud Logging parses; PHI masked, never printed whole.

Every line carries severity and message, the task or event id bound for the current request, and the
Cloud Trace field when the request carried a trace header. As a safety net, any string field that looks
like a phone number or an email address is masked (shared.platform.masking) before it is written.

Lines go through the standard `logging` module: `info(message, **fields)` and the others log to the
`medspa` logger, and one handler with a JSON formatter writes them. The same handler sits on the root
logger, so a library's lines (urllib3's, google's: warnings and above, the root's default level) come out
in the same JSON shape, masked the same way, with the logger's name. The handler's lock keeps each line
whole under threads.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from shared.platform.masking import scrub

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("medspa_log_context", default={})  # noqa: B039

TRACE_FIELD = "logging.googleapis.com/trace"
MAX_FIELD_CHARS = 4000  # a log line carries ids, codes and counts: anything longer is cut
MAX_TRACEBACK_CHARS = 8000
LOGGER_NAME = "medspa"
# Cloud Logging's severities as logging levels (NOTICE, ALERT and EMERGENCY have none of their own)
LEVELS = {"DEBUG": 10, "INFO": 20, "NOTICE": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50, "ALERT": 60}
LEVELS["EMERGENCY"] = 70


def trace_field(headers: Mapping[str, str], project: str | None = None) -> str | None:
    """The Cloud Trace resource name from X-Cloud-Trace-Context or traceparent, if any."""
    project = project or os.environ.get("GOOGLE_CLOUD_PROJECT", "")
    trace_id = ""
    legacy = headers.get("X-Cloud-Trace-Context") or headers.get("x-cloud-trace-context") or ""
    if legacy:
        trace_id = legacy.split("/", 1)[0]
    else:
        parent = headers.get("traceparent") or ""
        parts = parent.split("-")
        if len(parts) >= 3:
            trace_id = parts[1]
    if not trace_id or not re.fullmatch(r"[0-9a-fA-F]{8,32}", trace_id) or not project:
        return None
    return f"projects/{project}/traces/{trace_id}"


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Attach fields (task_id, event_id, trace) to every line logged inside the block."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value[:MAX_TRACEBACK_CHARS])
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_clean(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: severity, message, the trace field, bound and given fields, PHI masked."""

    def format(self, record: logging.LogRecord) -> str:
        context = _context.get()
        fields: dict[str, Any] = dict(getattr(record, "medspa_fields", None) or {})
        severity = getattr(record, "medspa_severity", None)
        if severity is None:  # a library's line
            severity = record.levelname if record.levelname in LEVELS else "DEFAULT"
            fields["logger"] = record.name
            if record.exc_info:
                fields["traceback"] = self.formatException(record.exc_info)[-MAX_TRACEBACK_CHARS:]
        entry: dict[str, Any] = {"severity": severity, "message": scrub(record.getMessage())}
        trace = fields.pop("trace", None) or context.get("trace")
        if trace:
            entry[TRACE_FIELD] = trace
        for key, value in {**context, **fields}.items():
            if key != "trace":
                entry[key] = _clean(value)
        return json.dumps(entry, default=str)


class StdoutHandler(logging.Handler):
    """Each record as one whole line on the current sys.stdout (looked up per line: tests and tools redirect it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            sys.stdout.write(line)  # one write per line, under the handler's lock (Handler.handle)
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: a failed line is reported, never raised
            self.handleError(record)


def _install() -> logging.Logger:
    """The `medspa` logger with the JSON handler, and the same handler on the root logger for libraries' lines."""
    handler = next((h for h in logging.getLogger().handlers if isinstance(h, StdoutHandler)), None)
    if handler is None:
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logging.getLogger().addHandler(handler)
    # The google libraries stop their lines at the "google" logger when nothing configured it (their client
    # constructors call google.api_core.client_logging.initialize_logging): configured here, they reach the root.
    google = logging.getLogger("google")
    if not google.handlers:
        google.propagate = True
        if google.level == logging.NOTSET:
            google.setLevel(logging.WARNING)  # the root's default: a library's warnings and errors
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)  # every line this module is asked for is written, as before
    logger.propagate = False  # written once, whatever other handlers the root logger holds
    if handler not in logger.handlers:
        logger.addHandler(handler)
    return logger


_logger = _install()


def log(severity: str, message: str, **fields: Any) -> None:
    """One line at Cloud Logging's `severity` (INFO, WARNING, ERROR…) with `fields` beside the bound ones."""
    level = LEVELS.get(severity, logging.INFO)
    # a record made directly: Logger.log would walk the stack for a caller's file and line no line shows
    record = _logger.makeRecord(
        LOGGER_NAME, level, "", 0, message, (), None, extra={"medspa_severity": severity, "medspa_fields": fields}
    )
    _logger.handle(record)


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)


def exception(message: str, exc: BaseException, **fields: Any) -> None:
    """An ERROR line with the exception's traceback, scrubbed like every other field and bounded."""
    import traceback

    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log("ERROR", message, error_type=type(exc).__name__, traceback=trace[-MAX_TRACEBACK_CHARS:], **fields)
