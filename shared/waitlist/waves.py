"""Waves of an offer: who is offered the slot next, when, and how an offer ends (docs/waitlist.md, "Flows").

An offer advances one wave at a time, each advance one atomic commit: the offer at the version read
(wave n → n+1), the lapsed wave's entries back to waiting, the new wave's entries to offered, their
patients' daily counts. Then, outside the commit and safe to repeat: one waitlist_offer task per new
entry, one waitlist_result ("expired") per lapsed entry, and the waitlist_wave task that ends this wave's
window (scheduled at expires_at on the waitlist queue). Task names come from (offer, entry) and
(offer, wave), so a repeated advance enqueues nothing twice.

A waitlist_wave task for wave n, when it runs: the offer is at wave n → advance (or expire, when the slot
starts too soon or nobody is left; or wait, when nobody is free but a candidate holds another offer whose
window ends before the slot is too soon: wave n+1 offers nobody and ends a minute after that hold, and
entries going back to waiting for the same clinic and service make waiting slots look again at once); at
n+1 → finish the side effects of that advance (a crashed run's); filled or expired → settle: the current
wave's other entries back to waiting, their result messages, the won result for a link claim, and the
booked appointment's appointment.created event until it is recorded.

A filled offer's "taken" results wait for the window's end (the wave task; the settle task that follows a win
comes before it and leaves them): a patient's YES may still be on its way to the inbound webhook when the slot
fills, and everyone who answers within the window must hear "taken" in the reply only. By the deadline the
offer itself gave ("Reply YES by …"), the answers sent in time have been answered, and the results skip them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from shared.contract.clinic_time import local_date
from shared.contract.models import CLINICS, PATIENTS, Clinic, Patient
from shared.messaging.delivery import ClinicCache
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, PermanentError, RetryableError
from shared.platform.store import Store, Write
from shared.tasks.queue import TaskQueue, TaskSpec, create_all
from shared.tasks.router import Attempt, Outcome, Status
from shared.waitlist import caps
from shared.waitlist.bookings import Bookings
from shared.waitlist.candidates import PatientFacts, entry_mismatch, hold_ends, pick
from shared.waitlist.caps import OfferCaps
from shared.waitlist.entries import IN_LIMIT, Entry, WaitlistEntries
from shared.waitlist.events import AppointmentEvents
from shared.waitlist.offers import SlotOffer, SlotOffers, State
from shared.waitlist.tasks import Result, WaveTask, new_offer_task, new_result_task

MAX_WAVE_SIZE = 100  # one advance commits 1 + 3 writes per patient: well inside Firestore's 500
CAS_ATTEMPTS = 5
# The wave task is scheduled at the window's end and Cloud Tasks never dispatches early; this much lag of our
# clock behind Cloud Tasks' still counts as the window's end (else its "taken" results would have no later run).
WINDOW_END_SKEW = timedelta(seconds=5)
# A waiting slot looks again this long after the hold it waits for ends (that offer's own wave task, due at the
# same moment, releases the entry first); a hold that ends sooner (its offer filled) triggers a look at once.
HOLD_RECHECK = timedelta(minutes=1)


def settle_spec(queue: str, offer: SlotOffer) -> TaskSpec:
    """The task that settles an offer right after it was filled (the wave's own task would, later)."""
    task = WaveTask(offer.id, offer.clinic_id, offer.wave)
    return TaskSpec(queue=queue, business_key=f"{offer.id}:settle", payload=task.to_json())


class Waves:
    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        tasks: TaskQueue,
        queue: str,
        events: AppointmentEvents,
        clinics: ClinicCache | None = None,
    ) -> None:
        self.store, self.clock, self.tasks, self.queue, self.events = store, clock, tasks, queue, events
        self.offers, self.entries = SlotOffers(store, clock), WaitlistEntries(store, clock)
        self.caps, self.bookings = OfferCaps(store, clock), Bookings(store, clock)
        self.clinics = clinics or ClinicCache()

    def clinic(self, clinic_id: str) -> Clinic:
        clinic = self.clinics.get(clinic_id)
        if clinic is None:
            doc = self.store.get(f"{CLINICS}/{clinic_id}")
            if doc is None:
                raise PermanentError("clinic not found", code="clinic_missing")
            clinic = Clinic.from_doc(doc.id, doc.data)
            self.clinics.put(clinic)
        return clinic

    # ----------------------------------------------------------------------------- the wave task

    def handle(self, task: WaveTask, attempt: Attempt) -> Outcome:
        """The waitlist_wave task handler."""
        return self.advance(task.offer_id, task.wave)

    def advance(self, offer_id: str, from_wave: int) -> Outcome:
        """End wave `from_wave` of the offer: the next wave, or the end of the offer (see the module doc)."""
        for _ in range(CAS_ATTEMPTS):
            offer = self.offers.read(offer_id)
            if offer is None:
                return Outcome(Status.SKIPPED, reason="offer_missing")  # deleted by hand: nothing left to do
            if not offer.is_open:
                self.settle(offer)
                return Outcome(Status.DONE, reason=f"settled_{offer.status}")
            if offer.wave != from_wave:
                if offer.wave == from_wave + 1:
                    self._announce(offer)  # a crashed run committed the advance; finish its side effects
                return Outcome(Status.DONE, reason="already_advanced" if offer.wave > from_wave else "wave_not_reached")
            writes, reason = self._advance_writes(offer, self.clinic(offer.clinic_id))
            if self.store.commit(writes) is None:
                continue  # an entry, a count or the offer changed since it was read: decide again
            after = self.offers.read(offer_id)
            if after is None:
                continue  # deleted by hand since the commit: the next read answers offer_missing
            if after.is_open:
                self._announce(after)
            else:
                self.settle(after)
            if offer.wave_entry_ids:  # entries released by this commit may be what a waiting slot waits for
                self._recheck_waiting(after)
            log.info("waitlist wave ended", offer_id=offer_id, wave=after.wave, outcome=reason)
            return Outcome(Status.DONE, reason=reason)
        raise RetryableError(f"slot offer {offer_id} kept changing", retry_after_seconds=5, code="offer_contended")

    def _advance_writes(self, offer: SlotOffer, clinic: Clinic) -> tuple[list[Write], str]:
        now = self.clock.now()
        lapsed = [e for e in self.entries.read_many(offer.wave_entry_ids).values() if e.holds(offer.id)]
        releases: list[Write] = [self.entries.release_write(entry, offer.id) for entry in lapsed]
        close_at = offer.start - timedelta(minutes=clinic.waitlist.min_lead_minutes)
        if now >= close_at:
            return [self.offers.expire_write(offer, "too_soon"), *releases], "expired_too_soon"
        chosen, counts, held_back = self._choose(offer, clinic, now)
        if not chosen:
            held = self.entries.offered_for(offer.clinic_id, offer.service_name)
            ends = held_back + hold_ends([], {}, held, offer, clinic)
            # Nobody free, but someone holds another offer: look again once that hold is over (its window's end,
            # or sooner when it ends early), rather than lose the slot; unless it is too soon by then.
            until = max(min(ends), now) + HOLD_RECHECK if ends else None
            if until is not None and until < close_at:
                return [self.offers.wait_write(offer, until=until), *releases], f"wave_{offer.wave + 1}_waiting"
            reason = "unfilled" if offer.offered_entry_ids else "no_candidates"
            return [self.offers.expire_write(offer, reason), *releases], f"expired_{reason}"
        expires_at = min(now + timedelta(minutes=offer.ttl_minutes), close_at)
        day = local_date(now, clinic.zone)
        writes: list[Write] = [
            self.offers.advance_write(offer, [(e.id, e.patient_id) for e in chosen], expires_at=expires_at),
            *releases,
        ]
        for entry in chosen:
            writes.append(
                self.entries.offer_write(entry, offer_id=offer.id, wave=offer.wave + 1, expires_at=expires_at)
            )
            count = counts[caps.key(offer.clinic_id, entry.patient_id, day)]
            counted = self.caps.add_write(
                count, offer.id, clinic_id=offer.clinic_id, patient_id=entry.patient_id, day=day
            )
            if counted is not None:
                writes.append(counted)
        return writes, f"wave_{offer.wave + 1}_offered_{len(chosen)}"

    def _choose(
        self, offer: SlotOffer, clinic: Clinic, now: datetime
    ) -> tuple[list[Entry], dict[str, caps.DayCount], list[datetime]]:
        """The next wave's entries, first come first served, reading their patients in chunks; and when the
        waiting entries kept out only by an offer their patient holds would be free (candidates.hold_ends)."""
        size = min(offer.wave_size, MAX_WAVE_SIZE)
        waiting = [
            entry
            for entry in self.entries.waiting_for(offer.clinic_id, offer.service_name)
            if entry.id not in offer.offered_entry_ids and entry_mismatch(entry, offer) is None
        ]
        day = local_date(now, clinic.zone)
        chosen: list[Entry] = []
        counts: dict[str, caps.DayCount] = {}
        held_back: list[datetime] = []
        for start in range(0, len(waiting), IN_LIMIT):
            if len(chosen) >= size:
                break
            chunk = waiting[start : start + IN_LIMIT]
            facts, chunk_counts = self._facts([entry.patient_id for entry in chunk], offer.clinic_id, day)
            counts.update(chunk_counts)
            taken = {entry.patient_id for entry in chosen}
            chosen += pick([e for e in chunk if e.patient_id not in taken], facts, offer, clinic, size - len(chosen))
            held_back += hold_ends(chunk, facts, [], offer, clinic)
        return chosen, counts, held_back

    def _facts(
        self, patient_ids: Sequence[str], clinic_id: str, day: date
    ) -> tuple[dict[str, PatientFacts], dict[str, caps.DayCount]]:
        ids = list(dict.fromkeys(patient_ids))
        docs = self.store.get_all([f"{PATIENTS}/{patient_id}" for patient_id in ids])
        busy = self.bookings.busy(ids)
        holding: dict[str, datetime | None] = {}
        for entry in self.entries.offered_to(ids):
            ends = [end for end in (holding.get(entry.patient_id), entry.offer_expires_at) if end is not None]
            holding[entry.patient_id] = min(ends) if ends else None
        counts = self.caps.read([caps.key(clinic_id, patient_id, day) for patient_id in ids])
        facts = {}
        for patient_id in ids:
            doc = docs.get(f"{PATIENTS}/{patient_id}")
            patient: Patient | None = None
            if doc is not None:
                try:
                    patient = Patient.from_doc(doc.id, doc.data)
                except InvalidDocument as exc:
                    log.warning("patient breaks the contract; not offered", doc_id=exc.doc_id, field=exc.field)
            facts[patient_id] = PatientFacts(
                patient=patient,
                busy=busy.get(patient_id, []),
                holds_offer=patient_id in holding,
                day_count=counts[caps.key(clinic_id, patient_id, day)],
                hold_ends_at=holding.get(patient_id),
            )
        return facts, counts

    # ------------------------------------------------------------------------------- side effects

    def _patients_of(self, offer: SlotOffer) -> dict[str, str]:
        return dict(zip(offer.offered_entry_ids, offer.offered_patient_ids, strict=False))

    def _enqueue(self, specs: list[TaskSpec]) -> None:
        report = create_all(self.tasks, specs)
        if report.failed:
            log.warning("waitlist tasks not enqueued; retrying", failed=len(report.failed), error=report.failed[0][1])
            raise RetryableError(f"{len(report.failed)} waitlist task(s) not enqueued", code="enqueue_failed")

    def _result_specs(self, offer: SlotOffer, entry_ids: Sequence[str], outcome: Result) -> list[TaskSpec]:
        patients = self._patients_of(offer)
        specs = []
        for entry_id in entry_ids:
            if entry_id in patients:
                task = new_result_task(offer.id, entry_id, offer.clinic_id, patients[entry_id], outcome)
                specs.append(TaskSpec(queue=self.queue, business_key=task.dedup_key, payload=task.to_json()))
        return specs

    def _announce(self, offer: SlotOffer) -> None:
        """The side effects of the advance to offer.wave: offers out, lapsed entries told, window ended later."""
        patients = self._patients_of(offer)
        specs = []
        for entry_id in offer.wave_entry_ids:
            task = new_offer_task(offer.id, entry_id, offer.clinic_id, patients.get(entry_id, ""), offer.wave)
            specs.append(TaskSpec(queue=self.queue, business_key=task.dedup_key, payload=task.to_json()))
        specs += self._result_specs(offer, offer.previous_wave_entry_ids, Result.EXPIRED)
        wave_end = WaveTask(offer.id, offer.clinic_id, offer.wave)
        specs.append(
            TaskSpec(
                queue=self.queue,
                business_key=wave_end.failure_key,
                payload=wave_end.to_json(),
                schedule_time=offer.expires_at,
            )
        )
        self._enqueue(specs)

    def _recheck_waiting(self, offer: SlotOffer) -> None:
        """Entries of `offer` went back to waiting: the clinic's slots of that service waiting for a candidate
        look again now (their wave's task, at once, named apart from the one due at the wave's end)."""
        specs = [
            TaskSpec(
                queue=self.queue,
                business_key=f"{waiting.id}:recheck:{waiting.wave}",
                payload=WaveTask(waiting.id, waiting.clinic_id, waiting.wave).to_json(),
            )
            for waiting in self.offers.waiting_for(offer.clinic_id, offer.service_name)
            if waiting.id != offer.id
        ]
        if specs:
            self._enqueue(specs)

    def settle(self, offer: SlotOffer) -> None:
        """A filled or expired offer: its current wave's other entries released and told, once."""
        others = [entry_id for entry_id in offer.wave_entry_ids if entry_id != offer.winner_entry_id]
        held = [entry for entry in self.entries.read_many(others).values() if entry.holds(offer.id)]
        if held and self.store.commit([self.entries.release_write(entry, offer.id) for entry in held]) is None:
            for entry in held:  # one of them changed since it was read: release each on its own
                self.entries.release(entry.id, offer.id)
        if held:
            self._recheck_waiting(offer)
        if offer.status == State.FILLED:
            window_over = offer.expires_at is None or self.clock.now() >= offer.expires_at - WINDOW_END_SKEW
            specs = self._result_specs(offer, others, Result.TAKEN) if window_over else []
        else:
            specs = self._result_specs(offer, others, Result.EXPIRED)
        if offer.status == State.FILLED and offer.claim_channel == "link" and offer.winner_entry_id:
            specs += self._result_specs(offer, [offer.winner_entry_id], Result.WON)
        self._enqueue(specs)
        if offer.status == State.FILLED and offer.booked_appointment_id and not offer.event_published:
            self.events.created(offer.booked_appointment_id)
            self.offers.mark_published(offer)
