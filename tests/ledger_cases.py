"""The ledger's state machine, case by case, written once and run twice: on the in-memory store (unit,
tests/unit/test_ledger.py) and on the Firestore emulator (tests/integration/test_ledger.py), so the fake
and the real adapter are held to the same contract."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from shared.messaging.keys import dedup_key
from shared.messaging.ledger import AlreadyDone, Claim, Entry, Ledger, Planned, StaleClaim, State
from shared.platform.errors import InvalidDocument, RetryableError
from shared.platform.store import Store
from shared.tasks.declaration import Reopen
from tests.fakes import FixedClock

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
CASES: list[Callable[[Store], None]] = []
SID, OTHER_SID = "SM" + "a" * 32, "SM" + "b" * 32


def case(function: Callable[[Store], None]) -> Callable[[Store], None]:
    CASES.append(function)
    return function


def key_of(name: str) -> str:
    return dedup_key("appointment_reminder", name, "24h@2026-11-26T14:30:00+00:00")


def ledger_at(store: Store, when: datetime = NOW, **kwargs: Any) -> Ledger:
    return Ledger(store, FixedClock(when), **kwargs)


def scheduled(store: Store, name: str) -> tuple[Ledger, str]:
    ledger, key = ledger_at(store), key_of(name)
    created, _ = ledger.schedule([Planned(key, {"kind": "appointment_reminder"})])
    assert created == {key}
    return ledger, key


def state(store: Store, key: str) -> dict[str, Any]:
    doc = store.get(f"notifications/{key}")
    assert doc is not None
    return doc.data


def entry(ledger: Ledger, key: str) -> Entry:
    """The ledger doc as a sender reads it, which the case expects to be there."""
    found = ledger.read(key)
    assert found is not None
    return found


def race(ledger_for: Callable[[], Ledger], key: str, claimers: int) -> list[Claim | RetryableError]:
    """`claimers` threads read the ledger doc, wait for each other, then all claim at once."""
    barrier = threading.Barrier(claimers)

    def claim(_: int) -> Claim | RetryableError:
        ledger = ledger_for()
        current = ledger.read(key)
        barrier.wait()
        try:
            return ledger.claim(key, current, {})
        except RetryableError as lost:
            return lost

    with ThreadPoolExecutor(max_workers=claimers) as pool:
        return list(pool.map(claim, range(claimers)))


@case
def scheduling_twice_creates_one_doc(store: Store) -> None:
    ledger, key = scheduled(store, "sched-twice")
    created, existing = ledger.schedule([Planned(key, {"kind": "appointment_reminder"})])
    assert created == set() and existing[key].state == State.SCHEDULED


@case
def a_batch_meeting_one_existing_doc_still_creates_the_others(store: Store) -> None:
    ledger, old = scheduled(store, "batch-old")
    new = [key_of(f"batch-new-{i}") for i in range(5)]
    created, existing = ledger.schedule([Planned(k, {"kind": "appointment_reminder"}) for k in [old, *new]])
    assert created == set(new) and set(existing) == {old}


@case
def a_skipped_message_is_recorded_with_its_reason(store: Store) -> None:
    ledger, key = ledger_at(store), key_of("skipped-past")
    ledger.schedule([Planned(key, {"kind": "appointment_reminder"}, skipped_reason="past")])
    assert state(store, key)["state"] == "skipped" and state(store, key)["reason"] == "past"


@case
def twenty_concurrent_claimers_one_winner(store: Store) -> None:
    _, key = scheduled(store, "race")
    results = race(lambda: ledger_at(store), key, 20)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and winners[0].generation == 1
    assert all(r.code in ("claim_lost", "claim_in_flight") for r in results if isinstance(r, Exception))
    doc = state(store, key)
    assert doc["state"] == "sending" and doc["generation"] == 1 and doc["attempts"] == 1


@case
def concurrent_claimers_of_a_missing_doc_one_winner(store: Store) -> None:
    results = race(lambda: ledger_at(store), key_of("race-missing"), 20)
    assert sum(not isinstance(r, Exception) for r in results) == 1


@case
def a_live_claim_turns_others_away_until_its_lease_runs_out(store: Store) -> None:
    ledger, key = scheduled(store, "live")
    ledger.claim(key, ledger.read(key), {})  # the sender that then crashed
    with pytest.raises(RetryableError) as busy:
        ledger.claim(key, ledger.read(key), {})
    assert busy.value.code == "claim_in_flight" and 0 < busy.value.retry_after_seconds <= 121


@case
def a_stale_sending_claim_is_taken_over_exactly_once(store: Store) -> None:
    crashed, key = scheduled(store, "takeover")
    crashed.claim(key, crashed.read(key), {})
    results = race(lambda: ledger_at(store, NOW + timedelta(minutes=3)), key, 20)  # the 2 min lease ran out
    rescuers = [r for r in results if not isinstance(r, Exception)]
    assert len(rescuers) == 1 and rescuers[0].took_over and rescuers[0].generation == 2
    assert state(store, key)["generation"] == 2 and state(store, key)["attempts"] == 2


@case
def a_stale_sender_finishing_after_a_takeover_cannot_overwrite_the_rescuers_result(store: Store) -> None:
    slow, key = scheduled(store, "stale-sender")
    first = slow.claim(key, slow.read(key), {})
    rescuer = ledger_at(store, NOW + timedelta(minutes=3))
    second = rescuer.claim(key, rescuer.read(key), {})
    rescuer.mark_sent(second, channel="sms", provider_message_id=SID)
    for late in (
        lambda: slow.mark_sent(first, channel="sms", provider_message_id=OTHER_SID),
        lambda: slow.fail(first, "twilio_unavailable"),
        lambda: slow.release(first, "twilio_unavailable"),
    ):
        with pytest.raises(StaleClaim):
            late()
    doc = state(store, key)
    assert doc["state"] == "sent" and doc["provider_message_id"] == SID and doc["generation"] == 2


@case
def a_sent_message_cannot_be_claimed_again(store: Store) -> None:
    ledger, key = scheduled(store, "done")
    claim = ledger.claim(key, ledger.read(key), {})
    ledger.mark_sent(claim, channel="sms", provider_message_id=SID)
    with pytest.raises(AlreadyDone):
        ledger.claim(key, ledger.read(key), {})


@case
def a_released_claim_can_be_claimed_by_the_retry(store: Store) -> None:
    ledger, key = scheduled(store, "release")
    ledger.release(ledger.claim(key, ledger.read(key), {}), "twilio_unavailable")
    assert state(store, key)["state"] == "scheduled" and state(store, key)["reason"] == "twilio_unavailable"
    again = ledger.claim(key, ledger.read(key), {})
    assert again.generation == 2 and not again.took_over


@case
def success_clears_the_last_transient_reason_and_the_last_attempt_fails_for_good(store: Store) -> None:
    ledger, key = scheduled(store, "reason")
    ledger.release(ledger.claim(key, ledger.read(key), {}), "twilio_unavailable")
    ledger.mark_sent(ledger.claim(key, ledger.read(key), {}), channel="sms", provider_message_id=SID)
    assert state(store, key)["reason"] is None
    other, failing = scheduled(store, "last-attempt")
    other.fail(other.claim(failing, other.read(failing), {}), "twilio_unavailable")
    assert state(store, failing)["state"] == "failed" and state(store, failing)["reason"] == "twilio_unavailable"


@case
def a_skip_never_overrides_a_send(store: Store) -> None:
    ledger, key = scheduled(store, "skip-after-send")
    entry = ledger.read(key)
    ledger.mark_sent(ledger.claim(key, entry, {}), channel="sms", provider_message_id=SID)
    assert ledger.skip(key, entry, "cancelled", {}) == State.SENT  # read before the send: still refused
    assert state(store, key)["state"] == "sent"


@case
def the_sweep_cannot_reopen_a_live_claim_and_reopens_a_failure(store: Store) -> None:
    ledger, key = scheduled(store, "reopen")
    claim = ledger.claim(key, ledger.read(key), {})
    assert ledger.reopen(key) == Reopen.IN_FLIGHT
    assert state(store, key)["state"] == "sending" and state(store, key)["generation"] == 1
    ledger.fail(claim, "invalid_number")
    assert ledger.reopen(key) == Reopen.REOPENED and state(store, key)["state"] == "scheduled"
    ledger.mark_sent(ledger.claim(key, ledger.read(key), {}), channel="email", provider_message_id="e-1")
    assert ledger.reopen(key) == Reopen.ALREADY_DONE and state(store, key)["state"] == "sent"


@case
def callbacks_only_advance_and_replays_change_nothing(store: Store) -> None:
    ledger, key = scheduled(store, "advance")
    ledger.mark_sent(ledger.claim(key, ledger.read(key), {}), channel="sms", provider_message_id=SID)
    assert ledger.record_delivery(key, generation=1, message_id=SID, status="sent", error_code=None) == "sent"
    touched = state(store, key)["updated_at"]
    assert ledger.record_delivery(key, generation=1, message_id=SID, status="queued", error_code=None) == "not_newer"
    assert ledger.record_delivery(key, generation=1, message_id=SID, status="sent", error_code=None) == "not_newer"
    assert state(store, key)["delivery_status"] == "sent" and state(store, key)["updated_at"] == touched
    assert ledger.record_delivery(key, generation=1, message_id=SID, status="delivered", error_code=None) == "delivered"


@case
def a_callback_never_moves_a_closed_state(store: Store) -> None:
    ledger, key = scheduled(store, "closed")
    ledger.mark_sent(ledger.claim(key, ledger.read(key), {}), channel="sms", provider_message_id=SID)
    ledger.record_delivery(key, generation=1, message_id=SID, status="undelivered", error_code="30003")
    assert state(store, key)["state"] == "failed" and state(store, key)["reason"] == "provider_30003"
    for status in ("delivered", "sent", "queued", "failed"):
        assert ledger.record_delivery(key, generation=1, message_id=SID, status=status, error_code=None) == (
            "ignored_failed"
        )
    skipped = key_of("closed-skipped")
    ledger.schedule([Planned(skipped, {}, skipped_reason="cancelled")])
    assert (
        ledger.record_delivery(skipped, generation=1, message_id=SID, status="delivered", error_code=None)
        == "ignored_skipped"
    )
    assert state(store, skipped)["state"] == "skipped"


@case
def a_final_callback_that_overtakes_our_sent_write_still_lands(store: Store) -> None:
    ledger, key = scheduled(store, "overtaken")
    claim = ledger.claim(key, ledger.read(key), {})
    assert ledger.record_delivery(key, generation=1, message_id=SID, status="delivered", error_code=None) == "sending"
    ledger.mark_sent(claim, channel="sms", provider_message_id=SID)
    assert state(store, key)["state"] == "delivered"


@case
def a_callback_for_an_unconfirmed_send_confirms_it(store: Store) -> None:
    ledger, key = scheduled(store, "unconfirmed")
    claim = ledger.claim(key, ledger.read(key), {})
    ledger.mark_unconfirmed(claim, channel="sms", reason="twilio_answer_lost")
    assert state(store, key)["state"] == "unconfirmed"
    assert ledger.record_delivery(key, generation=2, message_id=SID, status="queued", error_code=None) == (
        "unconfirmed"
    )  # not this attempt's generation: no evidence for it
    assert ledger.record_delivery(key, generation=1, message_id=SID, status="sent", error_code=None) == "sent"
    doc = state(store, key)
    assert doc["provider_message_id"] == SID and doc["reason"] is None


@case
def a_callback_for_an_earlier_attempts_message_is_ignored(store: Store) -> None:
    ledger, key = scheduled(store, "earlier")
    ledger.mark_sent(ledger.claim(key, ledger.read(key), {}), channel="sms", provider_message_id=SID)
    assert (
        ledger.record_delivery(key, generation=1, message_id=OTHER_SID, status="delivered", error_code=None)
        == "other_message"
    )
    assert (
        ledger.record_delivery(key_of("nothing-here"), generation=1, message_id=SID, status="sent", error_code=None)
        == "unknown_ledger"
    )


@case
def a_crashed_senders_message_found_later_is_confirmed_not_sent_again(store: Store) -> None:
    crashed, key = scheduled(store, "crashed-sender")
    crashed.claim(key, crashed.read(key), {})  # sent, then died before writing "sent"
    live = ledger_at(store, NOW + timedelta(minutes=1))
    assert not live.confirm(entry(live, key), channel="sms", provider_message_id=SID)  # its lease still holds
    rescuer = ledger_at(store, NOW + timedelta(minutes=3))
    assert rescuer.confirm(entry(rescuer, key), channel="sms", provider_message_id=SID)
    assert state(store, key)["state"] == "sent" and state(store, key)["generation"] == 1


@case
def a_confirmation_applies_the_final_status_already_recorded(store: Store) -> None:
    ledger, key = scheduled(store, "confirm-final")
    claim = ledger.claim(key, ledger.read(key), {})
    ledger.mark_unconfirmed(claim, channel="sms", reason="twilio_answer_lost")
    ledger.record_delivery(key, generation=2, message_id=SID, status="delivered", error_code=None)  # not ours
    assert ledger.confirm(entry(ledger, key), channel="sms", provider_message_id=SID)
    assert state(store, key)["state"] == "delivered"


# Hand edits that break the ledger doc's contract, each with the field its InvalidDocument names.
BROKEN: tuple[tuple[dict[str, Any], str], ...] = (
    ({"state": "sent_by_hand"}, "state"),
    ({}, "state"),
    ({"state": "sending", "generation": "2"}, "generation"),
    ({"state": "sending", "attempts": -1}, "attempts"),
    ({"state": "sending", "lease_until": "in two minutes"}, "lease_until"),
    ({"state": "sent", "channel": "fax"}, "channel"),
    ({"state": "sent", "delivery_status": "delivered"}, "delivery_message_id"),
    (
        {"state": "sent", "delivery_status": "delivered", "delivery_message_id": SID, "delivery_generation": 0},
        "delivery_generation",
    ),
)


@case
def a_doc_that_breaks_the_contract_is_an_invalid_document_naming_its_field(store: Store) -> None:
    ledger = ledger_at(store)
    for index, (doc, field) in enumerate(BROKEN):
        key = key_of(f"broken-{index}")
        store.put(f"notifications/{key}", doc)
        with pytest.raises(InvalidDocument) as broken:
            ledger.read(key)
        assert (broken.value.field, broken.value.code) == (field, "invalid_document")
        with pytest.raises(InvalidDocument):
            ledger.reopen(key)
        assert state(store, key) == doc  # nothing written over it


@case
def a_broken_doc_does_not_hide_the_other_stuck_messages(store: Store) -> None:
    earlier = NOW - timedelta(hours=2)
    crashed, key = ledger_at(store, earlier), key_of("stuck-beside-a-broken-one")
    crashed.schedule([Planned(key, {"kind": "appointment_reminder"})])
    crashed.claim(key, crashed.read(key), {})  # died on its last attempt
    broken = key_of("stuck-and-broken")
    store.put(f"notifications/{broken}", {"state": "sending", "generation": "two", "updated_at": earlier})
    stuck = {entry.key for entry in ledger_at(store).stuck(older_than=NOW - timedelta(hours=1))}
    assert key in stuck and broken not in stuck
