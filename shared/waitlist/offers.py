"""slot_offers/{offer_id}: one offer of one freed slot, and the only module that writes the collection
(with its subcollection slot_offers/{offer_id}/answers/{entry_id}). Drawn in docs/waitlist.md:

    (none) ──open──► open (wave 0) ──advance──► open (wave n+1) ──advance──► …
                       │   ▲  │                   │
                       │   │  └─wait─► open, waiting (wave n+1, nobody: every candidate holds another
                       │   │              │        offer; looked at again when a hold ends)
                       │   └──advance─────┘
                       │                          ├──fill (first claim wins)──► filled
                       └──expire (too soon, no candidates, nobody answered)───► expired

Every transition is a write at the version just read (or a create), so two writers that read the same
state cannot both win; a write function refuses (InvalidTransition) a transition its state does not
allow, and the caller commits the returned write together with the waitlist entries and appointment it
belongs with (shared.waitlist.waves, shared.waitlist.claims). An answer marker records that an entry's
patient answered this offer (YES or the claim link), once: a replayed answer, a second click or a late
reply never counts twice, and the result message skips patients who already have their answer. The result
message records the entry's answer itself (channel "message") before it is sent: whichever is recorded first,
the patient's answer or the result, is the one that tells them, so nobody is told twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.contract.ids import is_doc_id
from shared.contract.models import count_or_zero
from shared.messaging.keys import slot_instant
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, PermanentError
from shared.platform.store import Create, Doc, Store, Update

COLLECTION = "slot_offers"
ANSWERS = "answers"
TOLD = "message"  # an answer's channel when the result message told the patient before they answered
RETENTION = timedelta(days=90)  # answers' expire_at, for a TTL policy (the offers themselves are kept)
MAX_WAITING = 50  # waiting offers looked at again when a hold ends; the rest wait for their own timed look


class State(StrEnum):
    OPEN = "open"
    FILLED = "filled"
    EXPIRED = "expired"


class Mode(StrEnum):
    BROADCAST = "broadcast"  # wave_size patients at a time
    SEQUENTIAL = "sequential"  # one patient at a time


class InvalidTransition(PermanentError):
    """The offer is not in a state that allows this transition (a stale caller's write)."""

    code = "invalid_transition"


def offer_id_for(appointment_id: str, start: datetime) -> str:
    """The offer of a cancelled appointment's slot: the same cancellation (same start) → the same offer."""
    digest = hashlib.sha256(f"{appointment_id}\x1f{slot_instant(start)}".encode()).hexdigest()
    return f"offer-{digest[:40]}"


def path(offer_id: str) -> str:
    return f"{COLLECTION}/{offer_id}"


def answer_path(offer_id: str, entry_id: str) -> str:
    return f"{COLLECTION}/{offer_id}/{ANSWERS}/{entry_id}"


def _ids(value: Any) -> tuple[str, ...]:
    return tuple(item for item in value if is_doc_id(item)) if isinstance(value, list) else ()


@dataclass(frozen=True)
class SlotOffer:
    """One slot_offers document as read, with the version a transition's precondition names."""

    id: str
    clinic_id: str
    source_appointment_id: str
    source_patient_id: str | None
    start: datetime
    end: datetime
    provider_id: str | None
    service_name: str
    status: State
    mode: Mode
    wave_size: int
    ttl_minutes: int
    wave: int  # 0 until the first patients are offered it
    wave_entry_ids: tuple[str, ...]  # the entries of the current wave
    previous_wave_entry_ids: tuple[str, ...]  # the wave before it (told "expired" when it lapsed)
    offered_entry_ids: tuple[str, ...]  # every entry offered it so far, in order
    offered_patient_ids: tuple[str, ...]
    expires_at: datetime | None  # when the current wave's window closes (waiting: when to look again)
    waiting: bool  # the current wave offers nobody: its candidates hold other offers
    winner_entry_id: str | None
    booked_appointment_id: str | None
    claim_channel: str | None  # "sms" | "link"
    event_published: bool
    version: Any

    @classmethod
    def from_doc(cls, doc: Doc) -> SlotOffer:
        data = doc.data

        def fail(name: str, problem: str) -> InvalidDocument:
            return InvalidDocument(COLLECTION, doc.id, name, problem)

        try:
            status, mode = State(str(data.get("status"))), Mode(str(data.get("mode") or Mode.BROADCAST))
        except ValueError:
            raise fail("status", "must be open, filled or expired (mode: broadcast or sequential)") from None
        start, end, expires = data.get("start"), data.get("end"), data.get("expires_at")
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise fail("start", "start and end must be timestamps")
        for name in ("clinic_id", "source_appointment_id", "service_name"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise fail(name, "is required")
        return cls(
            id=doc.id,
            clinic_id=data["clinic_id"],
            source_appointment_id=data["source_appointment_id"],
            source_patient_id=data.get("source_patient_id") if is_doc_id(data.get("source_patient_id")) else None,
            start=start,
            end=end,
            provider_id=data.get("provider_id") if isinstance(data.get("provider_id"), str) else None,
            service_name=data["service_name"],
            status=status,
            mode=mode,
            wave_size=max(1, count_or_zero(data.get("wave_size"))),
            ttl_minutes=max(1, count_or_zero(data.get("ttl_minutes"))),
            wave=count_or_zero(data.get("wave")),
            wave_entry_ids=_ids(data.get("wave_entry_ids")),
            previous_wave_entry_ids=_ids(data.get("previous_wave_entry_ids")),
            offered_entry_ids=_ids(data.get("offered_entry_ids")),
            offered_patient_ids=_ids(data.get("offered_patient_ids")),
            expires_at=expires if isinstance(expires, datetime) else None,
            waiting=data.get("waiting") is True,
            winner_entry_id=data.get("winner_entry_id") if is_doc_id(data.get("winner_entry_id")) else None,
            booked_appointment_id=(
                data.get("booked_appointment_id") if is_doc_id(data.get("booked_appointment_id")) else None
            ),
            claim_channel=data.get("claim_channel") if isinstance(data.get("claim_channel"), str) else None,
            event_published=data.get("event_published_at") is not None,
            version=doc.version,
        )

    @property
    def is_open(self) -> bool:
        return self.status == State.OPEN

    def window_open(self, now: datetime) -> bool:
        return self.is_open and self.expires_at is not None and now < self.expires_at


@dataclass(frozen=True)
class Answer:
    """An entry's answer to an offer, as first recorded: how it ended for them, and by which channel."""

    entry_id: str
    outcome: str
    channel: str

    @property
    def by_patient(self) -> bool:
        """The patient answered (YES, the link), rather than a result message telling them first."""
        return self.channel != TOLD


class SlotOffers:
    """Reads of slot_offers and every write of it (returned as writes to commit, or applied alone)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def read(self, offer_id: str) -> SlotOffer | None:
        doc = self.store.get(path(offer_id)) if is_doc_id(offer_id) else None
        return SlotOffer.from_doc(doc) if doc else None

    def waiting_for(self, clinic_id: str, service_name: str) -> list[SlotOffer]:
        """The clinic's open offers of a service waiting for a candidate (equality filters only)."""
        where = [
            ("clinic_id", "==", clinic_id),
            ("service_name", "==", service_name),
            ("status", "==", State.OPEN.value),
            ("waiting", "==", True),
        ]
        found = []
        for doc in self.store.query(COLLECTION, where=where, limit=MAX_WAITING):
            try:
                found.append(SlotOffer.from_doc(doc))
            except InvalidDocument:
                continue  # a hand-broken offer: its own wave task reports it
        return found

    def open(
        self,
        offer_id: str,
        *,
        clinic_id: str,
        source_appointment_id: str,
        source_patient_id: str,
        start: datetime,
        end: datetime,
        provider_id: str | None,
        service_name: str,
        mode: str,
        wave_size: int,
        ttl_minutes: int,
    ) -> bool:
        """(none) → open at wave 0; False when the offer already exists (a redelivered cancellation)."""
        now = self.clock.now()
        fields = {
            "clinic_id": clinic_id,
            "source_appointment_id": source_appointment_id,
            "source_patient_id": source_patient_id,
            "start": start,
            "end": end,
            "provider_id": provider_id,
            "service_name": service_name,
            "status": State.OPEN.value,
            "mode": Mode(mode).value,
            "wave_size": 1 if mode == Mode.SEQUENTIAL else wave_size,
            "ttl_minutes": ttl_minutes,
            "wave": 0,
            "wave_entry_ids": [],
            "previous_wave_entry_ids": [],
            "offered_entry_ids": [],
            "offered_patient_ids": [],
            "expires_at": None,
            "winner_entry_id": None,
            "booked_appointment_id": None,
            "claim_channel": None,
            "created_at": now,
            "updated_at": now,
        }
        return self.store.create(path(offer_id), fields) is not None

    # ---------------------------------------------------------------- transitions, committed by the caller

    def _guard(self, offer: SlotOffer, transition: str) -> None:
        if offer.status != State.OPEN:
            raise InvalidTransition(f"slot offer {offer.id} is {offer.status}: cannot {transition}")

    def advance_write(self, offer: SlotOffer, entries: Sequence[tuple[str, str]], *, expires_at: datetime) -> Update:
        """open (wave n) → open (wave n+1), offered to `entries` [(entry id, patient id)] until expires_at."""
        self._guard(offer, "advance")
        entry_ids = [entry_id for entry_id, _ in entries]
        return Update(
            path(offer.id),
            {
                "wave": offer.wave + 1,
                "wave_entry_ids": entry_ids,
                "previous_wave_entry_ids": list(offer.wave_entry_ids),
                "offered_entry_ids": [*offer.offered_entry_ids, *entry_ids],
                "offered_patient_ids": [*offer.offered_patient_ids, *(patient for _, patient in entries)],
                "expires_at": expires_at,
                "waiting": False,
                "updated_at": self.clock.now(),
            },
            version=offer.version,
        )

    def wait_write(self, offer: SlotOffer, *, until: datetime) -> Update:
        """open (wave n) → open and waiting (wave n+1, offered to nobody) until `until`: no candidate is free now,
        but one holds another offer, and that hold ends before the slot is too soon. The wave task at `until`
        (or sooner, when a hold ends) looks again; the lapsed wave's entries go back to waiting in the same commit.
        """
        self._guard(offer, "wait")
        return Update(
            path(offer.id),
            {
                "wave": offer.wave + 1,
                "wave_entry_ids": [],
                "previous_wave_entry_ids": list(offer.wave_entry_ids),
                "expires_at": until,
                "waiting": True,
                "updated_at": self.clock.now(),
            },
            version=offer.version,
        )

    def expire_write(self, offer: SlotOffer, reason: str) -> Update:
        """open → expired: nobody can claim it any more; its entries go back to waiting in the same commit."""
        self._guard(offer, "expire")
        now = self.clock.now()
        return Update(
            path(offer.id),
            {"status": State.EXPIRED.value, "expired_reason": reason, "expired_at": now, "updated_at": now},
            version=offer.version,
        )

    def fill_write(self, offer: SlotOffer, *, entry_id: str, appointment_id: str, channel: str) -> Update:
        """open → filled: the one winner, committed with the booked appointment's create()."""
        self._guard(offer, "fill")
        now = self.clock.now()
        return Update(
            path(offer.id),
            {
                "status": State.FILLED.value,
                "winner_entry_id": entry_id,
                "booked_appointment_id": appointment_id,
                "claim_channel": channel,
                "filled_at": now,
                "updated_at": now,
            },
            version=offer.version,
        )

    def mark_published(self, offer: SlotOffer) -> None:
        """The booked appointment's appointment.created event went out (publishing again is harmless)."""
        self.store.update(path(offer.id), {"event_published_at": self.clock.now()})

    # --------------------------------------------------------------------------------------- answers

    def answer(self, offer_id: str, entry_id: str) -> Answer | None:
        doc = self.store.get(answer_path(offer_id, entry_id))
        return _answer(doc) if doc else None

    def answers(self, offer_id: str, entry_ids: Sequence[str]) -> dict[str, Answer]:
        docs = self.store.get_all([answer_path(offer_id, entry_id) for entry_id in entry_ids])
        return {doc.id: _answer(doc) for doc in docs.values()}

    def answer_write(self, offer_id: str, entry_id: str, *, outcome: str, channel: str) -> Create:
        """Record an entry's first answer; the commit (or create) fails when it already answered."""
        now = self.clock.now()
        return Create(
            answer_path(offer_id, entry_id),
            {
                "entry_id": entry_id,
                "outcome": outcome,
                "channel": channel,
                "answered_at": now,
                "expire_at": now + RETENTION,
            },
        )

    def record_answer(self, offer_id: str, entry_id: str, *, outcome: str, channel: str) -> Answer:
        """The answer as it stands after this one: this one if it was the first, else the first."""
        write = self.answer_write(offer_id, entry_id, outcome=outcome, channel=channel)
        if self.store.create(write.path, write.data) is not None:
            return Answer(entry_id, outcome, channel)
        return self.answer(offer_id, entry_id) or Answer(entry_id, outcome, channel)


def _answer(doc: Doc) -> Answer:
    return Answer(doc.id, str(doc.get("outcome") or ""), str(doc.get("channel") or ""))
