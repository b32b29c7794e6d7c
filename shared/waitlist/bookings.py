"""The appointments this product reads for the waitlist, and the only two writes it makes to appointments/*
(the booking platform owns the collection; docs/waitlist.md lists the fields written):

- a waitlist winner's booked appointment, created with create() at an id derived from the offer, so one
  offer can only ever make one appointment (committed with the offer's fill, shared.waitlist.claims);
- a patient's C / CONFIRM text: booked → confirmed, at the version read, never from any other status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.contract.ids import is_doc_id
from shared.contract.models import APPOINTMENTS, Appointment
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument
from shared.platform.store import Create, Doc, Store
from shared.waitlist.offers import SlotOffer

IN_LIMIT = 30
ACTIVE = ("booked", "confirmed")
CONFIRM_HORIZON = timedelta(days=60)  # a C / CONFIRM text is about an appointment in the coming weeks
OVERLAP_FIELDS = ["clinic_id", "patient_id", "start", "end", "status"]


def booked_appointment_id(offer_id: str) -> str:
    """The one appointment an offer can make."""
    return "wl-" + offer_id.removeprefix("offer-")


def path(appointment_id: str) -> str:
    return f"{APPOINTMENTS}/{appointment_id}"


@dataclass(frozen=True)
class Busy:
    """An appointment that keeps its patient busy from start to end."""

    appointment_id: str
    patient_id: str
    start: datetime
    end: datetime


def overlaps(busy: Iterable[Busy], start: datetime, end: datetime, *, ignore: str | None = None) -> bool:
    """True when any of `busy` overlaps [start, end) (touching ends do not overlap)."""
    return any(b.start < end and start < b.end for b in busy if b.appointment_id != ignore)


class Bookings:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def busy(self, patient_ids: Sequence[str]) -> dict[str, list[Busy]]:
        """Each patient's booked or confirmed appointments (any clinic: a patient is in one place at a time)."""
        out: dict[str, list[Busy]] = {patient_id: [] for patient_id in patient_ids}
        ids = [patient_id for patient_id in dict.fromkeys(patient_ids) if is_doc_id(patient_id)]
        for start in range(0, len(ids), IN_LIMIT):
            chunk = ids[start : start + IN_LIMIT]
            for doc in self.store.query(APPOINTMENTS, where=[("patient_id", "in", chunk)], fields=OVERLAP_FIELDS):
                begins, ends = doc.get("start"), doc.get("end")
                if doc.get("status") in ACTIVE and isinstance(begins, datetime) and isinstance(ends, datetime):
                    out.setdefault(str(doc.get("patient_id")), []).append(
                        Busy(doc.id, doc.get("patient_id"), begins, ends)
                    )
        return out

    def read(self, appointment_id: str) -> Appointment | None:
        doc = self.store.get(path(appointment_id)) if is_doc_id(appointment_id) else None
        return Appointment.from_doc(doc.id, doc.data) if doc else None

    def booking_write(self, offer: SlotOffer, *, entry_id: str, patient_id: str, source: Appointment | None) -> Create:
        """The winner's appointment: the freed slot, status booked, linked to the offer and the entry."""
        now = self.clock.now()
        fields: dict[str, Any] = {
            "clinic_id": offer.clinic_id,
            "patient_id": patient_id,
            "provider_id": offer.provider_id,
            "provider_name": source.provider_name if source else "",
            "service_name": offer.service_name,
            "requires_prep": source.requires_prep if source else False,
            "prep_instructions": source.prep_instructions if source else "",
            "start": offer.start,
            "end": offer.end,
            "status": "booked",
            "price_cents": source.price_cents if source else 0,
            "source": "waitlist",
            "slot_offer_id": offer.id,
            "waitlist_entry_id": entry_id,
            "created_at": now,
            "updated_at": now,
        }
        return Create(path(booked_appointment_id(offer.id)), fields)

    # ------------------------------------------------------------------------------- C / CONFIRM texts

    def next_appointment(self, clinic_id: str, patient_id: str) -> Doc | None:
        """The patient's next booked or confirmed appointment at this clinic (equality filters only)."""
        now = self.clock.now()
        upcoming: list[tuple[datetime, Doc]] = []
        for doc in self.store.query(
            APPOINTMENTS, where=[("patient_id", "==", patient_id), ("clinic_id", "==", clinic_id)]
        ):
            begins = doc.get("start")
            if doc.get("status") in ACTIVE and isinstance(begins, datetime) and now < begins < now + CONFIRM_HORIZON:
                upcoming.append((begins, doc))
        return min(upcoming, key=lambda item: (item[0], item[1].id))[1] if upcoming else None

    def confirm(self, doc: Doc) -> str:
        """booked → confirmed; returns "confirmed", or "already_confirmed" when it was (or became) so."""
        try:
            appointment = Appointment.from_doc(doc.id, doc.data)
        except InvalidDocument as exc:
            log.warning("appointment breaks the contract; not confirmed", doc_id=exc.doc_id, field=exc.field)
            return "no_appointment"
        if appointment.status != "booked":
            return "already_confirmed"
        now = self.clock.now()
        fields = {"status": "confirmed", "confirmed_at": now, "confirmed_via": "sms", "updated_at": now}
        if self.store.update(doc.path, fields, version=doc.version) is not None:
            return "confirmed"
        current = self.store.get(doc.path)  # someone wrote it meanwhile: say what it is now
        return "already_confirmed" if current is not None and current.get("status") == "confirmed" else "no_appointment"
