"""How old a scheduled event may be before it is acknowledged instead of run."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.contract.events import Envelope


def too_old(envelope: Envelope, now: datetime, max_age_seconds: int) -> timedelta | None:
    """The event's age when it is older than allowed (a tick redelivered long after it was due), else None."""
    if envelope.time is None:
        return None
    age = now - envelope.time
    return age if age > timedelta(seconds=max_age_seconds) else None
