"""Ledger keys: one stable key per intended message, derived from what the message is about.

A key is `<kind>-<40 hex>`: the hash of kind + appointment (or offer, report…) + send slot. The same
inputs always give the same key, so a re-planned message is recognised, and the task handler derives
the key again from the ids it re-reads rather than trusting the one a task body carries.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import TypeGuard

KEY = re.compile(r"[a-z_]{1,40}-[0-9a-f]{40}")


def dedup_key(kind: str, subject_id: str, send_slot: str) -> str:
    """Stable key of one intended message: kind + subject (appointment, offer…) + send slot."""
    digest = hashlib.sha256(f"{kind}\x1f{subject_id}\x1f{send_slot}".encode()).hexdigest()
    return f"{kind}-{digest[:40]}"


def is_key(value: object) -> TypeGuard[str]:
    """True for a string shaped like a ledger key: a status callback naming anything else names nothing."""
    return isinstance(value, str) and KEY.fullmatch(value) is not None


def slot_instant(start: datetime) -> str:
    """An instant as it appears in a send slot: UTC, fixed format, whatever type Firestore returns."""
    return start.astimezone(timezone.utc).isoformat(timespec="microseconds")


def message_key(kind: str, appointment_id: str, start: datetime, offset_hours: int | None) -> str:
    """The key of an appointment message for one start instant: same appointment and start → same key."""
    lead = f"{offset_hours}h" if offset_hours is not None else kind
    return dedup_key(kind, appointment_id, f"{lead}@{slot_instant(start)}")
