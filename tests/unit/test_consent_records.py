"""Consents on the in-memory store (the same cases run on the emulator too), and a commit lost to a rival."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.consent.consents import ConsentStatus, Purpose
from tests.consent_cases import CASES, NOW, consents, event
from tests.fakes import MemoryStore


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_consents(case):
    case(MemoryStore())


def test_a_rival_writing_between_read_and_commit_is_not_lost():
    store = MemoryStore()
    owner, _ = consents(store)
    rival, _ = consents(store)

    def interleave(writes):
        store.on_commit = None
        rival.record(event("rival", purpose=Purpose.TRANSACTIONAL, at=NOW + timedelta(hours=1)))

    store.on_commit = interleave
    assert owner.record(event("mine")) is True
    state = owner.current("p1")
    assert state.allows_marketing() and state.latest(Purpose.TRANSACTIONAL, "sms") is not None
    assert sorted(e.event_id for e in owner.history("p1")) == ["mine", "rival"]


def test_the_same_event_racing_is_recorded_once():
    store = MemoryStore()
    owner, _ = consents(store)

    def interleave(writes):
        store.on_commit = None
        assert owner.record(event("e1")) is True

    store.on_commit = interleave
    assert owner.record(event("e1")) is False
    assert [e.status for e in owner.history("p1")] == [ConsentStatus.GRANTED]


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError):
        event("e1", at=NOW.replace(tzinfo=None))


def test_a_hand_broken_entry_reads_as_absent_and_the_next_event_rewrites_it():
    store = MemoryStore()
    store.seed("consents/p1", {"clinic_id": "c1", "sms_marketing": {"status": "granted?", "at": "yesterday"}})
    store.seed("consents/p1/history/bad", {"status": "granted"})
    owner, _ = consents(store)
    assert not owner.current("p1").allows_marketing() and owner.history("p1") == []
    assert owner.record(event("e1"))
    assert owner.current("p1").marketing_basis() == "consent:e1"
