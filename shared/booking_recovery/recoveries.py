"""Owner of `booking_recoveries/{session_id}`: what became of one booking session this product tried to
recover (docs/booking-recovery.md, "What is stored").

The booking platform owns `booking_sessions`; this collection is ours, one document per session, written by
the booking events (started, abandoned, completed), by a nudge that went out, and by a click on its restore
link. The report's figures (shared/booking_recovery/figures.py) count it: sessions by `started_at`, nudged
(`first_nudged_at`), recovered (`completed_at` after `first_nudged_at`). Every change is a versioned update
(or a create), so a redelivered event or a concurrent click never loses or doubles a write.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.booking_recovery.sessions import ABANDONED, COMPLETED, STARTED, BookingSession
from shared.contract.models import count_or_zero
from shared.platform.clock import Clock
from shared.platform.errors import RetryableError
from shared.platform.store import Store

RECOVERIES = "booking_recoveries"
CAS_ATTEMPTS = 16

Change = Callable[[dict[str, Any]], dict[str, Any] | None]  # the doc as read → the fields to write, or None


def path(session_id: str) -> str:
    return f"{RECOVERIES}/{session_id}"


class Recoveries:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def read(self, session_id: str) -> dict[str, Any] | None:
        doc = self.store.get(path(session_id))
        return doc.data if doc is not None else None

    def _first(self, session: BookingSession, status: str, now: datetime) -> dict[str, Any]:
        return {
            "clinic_id": session.clinic_id,
            "patient_id": session.patient_id,
            "started_at": session.started_at,
            "slot_start": session.slot_start,
            "status": status,
            "nudges_sent": 0,
            "clicks": 0,
            "created_at": now,
            "updated_at": now,
        }

    def _change(self, session: BookingSession, status: str, change: Change) -> bool:
        """Create the session's record (in `status`) or apply `change` to it at the version read; True when
        something was written."""
        now = self.clock.now()
        for _ in range(CAS_ATTEMPTS):
            doc = self.store.get(path(session.id))
            if doc is None:
                first = self._first(session, status, now)
                first.update(change(first) or {})
                if self.store.create(path(session.id), first) is not None:
                    return True
                continue
            fields = change(doc.data)
            if fields is None:
                return False
            if self.store.update(path(session.id), {**fields, "updated_at": now}, version=doc.version) is not None:
                return True
        raise RetryableError("booking recovery record contended past every attempt", code="recovery_contended")

    def started(self, session: BookingSession, *, status: str = STARTED) -> bool:
        """booking.started (or .abandoned): the record, once; an abandoned one is marked so unless completed."""

        def change(doc: dict[str, Any]) -> dict[str, Any] | None:
            moves = status == ABANDONED and doc.get("status") == STARTED  # never back from abandoned or completed
            return {"status": ABANDONED} if moves else None

        return self._change(session, status, change)

    def completed(self, session: BookingSession) -> bool:
        """booking.completed: the record says completed (and when); the nudges read it and stop."""
        now = self.clock.now()

        def change(doc: dict[str, Any]) -> dict[str, Any] | None:
            if doc.get("status") == COMPLETED and doc.get("completed_at") is not None:
                return None
            return {"status": COMPLETED, "completed_at": now}

        return self._change(session, COMPLETED, change)

    def nudged(self, session: BookingSession, at: datetime) -> bool:
        """A nudge went out at `at`: counted, and the first one's time kept (what "recovered" is measured from)."""

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            first = doc.get("first_nudged_at")
            return {
                "nudges_sent": count_or_zero(doc.get("nudges_sent")) + 1,
                "first_nudged_at": first if isinstance(first, datetime) else at,
            }

        return self._change(session, STARTED, change)

    def clicked(self, session: BookingSession) -> bool:
        """The patient followed a nudge's restore link."""
        now = self.clock.now()

        def change(doc: dict[str, Any]) -> dict[str, Any]:
            return {"clicks": count_or_zero(doc.get("clicks")) + 1, "last_clicked_at": now}

        return self._change(session, STARTED, change)
