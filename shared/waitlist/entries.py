"""waitlist/{entry_id}: the booking platform writes the entries; this module is the only writer of their
status (and of the fields that go with it: offer_id, offered_at, offer_expires_at, booked_appointment_id).
Drawn in docs/waitlist.md:

    waiting ──offer (a wave picks it)──► offered ──book (its patient won)──► booked
       ▲                                   │
       └──release (window over, offer filled by someone else, offer expired)┘
    removed: the booking platform's; never written here, never offered.

Each write names the version of the entry as read, so it is committed only if nobody (another offer's
wave, a claim, the booking platform removing the entry) changed the entry in between.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.contract.ids import is_doc_id
from shared.contract.models import WAITLIST, WaitlistEntry
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, PermanentError, RetryableError
from shared.platform.store import Doc, Store, Update

MAX_SCANNED = 2000  # waiting entries read per slot; more than that is logged, never silently cut
CAS_ATTEMPTS = 5
IN_LIMIT = 30  # Firestore's most values in one `in` filter


class Status(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    BOOKED = "booked"
    REMOVED = "removed"


class InvalidTransition(PermanentError):
    code = "invalid_transition"


def path(entry_id: str) -> str:
    return f"{WAITLIST}/{entry_id}"


@dataclass(frozen=True)
class Entry:
    """A waitlist entry as read: the contract's fields, the offer it holds (if any) and its version."""

    entry: WaitlistEntry
    offer_id: str | None
    offer_expires_at: datetime | None
    offered_at: datetime | None
    last_offer_id: str | None  # the offer it held before it went back to waiting
    released_at: datetime | None
    version: Any

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def status(self) -> str:
        return self.entry.status

    @property
    def patient_id(self) -> str:
        return self.entry.patient_id

    @classmethod
    def from_doc(cls, doc: Doc) -> Entry:
        data = doc.data
        offer_id = data.get("offer_id")
        expires, offered, released = data.get("offer_expires_at"), data.get("offered_at"), data.get("released_at")
        last = data.get("last_offer_id")
        return cls(
            entry=WaitlistEntry.from_doc(doc.id, data),
            offer_id=offer_id if is_doc_id(offer_id) else None,
            offer_expires_at=expires if isinstance(expires, datetime) else None,
            offered_at=offered if isinstance(offered, datetime) else None,
            last_offer_id=last if is_doc_id(last) else None,
            released_at=released if isinstance(released, datetime) else None,
            version=doc.version,
        )

    def holds(self, offer_id: str) -> bool:
        """True while this entry is offered `offer_id` (its patient may claim it)."""
        return self.status == Status.OFFERED and self.offer_id == offer_id


def fcfs_key(entry: Entry) -> tuple[datetime, str]:
    """First come, first served: the oldest entry first (an entry without created_at goes last, by id)."""
    return (entry.entry.created_at or datetime.max.replace(tzinfo=entry.entry.earliest.tzinfo), entry.id)


class WaitlistEntries:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    # ------------------------------------------------------------------------------------------ reads

    def _parse(self, docs: Iterator[Doc] | Sequence[Doc]) -> Iterator[Entry]:
        for doc in docs:
            try:
                yield Entry.from_doc(doc)
            except InvalidDocument as exc:
                log.warning(
                    "waitlist entry breaks the contract; skipped",
                    collection=WAITLIST,
                    doc_id=exc.doc_id,
                    field=exc.field,
                    error_code=exc.code,
                )

    def read(self, entry_id: str) -> Entry | None:
        doc = self.store.get(path(entry_id)) if is_doc_id(entry_id) else None
        return next(self._parse([doc]), None) if doc else None

    def read_many(self, entry_ids: Sequence[str]) -> dict[str, Entry]:
        docs = self.store.get_all([path(entry_id) for entry_id in entry_ids if is_doc_id(entry_id)])
        return {entry.id: entry for entry in self._parse(list(docs.values()))}

    def waiting_for(self, clinic_id: str, service_name: str) -> list[Entry]:
        """The clinic's waiting entries for a service, first come first served (equality filters only)."""
        return self._for(clinic_id, service_name, Status.WAITING)

    def offered_for(self, clinic_id: str, service_name: str) -> list[Entry]:
        """The clinic's entries for a service that hold an offer now (equality filters only)."""
        return self._for(clinic_id, service_name, Status.OFFERED)

    def _for(self, clinic_id: str, service_name: str, status: Status) -> list[Entry]:
        docs = list(
            self.store.query(
                WAITLIST,
                where=[
                    ("clinic_id", "==", clinic_id),
                    ("service_name", "==", service_name),
                    ("status", "==", status.value),
                ],
                limit=MAX_SCANNED + 1,
            )
        )
        if len(docs) > MAX_SCANNED:
            log.warning(
                "more entries than one slot reads; the rest are not read", status=status.value, count=MAX_SCANNED
            )
            docs = docs[:MAX_SCANNED]
        return sorted(self._parse(docs), key=fcfs_key)

    def offered_to(self, patient_ids: Sequence[str]) -> list[Entry]:
        """Entries of these patients that currently hold an offer."""
        return self._of_patients(patient_ids, [("status", "==", Status.OFFERED.value)])

    def of_patients(self, patient_ids: Sequence[str]) -> list[Entry]:
        """Every entry of these patients, whatever its status."""
        return self._of_patients(patient_ids, [])

    def _of_patients(self, patient_ids: Sequence[str], where: list[tuple[str, str, Any]]) -> list[Entry]:
        found: list[Entry] = []
        ids = [patient_id for patient_id in dict.fromkeys(patient_ids) if is_doc_id(patient_id)]
        for start in range(0, len(ids), IN_LIMIT):
            chunk = ids[start : start + IN_LIMIT]
            found += self._parse(list(self.store.query(WAITLIST, where=[("patient_id", "in", chunk), *where])))
        return found

    # ---------------------------------------------------------------- transitions, committed by the caller

    def offer_write(self, entry: Entry, *, offer_id: str, wave: int, expires_at: datetime) -> Update:
        """waiting → offered (its patient may claim offer_id until expires_at)."""
        if entry.status != Status.WAITING:
            raise InvalidTransition(f"waitlist entry {entry.id} is {entry.status}: cannot be offered")
        now = self.clock.now()
        fields = {
            "status": Status.OFFERED.value,
            "offer_id": offer_id,
            "offer_wave": wave,
            "offered_at": now,
            "offer_expires_at": expires_at,
            "updated_at": now,
        }
        return Update(path(entry.id), fields, version=entry.version)

    def release_write(self, entry: Entry, offer_id: str) -> Update:
        """offered (by offer_id) → waiting: the window passed or the offer ended; the patient stays listed."""
        if not entry.holds(offer_id):
            raise InvalidTransition(f"waitlist entry {entry.id} does not hold offer {offer_id}")
        now = self.clock.now()
        fields = {
            "status": Status.WAITING.value,
            "offer_id": None,
            "last_offer_id": offer_id,
            "offer_expires_at": None,
            "released_at": now,
            "updated_at": now,
        }
        return Update(path(entry.id), fields, version=entry.version)

    def book_write(self, entry: Entry, *, offer_id: str, appointment_id: str) -> Update:
        """offered (by offer_id) → booked, committed with the appointment's create()."""
        if not entry.holds(offer_id):
            raise InvalidTransition(f"waitlist entry {entry.id} does not hold offer {offer_id}")
        now = self.clock.now()
        fields = {
            "status": Status.BOOKED.value,
            "booked_appointment_id": appointment_id,
            "booked_at": now,
            "offer_expires_at": None,
            "updated_at": now,
        }
        return Update(path(entry.id), fields, version=entry.version)

    def hold_write(self, entry: Entry) -> Update:
        """No change of state: a claim by the same patient on another offer rewrites this entry at its
        version, so two claims of one patient can never both commit (no two overlapping bookings).

        The write must change the document: Firestore keeps the update time (the version) of a write
        that changes nothing, and `updated_at` alone can repeat (two writes in one clock tick)."""
        fields = {"hold": secrets.token_hex(8), "updated_at": self.clock.now()}
        return Update(path(entry.id), fields, version=entry.version)

    # ------------------------------------------------------------------------------ transitions alone

    def release(self, entry_id: str, offer_id: str) -> bool:
        """Release one entry from offer_id if it still holds it; True when this call released it."""
        for _ in range(CAS_ATTEMPTS):
            entry = self.read(entry_id)
            if entry is None or not entry.holds(offer_id):
                return False
            write = self.release_write(entry, offer_id)
            if self.store.update(write.path, write.data, version=write.version) is not None:
                return True
        raise RetryableError(f"waitlist entry {entry_id} kept changing", retry_after_seconds=5, code="entry_contended")
