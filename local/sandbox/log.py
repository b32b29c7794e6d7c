"""Structured JSON log lines on stdout. Callers pass masked addresses only (docs/architecture.md, "IDs-only
payloads")."""

from __future__ import annotations

import json
import sys
from typing import Any

from local.sandbox.outbox import iso, utc_now


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one JSON line: severity, message, component and the given (already masked) fields."""
    entry = {"severity": severity, "message": message, "component": "provider-sandbox", "time": iso(utc_now())}
    entry.update({key: value for key, value in fields.items() if value is not None})
    sys.stdout.write(json.dumps(entry, default=str) + "\n")
    sys.stdout.flush()
