"""Opening an offer on a cancellation and moving it wave by wave, on the in-memory store and recording fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.contract.events import AppointmentEvent, EventRejected
from shared.platform.errors import InvalidDocument, PermanentError, RetryableError
from shared.tasks.queue import TaskSpec
from shared.waitlist.cancellations import open_offer
from shared.waitlist.tasks import WaveTask, offer_key, result_key
from shared.waitlist.waves import MAX_WAVE_SIZE, settle_spec
from tests.bodies import parse_task
from tests.fakes import MemoryStore
from tests.waitlist_support import ATTEMPT, NOW, Scene


@pytest.fixture
def scene() -> Scene:
    return Scene(MemoryStore())


def entries_of(scene: Scene, *statuses: str) -> dict[str, str]:
    assert isinstance(scene.store, MemoryStore)  # the unit scene's store
    return {i: d["status"] for i, d in scene.store.docs("waitlist").items() if not statuses or d["status"] in statuses}


def test_a_cancellation_offers_the_slot_to_the_first_wave_first_come_first_served(scene):
    entries = [scene.entry(scene.patient()) for _ in range(5)]
    appointment = scene.cancelled()
    opened = scene.open(appointment)
    offer = scene.offer_of(appointment)
    assert opened.outcome == "opened" and offer.status == "open" and offer.wave == 1
    assert offer.wave_entry_ids == tuple(entries[:3])  # wave_size 3, oldest entries first
    assert offer.expires_at == NOW + timedelta(minutes=30)
    assert [t["entry_id"] for t in scene.tasks("waitlist_offer")] == entries[:3]
    (wave,) = [spec for spec in scene.queue.created if spec.payload["type"] == "waitlist_wave"]
    assert wave.schedule_time == offer.expires_at and wave.payload["wave"] == 1
    assert entries_of(scene, "offered") == dict.fromkeys(entries[:3], "offered")


def test_the_same_cancellation_three_times_is_one_offer_and_one_set_of_tasks(scene):
    for _ in range(4):
        scene.entry(scene.patient())
    appointment = scene.cancelled()
    outcomes = [scene.open(appointment).outcome for _ in range(3)]
    assert outcomes == ["opened", "reopened", "reopened"]
    assert len(scene.store.docs("slot_offers")) == 1
    assert len(scene.tasks("waitlist_offer")) == 3 and len(scene.tasks("waitlist_wave")) == 1
    assert len(entries_of(scene, "offered")) == 3


def test_sequential_mode_offers_one_patient_at_a_time_and_moves_on_when_the_window_ends():
    scene = Scene(MemoryStore(), mode="sequential", wave_size=5)
    first, second = scene.entry(scene.patient()), scene.entry(scene.patient())
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    assert offer.wave_entry_ids == (first,) and offer.wave_size == 1
    scene.clock.advance(minutes=30)
    outcome = scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)
    offer = scene.offer_of(appointment)
    assert outcome.reason == "wave_2_offered_1" and offer.wave_entry_ids == (second,)
    assert entries_of(scene) == {first: "waiting", second: "offered"}
    expired = [t for t in scene.tasks("waitlist_result") if t["outcome"] == "expired"]
    assert [t["entry_id"] for t in expired] == [first]


def test_an_offer_nobody_takes_expires_and_its_entries_wait_again(scene):
    entries = [scene.entry(scene.patient()) for _ in range(2)]
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    scene.clock.advance(minutes=30)
    outcome = scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)
    offer = scene.offer_of(appointment)
    assert outcome.reason == "expired_unfilled" and offer.status == "expired"
    assert entries_of(scene) == dict.fromkeys(entries, "waiting")
    assert sorted(t["entry_id"] for t in scene.tasks("waitlist_result")) == sorted(entries)
    assert {t["outcome"] for t in scene.tasks("waitlist_result")} == {"expired"}


def test_a_slot_with_no_candidates_expires_at_once(scene):
    scene.entry(scene.patient(), service_name="Botox")
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    assert offer.status == "expired" and scene.doc(f"slot_offers/{offer.id}")["expired_reason"] == "no_candidates"
    assert scene.queue.created == []


def two_slots_one_candidate(scene: Scene):
    """One waiting patient, two cancelled slots at the same time: the first is offered to them, the second
    finds its only candidate holding the first. Returns (entry, first offer, second offer)."""
    entry = scene.entry(scene.patient())
    first = scene.cancelled()
    scene.open(first)
    second = scene.cancelled(start=scene.doc(f"appointments/{first}")["start"])
    scene.open(second)
    return entry, scene.offer_of(first), scene.offer_of(second)


def test_a_slot_whose_only_candidate_holds_another_offer_waits_for_that_hold_to_end(scene):
    entry, first, second = two_slots_one_candidate(scene)
    assert first.wave_entry_ids == (entry,) and first.expires_at is not None
    assert second.status == "open" and second.wave_entry_ids == ()  # waiting, not expired
    assert scene.doc(f"slot_offers/{second.id}")["waiting"] is True
    assert second.expires_at is not None and first.expires_at < second.expires_at <= first.expires_at + timedelta(
        minutes=2
    )
    (recheck,) = [
        s for s in scene.queue.created if s.payload == WaveTask(second.id, scene.clinic_id, second.wave).to_json()
    ]
    assert recheck.schedule_time == second.expires_at


def test_when_the_other_offer_lapses_the_waiting_slot_is_offered_to_the_freed_candidate(scene):
    entry, first, second = two_slots_one_candidate(scene)
    waves = scene.waves()
    scene.clock.instant = first.expires_at
    assert waves.handle(WaveTask(first.id, scene.clinic_id, 1), ATTEMPT).reason == "expired_unfilled"
    assert scene.doc(f"waitlist/{entry}")["status"] == "waiting"
    scene.clock.instant = second.expires_at
    waves.handle(WaveTask(second.id, scene.clinic_id, second.wave), ATTEMPT)
    again = scene.offer_by_id(second.id)
    assert again.status == "open" and again.wave_entry_ids == (entry,)
    assert scene.doc(f"waitlist/{entry}")["offer_id"] == second.id
    assert scene.doc(f"slot_offers/{second.id}")["waiting"] is False
    assert [t["offer_id"] for t in scene.tasks("waitlist_offer")] == [first.id, second.id]


def test_when_the_other_offer_fills_with_someone_else_the_waiting_slot_is_rechecked_at_once(scene):
    freed, rival = scene.entry(scene.patient()), scene.entry(scene.patient())
    first = scene.cancelled()
    scene.open(first)  # offered to both
    second = scene.cancelled(start=scene.doc(f"appointments/{first}")["start"])
    scene.open(second)  # both hold the first: waiting
    waiting = scene.offer_of(second)
    assert waiting.status == "open" and waiting.wave_entry_ids == ()
    offer = scene.offer_of(first)
    assert scene.claims().claim(offer.id, rival, channel="sms").outcome == "won"
    waves = scene.waves()
    waves.handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)  # the settle after the win releases `freed`
    now = WaveTask(waiting.id, scene.clinic_id, waiting.wave).to_json()
    assert [s.schedule_time for s in scene.queue.created if s.payload == now] == [waiting.expires_at, None]
    waves.handle(WaveTask(waiting.id, scene.clinic_id, waiting.wave), ATTEMPT)  # that task, at once
    assert scene.offer_of(second).wave_entry_ids == (freed,)  # the rival is booked at that time


def test_a_waiting_slot_expires_when_its_candidate_books_the_other_one(scene):
    entry, first, second = two_slots_one_candidate(scene)
    assert scene.claims().claim(first.id, entry, channel="sms").outcome == "won"
    scene.waves().handle(WaveTask(first.id, scene.clinic_id, 1), ATTEMPT)
    scene.clock.instant = second.expires_at
    scene.waves().handle(WaveTask(second.id, scene.clinic_id, second.wave), ATTEMPT)
    after = scene.offer_by_id(second.id)
    assert after.status == "expired" and scene.doc(f"slot_offers/{second.id}")["expired_reason"] == "no_candidates"


def test_a_waiting_slot_never_waits_past_its_last_useful_moment(scene):
    # the other offer's window runs to the first slot's closing time: the wait ends then, and so does the slot
    entry, first, second = two_slots_one_candidate(scene)
    scene.clock.instant = first.expires_at
    scene.waves().handle(WaveTask(first.id, scene.clinic_id, 1), ATTEMPT)
    scene.entry(scene.patient(), service_name="Botox")
    scene.store.update(f"waitlist/{entry}", {"status": "removed"})
    scene.clock.instant = second.expires_at
    scene.waves().handle(WaveTask(second.id, scene.clinic_id, second.wave), ATTEMPT)
    assert scene.offer_by_id(second.id).status == "expired"


@pytest.mark.parametrize(
    ("start", "reason"), [(timedelta(hours=1), "too_soon"), (timedelta(hours=-1), "past")], ids=["soon", "past"]
)
def test_a_slot_too_soon_or_past_is_not_offered(scene, start, reason):
    scene.entry(scene.patient())
    opened = scene.open(scene.cancelled(start=NOW + start))
    assert (opened.outcome, opened.reason) == ("ignored", reason)
    assert scene.store.docs("slot_offers") == {}


def test_other_events_and_appointments_not_cancelled_change_nothing(scene):
    appointment = scene.appointment(scene.patient())
    waves = scene.waves()
    assert open_offer(AppointmentEvent("appointment.created", appointment), waves, now=NOW).reason == "event_created"
    assert open_offer(AppointmentEvent("appointment.cancelled", appointment), waves, now=NOW).reason == "status_booked"
    with pytest.raises(EventRejected):
        open_offer(AppointmentEvent("appointment.cancelled", "appt-missing"), waves, now=NOW)
    scene.store.put("appointments/bad", {"clinic_id": scene.clinic_id, "status": "cancelled"})
    with pytest.raises(InvalidDocument):
        open_offer(AppointmentEvent("appointment.cancelled", "bad"), waves, now=NOW)
    assert scene.store.docs("slot_offers") == {}


def test_a_cancellation_at_an_unknown_clinic_is_rejected(scene):
    appointment = scene.appointment(scene.patient(), status="cancelled", clinic_id="clinic-gone")
    with pytest.raises(PermanentError) as raised:
        scene.open(appointment)
    assert raised.value.code == "clinic_missing"


@pytest.mark.parametrize(
    ("entry_fields", "patient_fields"),
    [
        ({"provider_id": "dr-b"}, {}),
        ({"earliest": NOW + timedelta(days=3)}, {}),
        ({"latest": NOW + timedelta(days=1, minutes=30)}, {}),
        ({"status": "removed"}, {}),
        ({"clinic_id": "clinic-other"}, {}),
        ({}, {"sms_opt_out": True, "email_opt_out": True}),
        ({}, {"phone": None, "email": None}),
    ],
    ids=["other_provider", "window_starts_later", "window_ends_sooner", "removed", "other_clinic", "opted_out", "none"],
)
def test_entries_that_do_not_fit_the_slot_are_not_offered(scene, entry_fields, patient_fields):
    scene.entry(scene.patient(**patient_fields), **entry_fields)
    fits = scene.entry(scene.patient(), provider_id="dr-a")
    appointment = scene.cancelled()
    scene.open(appointment)
    assert scene.offer_of(appointment).wave_entry_ids == (fits,)


def test_a_patient_busy_then_holding_another_offer_at_the_cap_or_who_freed_it_is_skipped(scene):
    busy = scene.patient()
    scene.appointment(busy, start=NOW + timedelta(days=1, minutes=30), service_name="Botox")
    scene.entry(busy)
    holding = scene.patient()
    scene.entry(holding, status="offered", offer_id="offer-elsewhere")
    scene.entry(holding)
    capped = scene.patient()
    scene.entry(capped)
    scene.store.put(  # three offers today already: the clinic's default cap
        f"waitlist_offer_counts/{scene.clinic_id}:{capped}:{NOW.date().isoformat()}",
        {"offer_ids": ["offer-1", "offer-2", "offer-3"]},
    )
    freed = scene.patient()
    scene.entry(freed)
    fits = scene.entry(scene.patient())
    appointment = scene.appointment(freed, status="cancelled")
    scene.open(appointment)
    assert scene.offer_of(appointment).wave_entry_ids == (fits,)


def test_one_entry_per_patient_per_offer_and_the_daily_count_grows(scene):
    patient = scene.patient()
    first, _second = scene.entry(patient), scene.entry(patient)
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    assert offer.wave_entry_ids == (first,)
    count = scene.doc(f"waitlist_offer_counts/{scene.clinic_id}:{patient}:{NOW.date().isoformat()}")
    assert count["offer_ids"] == [offer.id]


def test_a_later_wave_skips_patients_offered_earlier(scene):
    patient = scene.patient()
    scene.entry(patient)
    other = scene.entry(scene.patient())
    appointment = scene.cancelled()
    scene.store.put(
        f"clinics/{scene.clinic_id}", {**scene.doc(f"clinics/{scene.clinic_id}"), "waitlist": {"wave_size": 1}}
    )
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    scene.entry(patient)  # the same patient joins again with another entry
    scene.clock.advance(minutes=30)
    scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)
    assert scene.offer_of(appointment).wave_entry_ids == (other,)


def test_a_filled_offer_is_settled_once_others_released_and_told_and_the_booking_published(scene):
    entries = [scene.entry(scene.patient()) for _ in range(3)]
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    assert scene.claims().claim(offer.id, entries[1], channel="link").outcome == "won"
    filled = scene.offer_of(appointment)
    waves = scene.waves()
    assert waves.handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT).reason == "settled_filled"  # the settle
    assert entries_of(scene) == {entries[0]: "waiting", entries[1]: "booked", entries[2]: "waiting"}
    results = {t["entry_id"]: t["outcome"] for t in scene.tasks("waitlist_result")}
    assert results == {entries[1]: "won"}  # "taken" waits for the window's end: answers may be on their way
    scene.clock.advance(minutes=30)
    for _ in range(2):  # the window's end, delivered twice
        assert waves.handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT).reason == "settled_filled"
    results = {t["entry_id"]: t["outcome"] for t in scene.tasks("waitlist_result")}
    assert results == {entries[0]: "taken", entries[2]: "taken", entries[1]: "won"}
    assert len(scene.tasks("waitlist_result")) == 3
    assert scene.events.published == [filled.booked_appointment_id]  # inline once; settle sees it marked
    settles = [s for s in scene.queue.created if s.business_key == f"{offer.id}:settle"]
    assert len(settles) == 1


def test_the_settle_publishes_when_the_claim_could_not(scene):
    entry = scene.entry(scene.patient())
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    scene.events.fail = 1
    assert scene.claims().claim(offer.id, entry, channel="sms").outcome == "won"
    assert scene.events.published == []
    scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)
    assert scene.events.published == [scene.offer_of(appointment).booked_appointment_id]
    assert [t for t in scene.tasks("waitlist_result") if t["outcome"] == "won"] == []  # the SMS reply said so


def test_a_crashed_advance_is_finished_by_the_retried_task(scene):
    entries = [scene.entry(scene.patient()) for _ in range(2)]
    appointment = scene.cancelled()
    scene.queue.fail_keys.add(offer_key(_offer_id(scene, appointment), entries[0]))
    with pytest.raises(RetryableError):
        scene.open(appointment)
    offer = scene.offer_of(appointment)
    assert offer.wave == 1  # committed; one task missing
    scene.queue.fail_keys.clear()
    assert scene.open(appointment).reason == "already_advanced"
    assert sorted(t["entry_id"] for t in scene.tasks("waitlist_offer")) == sorted(entries)


def test_a_stale_or_missing_wave_task_changes_nothing(scene):
    scene.entry(scene.patient())
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    waves = scene.waves()
    assert waves.handle(WaveTask(offer.id, scene.clinic_id, 7), ATTEMPT).reason == "wave_not_reached"
    assert waves.handle(WaveTask("offer-" + "0" * 40, scene.clinic_id, 1), ATTEMPT).reason == "offer_missing"
    assert scene.offer_of(appointment).wave == 1


def test_the_window_never_runs_past_the_lead_time(scene):
    scene.entry(scene.patient())
    appointment = scene.cancelled(start=NOW + timedelta(hours=2, minutes=10))
    scene.open(appointment)
    assert scene.offer_of(appointment).expires_at == NOW + timedelta(minutes=10)


def test_wave_sizes_are_capped(scene):
    scene.store.put(
        f"clinics/{scene.clinic_id}",
        {**scene.doc(f"clinics/{scene.clinic_id}"), "waitlist": {"wave_size": 10_000}},
    )
    for _ in range(3):
        scene.entry(scene.patient())
    appointment = scene.cancelled()
    scene.open(appointment)
    assert len(scene.offer_of(appointment).wave_entry_ids) == 3 <= MAX_WAVE_SIZE


def test_wave_task_bodies_parse_and_refuse():
    task = WaveTask("offer-1", "clinic-1", 2)
    assert parse_task(task.to_json(), WaveTask) == task and task.failure_key == "offer-1:wave:2"
    for body in (
        {**task.to_json(), "wave": -1},
        {**task.to_json(), "wave": None},
        {**task.to_json(), "extra": "x"},
        {**task.to_json(), "type": "waitlist_offer"},
        {**task.to_json(), "offer_id": "a/b"},
    ):
        with pytest.raises(PermanentError):
            parse_task(body, WaveTask)


def test_the_settle_spec_is_named_once_per_offer(scene):
    scene.entry(scene.patient())
    appointment = scene.cancelled()
    scene.open(appointment)
    spec: TaskSpec = settle_spec("waitlist", scene.offer_of(appointment))
    assert spec.business_key.endswith(":settle") and spec.schedule_time is None


def test_a_result_key_is_one_per_offer_and_entry():
    assert result_key("o", "e") == result_key("o", "e") != result_key("o", "f")


def _offer_id(scene: Scene, appointment: str) -> str:
    from shared.waitlist.offers import offer_id_for

    return offer_id_for(appointment, scene.doc(f"appointments/{appointment}")["start"])


def test_a_settle_racing_a_change_to_one_entry_still_releases_each(scene):
    entries = [scene.entry(scene.patient()) for _ in range(3)]
    appointment = scene.cancelled()
    scene.open(appointment)
    offer = scene.offer_of(appointment)
    scene.claims().claim(offer.id, entries[0], channel="sms")
    rivals = [entries[1]]

    def rival_writes_first(writes):
        if rivals:  # the booking platform edits an entry just as the batch of releases commits
            scene.store.update(f"waitlist/{rivals.pop()}", {"note": "edited by the front desk"})

    scene.store.on_commit = rival_writes_first
    scene.waves().settle(scene.offer_of(appointment))
    assert entries_of(scene) == {entries[0]: "booked", entries[1]: "waiting", entries[2]: "waiting"}
