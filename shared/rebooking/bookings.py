"""Has a patient booked again? One bounded read of the patient's own appointments (`patient_id ==`, a
single-field index; a patient belongs to one clinic), shared by the send-time check and the report's
figures (docs/rebooking.md)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from shared.contract.models import APPOINTMENTS, Appointment
from shared.platform.store import Store

MAX_APPOINTMENTS_READ = 500  # a patient's whole history at one clinic, far more than any has
FIELDS = ("clinic_id", "start", "status", "created_at")


@dataclass(frozen=True)
class Booking:
    id: str
    start: datetime
    created_at: datetime | None


def bookings(store: Store, patient_id: str, clinic_id: str, *, excluding: str = "") -> Iterator[Booking]:
    """The patient's appointments at this clinic that are not cancelled (a document missing its fields is
    left out: the reminders' audit reports it)."""
    docs = store.query(
        APPOINTMENTS, where=[("patient_id", "==", patient_id)], fields=list(FIELDS), limit=MAX_APPOINTMENTS_READ
    )
    for doc in docs:
        data = doc.data
        start, created = data.get("start"), data.get("created_at")
        if doc.id == excluding or data.get("clinic_id") != clinic_id or data.get("status") == "cancelled":
            continue
        if isinstance(start, datetime):
            yield Booking(doc.id, start, created if isinstance(created, datetime) else None)


def booked_since(store: Store, visit: Appointment) -> bool:
    """Has the patient booked at the visit's clinic since: an appointment, not cancelled, starting after the
    visit or created after it ended?"""
    return any(
        b.start > visit.start or (b.created_at is not None and b.created_at >= visit.end)
        for b in bookings(store, visit.patient_id, visit.clinic_id, excluding=visit.id)
    )


def booked_between(store: Store, patient_id: str, clinic_id: str, since: datetime, until: datetime) -> bool:
    """Did the patient book (an appointment created, not cancelled) at this clinic in [since, until)?"""
    return any(
        b.created_at is not None and since <= b.created_at < until for b in bookings(store, patient_id, clinic_id)
    )
