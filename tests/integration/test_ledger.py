"""The ledger's claims on the real Firestore emulator: one winner among concurrent claimers, one rescuer."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared.messaging.ledger import AlreadyFinal, Ledger, dedup_key
from shared.platform.clock import FixedClock, system_clock
from shared.platform.errors import RetryableError

pytestmark = pytest.mark.integration


def race(ledger_for, key: str, claimers: int):
    """`claimers` threads read the ledger doc, wait for each other, then all claim at once."""
    barrier = threading.Barrier(claimers)

    def claim(_):
        ledger = ledger_for()
        current = ledger.read(key)
        barrier.wait()
        try:
            return ledger.claim(key, current)
        except RetryableError as lost:
            return lost

    with ThreadPoolExecutor(max_workers=claimers) as pool:
        return list(pool.map(claim, range(claimers)))


def test_twenty_concurrent_claimers_one_winner(firestore_client):
    key = dedup_key("appointment_reminder", "appt-race", "24h@2026-11-26T14:30:00+00:00")
    assert Ledger(firestore_client, system_clock).schedule(key, {"kind": "appointment_reminder"})
    results = race(lambda: Ledger(firestore_client, system_clock), key, 20)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and winners[0].generation == 1
    assert all(r.code in ("claim_lost", "claim_in_flight") for r in results if isinstance(r, Exception))
    doc = firestore_client.collection("notifications").document(key).get().to_dict()
    assert doc["state"] == "sending" and doc["generation"] == 1 and doc["attempts"] == 1


def test_concurrent_claimers_of_a_missing_doc_one_winner(firestore_client):
    key = dedup_key("booking_confirmation", "appt-race-2", "now")
    results = race(lambda: Ledger(firestore_client, system_clock), key, 20)
    assert sum(not isinstance(r, Exception) for r in results) == 1


def test_scheduling_twice_creates_one_doc(firestore_client):
    ledger = Ledger(firestore_client, system_clock)
    key = dedup_key("appointment_reminder", "appt-1", "2h@x")
    assert ledger.schedule(key, {"kind": "appointment_reminder"}) is True
    assert ledger.schedule(key, {"kind": "appointment_reminder"}) is False


def test_a_live_claim_turns_others_away_until_its_lease_runs_out(firestore_client):
    clock = FixedClock(system_clock.now())
    ledger = Ledger(firestore_client, clock, lease=timedelta(minutes=2))
    key = dedup_key("appointment_reminder", "appt-stale", "24h@x")
    ledger.schedule(key, {})
    ledger.claim(key, ledger.read(key))  # the sender that then crashed
    with pytest.raises(RetryableError) as busy:
        ledger.claim(key, ledger.read(key))
    assert busy.value.code == "claim_in_flight" and 0 < busy.value.retry_after_seconds <= 121


def test_a_stale_sending_claim_is_taken_over_exactly_once(firestore_client):
    start = system_clock.now()
    crashed = Ledger(firestore_client, FixedClock(start))
    key = dedup_key("appointment_reminder", "appt-takeover", "24h@x")
    crashed.schedule(key, {})
    crashed.claim(key, crashed.read(key))
    later = FixedClock(start + timedelta(minutes=3))  # the lease (2 min) has run out
    results = race(lambda: Ledger(firestore_client, later), key, 20)
    rescuers = [r for r in results if not isinstance(r, Exception)]
    assert len(rescuers) == 1 and rescuers[0].took_over and rescuers[0].generation == 2
    doc = firestore_client.collection("notifications").document(key).get().to_dict()
    assert doc["generation"] == 2 and doc["attempts"] == 2


def test_a_sent_message_cannot_be_claimed_again(firestore_client):
    ledger = Ledger(firestore_client, system_clock)
    key = dedup_key("appointment_reminder", "appt-done", "24h@x")
    ledger.schedule(key, {})
    claim = ledger.claim(key, ledger.read(key))
    ledger.mark_sent(claim, channel="sms", provider_message_id="SM1")
    with pytest.raises(AlreadyFinal):
        ledger.claim(key, ledger.read(key))


def test_a_released_claim_can_be_claimed_by_the_retry(firestore_client):
    ledger = Ledger(firestore_client, system_clock)
    key = dedup_key("appointment_reminder", "appt-release", "24h@x")
    ledger.schedule(key, {})
    ledger.release(ledger.claim(key, ledger.read(key)), "twilio_unavailable")
    again = ledger.claim(key, ledger.read(key))
    assert again.generation == 2 and not again.took_over
