"""Structured JSON log lines on stdout, the shape Cloud Logging parses; PHI masked, never printed whole.

Every line carries severity and message, the task or event id bound for the current request, and the
Cloud Trace field when the request carried a trace header. As a safety net, any string field that looks
like a phone number or an email address is masked (shared.platform.masking) before it is written.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from shared.platform.masking import scrub

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("medspa_log_context", default={})  # noqa: B039

TRACE_FIELD = "logging.googleapis.com/trace"
MAX_FIELD_CHARS = 4000  # a log line carries ids, codes and counts: anything longer is cut
MAX_TRACEBACK_CHARS = 8000
_write_lock = threading.Lock()  # one line per write, whole: threads must not interleave within a line


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


def log(severity: str, message: str, **fields: Any) -> None:
    context = _context.get()
    entry: dict[str, Any] = {"severity": severity, "message": scrub(message)}
    trace = fields.pop("trace", None) or context.get("trace")
    if trace:
        entry[TRACE_FIELD] = trace
    for key, value in {**context, **fields}.items():
        if key != "trace":
            entry[key] = _clean(value)
    line = json.dumps(entry, default=str) + "\n"
    with _write_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


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
