"""The waitlist's state machines (slot offers, waitlist entries, daily counts, claims), case by case, written
once and run twice: on the in-memory store (tests/unit/test_waitlist_states.py) and on the Firestore
emulator (tests/integration/test_waitlist_emulator_states.py), so the fake and the real adapter keep one contract."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from shared.platform.store import Store
from shared.waitlist import caps
from shared.waitlist.caps import OfferCaps
from shared.waitlist.claims import Claims
from shared.waitlist.entries import InvalidTransition as EntryTransition
from shared.waitlist.entries import WaitlistEntries
from shared.waitlist.offers import TOLD, InvalidTransition, SlotOffer, SlotOffers, offer_id_for
from tests.waitlist_support import NOW, Scene

CASES: list[Callable[[Store], None]] = []


def case(function: Callable[[Store], None]) -> Callable[[Store], None]:
    CASES.append(function)
    return function


def opened(scene: Scene, **fields: Any) -> SlotOffer:
    """A cancelled slot's offer, opened (wave 0) but offered to nobody yet."""
    appointment = scene.cancelled(**fields)
    data = scene.doc(f"appointments/{appointment}")
    offers = SlotOffers(scene.store, scene.clock)
    offer_id = offer_id_for(appointment, data["start"])
    assert offers.open(
        offer_id,
        clinic_id=scene.clinic_id,
        source_appointment_id=appointment,
        source_patient_id=data["patient_id"],
        start=data["start"],
        end=data["end"],
        provider_id=data["provider_id"],
        service_name=data["service_name"],
        mode="broadcast",
        wave_size=3,
        ttl_minutes=30,
    )
    offer = offers.read(offer_id)
    assert offer is not None
    return offer


def offered(scene: Scene, offer: SlotOffer, count: int) -> tuple[SlotOffer, list[str]]:
    """Advance the offer to wave 1 for `count` new waiting entries, as one commit."""
    offers, entries = SlotOffers(scene.store, scene.clock), WaitlistEntries(scene.store, scene.clock)
    ids = [scene.entry(scene.patient()) for _ in range(count)]
    read = entries.read_many(ids)
    expires = NOW + timedelta(minutes=30)
    writes = [offers.advance_write(offer, [(i, read[i].patient_id) for i in ids], expires_at=expires)]
    writes += [entries.offer_write(read[i], offer_id=offer.id, wave=1, expires_at=expires) for i in ids]
    assert scene.store.commit(writes) is not None
    after = offers.read(offer.id)
    assert after is not None
    return after, ids


@case
def opening_the_same_slot_twice_makes_one_offer(store: Store) -> None:
    scene = Scene(store)
    offer = opened(scene)
    again = SlotOffers(store, scene.clock).open(
        offer.id,
        clinic_id=scene.clinic_id,
        source_appointment_id=offer.source_appointment_id,
        source_patient_id="p",
        start=offer.start,
        end=offer.end,
        provider_id=None,
        service_name="HydraFacial",
        mode="broadcast",
        wave_size=3,
        ttl_minutes=30,
    )
    assert again is False and offer.status == "open" and offer.wave == 0


@case
def an_advance_commits_the_offer_and_its_entries_together(store: Store) -> None:
    scene = Scene(store)
    offer, ids = offered(scene, opened(scene), 2)
    assert offer.wave == 1 and offer.wave_entry_ids == tuple(ids) and offer.offered_entry_ids == tuple(ids)
    for entry_id in ids:
        doc = scene.doc(f"waitlist/{entry_id}")
        assert doc["status"] == "offered" and doc["offer_id"] == offer.id


@case
def an_advance_at_a_stale_version_commits_nothing(store: Store) -> None:
    scene = Scene(store)
    stale = opened(scene)
    offered(scene, stale, 1)  # the offer moved on since `stale` was read
    entries = WaitlistEntries(store, scene.clock)
    late = scene.entry(scene.patient())
    entry = entries.read(late)
    assert entry is not None
    offers = SlotOffers(store, scene.clock)
    expires = NOW + timedelta(minutes=30)
    writes = [
        offers.advance_write(stale, [(late, entry.patient_id)], expires_at=expires),
        entries.offer_write(entry, offer_id=stale.id, wave=1, expires_at=expires),
    ]
    assert store.commit(writes) is None
    assert scene.doc(f"waitlist/{late}")["status"] == "waiting"


@case
def only_an_open_offer_can_be_filled_or_expired(store: Store) -> None:
    scene = Scene(store)
    offers = SlotOffers(store, scene.clock)
    offer = opened(scene)
    assert store.commit([offers.expire_write(offer, "unfilled")]) is not None
    expired = offers.read(offer.id)
    assert expired is not None and expired.status == "expired"
    with pytest.raises(InvalidTransition):
        offers.fill_write(expired, entry_id="e", appointment_id="a", channel="sms")
    with pytest.raises(InvalidTransition):
        offers.advance_write(expired, [], expires_at=NOW)


@case
def a_waiting_offer_is_found_by_its_clinic_and_service_and_waits_at_its_version(store: Store) -> None:
    scene = Scene(store)
    offers = SlotOffers(store, scene.clock)
    offer = opened(scene)
    until = NOW + timedelta(minutes=31)
    assert store.commit([offers.wait_write(offer, until=until)]) is not None
    waiting = offers.read(offer.id)
    assert waiting is not None and waiting.is_open and waiting.waiting and waiting.wave == 1
    assert (waiting.wave_entry_ids, waiting.expires_at) == ((), until)
    assert [o.id for o in offers.waiting_for(scene.clinic_id, offer.service_name)] == [offer.id]
    assert offers.waiting_for(scene.clinic_id, "Botox") == []
    assert store.commit([offers.wait_write(offer, until=until)]) is None  # stale: the offer moved on
    moved, _ = offered(scene, waiting, 1)
    assert not moved.waiting and offers.waiting_for(scene.clinic_id, offer.service_name) == []
    assert store.commit([offers.expire_write(moved, "unfilled")]) is not None
    with pytest.raises(InvalidTransition):
        offers.wait_write(offers.read(offer.id), until=until)  # type: ignore[arg-type]


@case
def a_result_that_told_the_patient_first_is_the_answer_a_claim_hears(store: Store) -> None:
    scene = Scene(store)
    offer, (entry_id,) = offered(scene, opened(scene), 1)
    offers = SlotOffers(store, scene.clock)
    told = offers.record_answer(offer.id, entry_id, outcome="expired", channel=TOLD)
    assert not told.by_patient
    result = scene.claims().claim(offer.id, entry_id, channel="link")
    assert (result.outcome, result.replay) == ("expired", False)
    assert offers.answer(offer.id, entry_id) == told  # nothing new recorded


@case
def an_entry_is_offered_only_while_waiting_and_released_only_by_its_offer(store: Store) -> None:
    scene = Scene(store)
    offer, (entry_id,) = offered(scene, opened(scene), 1)
    entries = WaitlistEntries(store, scene.clock)
    entry = entries.read(entry_id)
    assert entry is not None and entry.holds(offer.id)
    with pytest.raises(EntryTransition):
        entries.offer_write(entry, offer_id="offer-other", wave=1, expires_at=NOW)
    with pytest.raises(EntryTransition):
        entries.release_write(entry, "offer-other")
    assert entries.release(entry_id, "offer-other") is False
    assert entries.release(entry_id, offer.id) is True
    assert entries.release(entry_id, offer.id) is False  # once
    doc = scene.doc(f"waitlist/{entry_id}")
    assert doc["status"] == "waiting" and doc["offer_id"] is None and doc["last_offer_id"] == offer.id


@case
def a_removed_entry_is_never_offered(store: Store) -> None:
    scene = Scene(store)
    entries = WaitlistEntries(store, scene.clock)
    entry = entries.read(scene.entry(scene.patient(), status="removed"))
    assert entry is not None
    with pytest.raises(EntryTransition):
        entries.offer_write(entry, offer_id="offer-x", wave=1, expires_at=NOW)


@case
def an_answer_is_recorded_once(store: Store) -> None:
    scene = Scene(store)
    offers = SlotOffers(store, scene.clock)
    offer = opened(scene)
    first = offers.record_answer(offer.id, "entry-1", outcome="taken", channel="sms")
    second = offers.record_answer(offer.id, "entry-1", outcome="won", channel="link")
    assert (first.outcome, second.outcome, second.channel) == ("taken", "taken", "sms")
    assert set(offers.answers(offer.id, ["entry-1", "entry-2"])) == {"entry-1"}


@case
def a_daily_count_is_created_then_grows_at_its_version(store: Store) -> None:
    scene = Scene(store)
    counts = OfferCaps(store, scene.clock)
    key = caps.key(scene.clinic_id, "pat-1", NOW.date())
    fresh = counts.read([key])[key]
    assert fresh.version is None and fresh.count_without("offer-a") == 0
    first = counts.add_write(fresh, "offer-a", clinic_id=scene.clinic_id, patient_id="pat-1", day=NOW.date())
    assert first is not None and store.commit([first]) is not None
    racing = counts.add_write(fresh, "offer-b", clinic_id=scene.clinic_id, patient_id="pat-1", day=NOW.date())
    assert racing is not None and store.commit([racing]) is None  # created meanwhile: decide again
    now = counts.read([key])[key]
    assert (
        now.offer_ids == ("offer-a",)
        and counts.add_write(now, "offer-a", clinic_id="c", patient_id="p", day=NOW.date()) is None
    )
    grown = counts.add_write(now, "offer-b", clinic_id=scene.clinic_id, patient_id="pat-1", day=NOW.date())
    assert grown is not None and store.commit([grown]) is not None
    assert counts.read([key])[key].offer_ids == ("offer-a", "offer-b")


def _race(claimers: int, claim: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(claimers)

    def one(index: int) -> Any:
        barrier.wait()
        return claim(index)

    with ThreadPoolExecutor(max_workers=claimers) as pool:
        return list(pool.map(one, range(claimers)))


@case
def concurrent_claims_make_exactly_one_winner(store: Store) -> None:
    scene = Scene(store)
    offer, ids = offered(scene, opened(scene), 8)
    results = _race(len(ids), lambda i: scene.claims().claim(offer.id, ids[i], channel="sms").outcome)
    assert sorted(results) == ["taken"] * 7 + ["won"]
    winner = ids[results.index("won")]
    after = SlotOffers(store, scene.clock).read(offer.id)
    assert after is not None and after.status == "filled" and after.winner_entry_id == winner
    booked = scene.doc(f"appointments/{after.booked_appointment_id}")
    assert (
        booked["status"] == "booked" and booked["waitlist_entry_id"] == winner and booked["slot_offer_id"] == offer.id
    )
    assert scene.doc(f"waitlist/{winner}")["status"] == "booked"
    assert store.count("appointments", where=[("slot_offer_id", "==", offer.id)]) == 1


@case
def the_same_entry_claiming_twice_at_once_wins_once(store: Store) -> None:
    scene = Scene(store)
    offer, (entry_id,) = offered(scene, opened(scene), 1)
    results = _race(4, lambda _: scene.claims().claim(offer.id, entry_id, channel="sms"))
    assert {r.outcome for r in results} == {"won"} and sum(not r.replay for r in results) == 1
    assert store.count("appointments", where=[("slot_offer_id", "==", offer.id)]) == 1


def two_overlapping_offers(scene: Scene) -> tuple[str, list[tuple[str, str]]]:
    """One patient on the list twice, offered two slots at the same time: (patient, [(offer, entry)] × 2)."""
    store, patient = scene.store, scene.patient()
    first, second = opened(scene), opened(scene)  # the same time, two providers' cancellations
    entries, offers = WaitlistEntries(store, scene.clock), SlotOffers(store, scene.clock)
    expires = NOW + timedelta(minutes=30)
    claims = []
    for offer in (first, second):
        entry_id = scene.entry(patient)
        entry = entries.read(entry_id)
        assert entry is not None
        writes = [
            offers.advance_write(offer, [(entry_id, patient)], expires_at=expires),
            entries.offer_write(entry, offer_id=offer.id, wave=1, expires_at=expires),
        ]
        assert store.commit(writes) is not None
        claims.append((offer.id, entry_id))
    return patient, claims


@case
def one_patient_never_wins_two_overlapping_slots(store: Store) -> None:
    scene = Scene(store)
    patient, claims = two_overlapping_offers(scene)
    service: Claims = scene.claims()
    results = _race(2, lambda i: service.claim(claims[i][0], claims[i][1], channel="link").outcome)
    assert sorted(results) == ["conflict", "won"], results
    booked = [doc for doc in store.query("appointments", where=[("patient_id", "==", patient)])]
    assert len(booked) == 1
