"""The booking platform's `booking_sessions/{id}` document (docs/booking-recovery.md, "Contract"), read only.

A session is a patient's booking in progress on the clinic's booking page: which clinic, which patient, the
service and slot they picked, when they started, and how it stands (started, completed, abandoned). The
platform writes it and publishes booking.started / booking.completed / booking.abandoned on appointment-events;
this product never writes it (its own record of a recovery is shared/booking_recovery/recoveries.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.contract.models import DocReader

SESSIONS = "booking_sessions"
STARTED, COMPLETED, ABANDONED = "started", "completed", "abandoned"
SESSION_STATUSES = (STARTED, COMPLETED, ABANDONED)


@dataclass(frozen=True)
class BookingSession:
    id: str
    clinic_id: str
    patient_id: str
    service_name: str
    slot_start: datetime  # the slot the patient picked
    started_at: datetime  # when the patient started booking
    status: str
    provider_id: str | None = None

    @property
    def is_completed(self) -> bool:
        return self.status == COMPLETED

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> BookingSession:
        r = DocReader(SESSIONS, doc_id, data)
        slot_start, started_at = r.instant("slot_start"), r.instant("started_at")
        if slot_start < started_at:
            r.fail("slot_start", "is before started_at")
        return cls(
            id=doc_id,
            clinic_id=r.text("clinic_id"),
            patient_id=r.text("patient_id"),
            service_name=r.text("service_name"),
            slot_start=slot_start,
            started_at=started_at,
            status=r.choice("status", SESSION_STATUSES),
            provider_id=r.text("provider_id", required=False) or None,
        )


def path(session_id: str) -> str:
    return f"{SESSIONS}/{session_id}"
