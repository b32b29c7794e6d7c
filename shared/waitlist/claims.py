"""Claiming an offered slot (a YES text or a claim-link click): exactly one winner per offer.

The win is one atomic commit whose preconditions decide it: create() of the booked appointment at the id
derived from the offer (so one offer can never make two appointments), the offer open → filled at the
version read, the winner's entry offered → booked at the version read, and every other entry of the same
patient that holds an offer rewritten at its version (so one patient's two claims can never both commit:
no overlapping bookings). A claim whose commit fails reads again and answers what it finds: taken,
expired, or its own earlier win. Never read-then-write.

Each entry's first answer is recorded (shared.waitlist.offers answers): a replayed YES answers the same
again, the result message skips patients who already know, and a claim link works once.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contract.models import Appointment
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, RetryableError
from shared.platform.store import Store, Write
from shared.tasks.queue import TaskQueue
from shared.waitlist import entries as entries_module
from shared.waitlist import offers as offers_module
from shared.waitlist.bookings import Bookings, booked_appointment_id, overlaps
from shared.waitlist.entries import Entry, WaitlistEntries
from shared.waitlist.events import AppointmentEvents
from shared.waitlist.offers import Answer, SlotOffer, SlotOffers, State
from shared.waitlist.waves import settle_spec

CAS_ATTEMPTS = 6
WON, TAKEN, EXPIRED, CONFLICT, NO_OFFER = "won", "taken", "expired", "conflict", "no_offer"


@dataclass(frozen=True)
class ClaimResult:
    outcome: str  # won | taken | expired | conflict | no_offer
    offer: SlotOffer | None = None
    replay: bool = False  # this entry had answered before: the outcome is that first answer's


class Claims:
    def __init__(self, *, store: Store, clock: Clock, tasks: TaskQueue, queue: str, events: AppointmentEvents) -> None:
        self.store, self.clock, self.tasks, self.queue, self.events = store, clock, tasks, queue, events
        self.offers, self.entries = SlotOffers(store, clock), WaitlistEntries(store, clock)
        self.bookings = Bookings(store, clock)

    def claim(self, offer_id: str, entry_id: str, *, channel: str) -> ClaimResult:
        """Try to win offer_id for entry_id's patient; the outcome is final for this entry."""
        for _ in range(CAS_ATTEMPTS):
            docs = self.store.get_all(
                [
                    offers_module.path(offer_id),
                    entries_module.path(entry_id),
                    offers_module.answer_path(offer_id, entry_id),
                ]
            )
            answer_doc = docs.get(offers_module.answer_path(offer_id, entry_id))
            offer_doc, entry_doc = docs.get(offers_module.path(offer_id)), docs.get(entries_module.path(entry_id))
            offer = SlotOffer.from_doc(offer_doc) if offer_doc else None
            if answer_doc is not None:
                # Told by the result message first: this answer hears the same, and it is no reuse of a link.
                told = answer_doc.get("channel") == offers_module.TOLD
                return ClaimResult(str(answer_doc.get("outcome") or NO_OFFER), offer, replay=not told)
            try:
                entry = Entry.from_doc(entry_doc) if entry_doc else None
            except InvalidDocument:
                entry = None
            if offer is None or entry is None or entry.entry.clinic_id != offer.clinic_id:
                return ClaimResult(NO_OFFER, offer)
            verdict = self._verdict(offer, entry)
            if verdict is not None:
                return self._answered(offer, entry_id, verdict, channel)
            if self._try_win(offer, entry, channel):
                self._after_win(offer)
                return ClaimResult(WON, self.offers.read(offer_id) or offer)
        raise RetryableError(f"claim on {offer_id} kept racing", retry_after_seconds=2, code="claim_contended")

    def _verdict(self, offer: SlotOffer, entry: Entry) -> str | None:
        """The answer when this entry cannot win (taken, expired, conflict), or None: try to win."""
        if offer.status == State.FILLED:
            return WON if offer.winner_entry_id == entry.id else TAKEN
        now = self.clock.now()
        if offer.status != State.OPEN or not entry.holds(offer.id):
            return EXPIRED
        if entry.offer_expires_at is None or now >= entry.offer_expires_at:
            return EXPIRED
        busy = self.bookings.busy([entry.patient_id]).get(entry.patient_id, [])
        if overlaps(busy, offer.start, offer.end, ignore=booked_appointment_id(offer.id)):
            return CONFLICT
        return None

    def _answered(self, offer: SlotOffer, entry_id: str, outcome: str, channel: str) -> ClaimResult:
        first: Answer = self.offers.record_answer(offer.id, entry_id, outcome=outcome, channel=channel)
        return ClaimResult(first.outcome, offer, replay=first.outcome != outcome)

    def _try_win(self, offer: SlotOffer, entry: Entry, channel: str) -> bool:
        source: Appointment | None
        try:
            source = self.bookings.read(offer.source_appointment_id)
        except InvalidDocument:
            source = None  # the freed slot's fields are on the offer; prep and price fall back to none
        appointment_id = booked_appointment_id(offer.id)
        others = [e for e in self.entries.offered_to([entry.patient_id]) if e.id != entry.id]
        writes: list[Write] = [
            self.bookings.booking_write(offer, entry_id=entry.id, patient_id=entry.patient_id, source=source),
            self.offers.fill_write(offer, entry_id=entry.id, appointment_id=appointment_id, channel=channel),
            self.entries.book_write(entry, offer_id=offer.id, appointment_id=appointment_id),
            *(self.entries.hold_write(other) for other in others),
            self.offers.answer_write(offer.id, entry.id, outcome=WON, channel=channel),
        ]
        return self.store.commit(writes) is not None

    def _after_win(self, offer: SlotOffer) -> None:
        """Tell the others and the reminders soon; the wave's own task does the same later if this fails."""
        filled = self.offers.read(offer.id)
        if filled is None:
            return
        try:
            self.tasks.create(settle_spec(self.queue, filled))
        except Exception as exc:  # noqa: BLE001 - the win stands; the wave task settles it at its window's end
            log.warning(
                "settle task not enqueued; the wave task will settle", offer_id=offer.id, error=type(exc).__name__
            )
        try:
            if filled.booked_appointment_id:
                self.events.created(filled.booked_appointment_id)
                self.offers.mark_published(filled)
        except Exception as exc:  # noqa: BLE001 - the settle task publishes what is not marked published
            log.warning("appointment.created not published yet", offer_id=offer.id, error=type(exc).__name__)


def answered_offer(entries: list[Entry], clinic_id: str) -> tuple[str, Entry] | None:
    """The (offer, entry) a YES answers: the offer the patient holds at this clinic (the most recent
    first), else the one they were offered last: a late YES hears "expired" or "taken", a winner's
    second YES hears "booked" again, rather than "no offer"."""
    here = [e for e in entries if e.entry.clinic_id == clinic_id and e.offered_at is not None]
    held = [e for e in here if e.status == entries_module.Status.OFFERED and e.offer_id]
    for candidates in (held, here):
        ranked = sorted(candidates, key=lambda e: (e.offered_at, e.id), reverse=True)
        for entry in ranked:
            offer_id = entry.offer_id if entry.status in ("offered", "booked") else entry.last_offer_id
            if offer_id:
                return offer_id, entry
    return None
