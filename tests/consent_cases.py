"""Consents (shared/consent/consents.py), case by case, written once and run twice: on the in-memory store
(tests/unit/test_consent_records.py) and on the Firestore emulator (tests/integration/test_consents.py), so the
history, the replay and the not-older rule hold on Firestore exactly as on the fake."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from shared.consent.consents import COLLECTION, RETENTION, ConsentEvent, Consents, ConsentStatus, Purpose
from shared.platform.store import Store
from tests.fakes import FixedClock

CASES: list[Callable[[Store], None]] = []
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)


def case(function: Callable[[Store], None]) -> Callable[[Store], None]:
    CASES.append(function)
    return function


def event(
    event_id: str,
    *,
    status: ConsentStatus = ConsentStatus.GRANTED,
    purpose: Purpose = Purpose.MARKETING,
    channel: str = "sms",
    at: datetime = NOW,
    patient_id: str = "p1",
    source: str = "booking_form",
) -> ConsentEvent:
    return ConsentEvent(
        patient_id=patient_id,
        clinic_id="c1",
        purpose=purpose,
        channel=channel,
        status=status,
        at=at,
        source=source,
        wording_version="form-2026-01",
        event_id=event_id,
    )


def consents(store: Store) -> tuple[Consents, FixedClock]:
    clock = FixedClock(NOW + timedelta(minutes=5))
    return Consents(store, clock), clock


@case
def a_grant_is_current_and_in_the_history(store: Store) -> None:
    owner, clock = consents(store)
    assert owner.record(event("e1")) is True
    state = owner.current("p1")
    assert state.allows_marketing("sms") and state.marketing_basis("sms") == "consent:e1"
    assert not state.allows_marketing("email")
    current = store.get(f"{COLLECTION}/p1")
    assert current is not None
    assert current.data["sms_marketing"] == {
        "status": "granted",
        "at": NOW,
        "source": "booking_form",
        "wording_version": "form-2026-01",
        "event_id": "e1",
    }
    assert [current.data[name] for name in ("clinic_id", "patient_id", "updated_at")] == ["c1", "p1", clock.now()]
    history = store.get(f"{COLLECTION}/p1/history/e1")
    assert history is not None
    assert history.data["expire_at"] == NOW + RETENTION and history.data["recorded_at"] == clock.now()
    assert (history.data["purpose"], history.data["channel"], history.data["status"]) == ("marketing", "sms", "granted")


@case
def a_replay_of_the_same_event_id_changes_nothing(store: Store) -> None:
    owner, clock = consents(store)
    assert owner.record(event("e1")) is True
    clock.advance(hours=1)
    replay = event("e1", status=ConsentStatus.REVOKED, at=NOW + timedelta(hours=1))
    assert owner.record(replay) is False
    assert owner.current("p1").allows_marketing()
    assert [e.status for e in owner.history("p1")] == [ConsentStatus.GRANTED]


@case
def a_later_revocation_wins_and_both_stay_in_the_history(store: Store) -> None:
    owner, _ = consents(store)
    owner.record(event("e1"))
    owner.record(event("e2", status=ConsentStatus.REVOKED, at=NOW + timedelta(days=1), source="front_desk"))
    state = owner.current("p1")
    assert not state.allows_marketing() and state.marketing_basis() is None
    assert state.revoked(Purpose.MARKETING, "sms")
    assert [(e.event_id, e.status) for e in owner.history("p1")] == [
        ("e1", ConsentStatus.GRANTED),
        ("e2", ConsentStatus.REVOKED),
    ]


@case
def an_older_event_arriving_late_is_history_only(store: Store) -> None:
    owner, _ = consents(store)
    owner.record(event("late-revocation", status=ConsentStatus.REVOKED, at=NOW))
    assert owner.record(event("old-grant", at=NOW - timedelta(days=30), source="import")) is True
    state = owner.current("p1")
    assert state.revoked(Purpose.MARKETING, "sms") and not state.allows_marketing()
    assert [e.event_id for e in owner.history("p1")] == ["old-grant", "late-revocation"]


@case
def purposes_and_channels_are_kept_apart(store: Store) -> None:
    owner, _ = consents(store)
    owner.record(event("m", channel="email"))
    owner.record(event("t", purpose=Purpose.TRANSACTIONAL, status=ConsentStatus.REVOKED))
    state = owner.current("p1")
    assert state.allows_marketing("email") and not state.allows_marketing("sms")
    assert state.revoked(Purpose.TRANSACTIONAL, "sms") and not state.revoked(Purpose.MARKETING, "sms")
    assert state.latest(Purpose.TRANSACTIONAL, "email") is None


@case
def revoke_sms_revokes_both_purposes_once(store: Store) -> None:
    owner, clock = consents(store)
    owner.record(event("grant"))
    owner.revoke_sms("p1", "c1", source="keyword", event_id="SMabc", message_sid="SMabc")
    owner.revoke_sms("p1", "c1", source="keyword", event_id="SMabc", message_sid="SMabc")  # Twilio's retry
    state = owner.current("p1")
    assert state.revoked(Purpose.MARKETING, "sms") and state.revoked(Purpose.TRANSACTIONAL, "sms")
    revocations = [e for e in owner.history("p1") if e.status == ConsentStatus.REVOKED]
    assert sorted(e.event_id for e in revocations) == ["SMabc-marketing", "SMabc-transactional"]
    assert {(e.at, e.message_sid, e.source) for e in revocations} == {(clock.now(), "SMabc", "keyword")}


@case
def a_grant_after_a_revocation_allows_again(store: Store) -> None:
    owner, clock = consents(store)
    owner.revoke_sms("p1", "c1", source="twilio_21610", event_id="err-1")
    owner.record(event("join", at=clock.now() + timedelta(minutes=1), source="keyword"))
    assert owner.current("p1").marketing_basis() == "consent:join"
    assert owner.current("p1").revoked(Purpose.TRANSACTIONAL, "sms")


@case
def current_many_reads_every_patient_at_once(store: Store) -> None:
    owner, _ = consents(store)
    owner.record(event("a", patient_id="p1"))
    owner.record(event("b", patient_id="p2", status=ConsentStatus.REVOKED))
    states = owner.current_many(["p1", "p2", "nobody"])
    assert [states[p].allows_marketing() for p in ("p1", "p2", "nobody")] == [True, False, False]
    assert states["nobody"].entries == {}


@case
def times_come_back_aware_and_in_utc(store: Store) -> None:
    owner, _ = consents(store)
    local = NOW.astimezone(ZoneInfo("America/New_York"))
    owner.record(event("e1", at=local))
    (recorded,) = owner.history("p1")
    latest = owner.current("p1").latest(Purpose.MARKETING, "sms")
    assert latest is not None
    assert recorded.at == NOW and recorded.at.utcoffset() == timedelta(0)
    assert latest.at == NOW and latest.at.utcoffset() == timedelta(0)


@case
def a_patient_never_recorded_has_no_consent(store: Store) -> None:
    owner, _ = consents(store)
    state = owner.current("p9")
    assert not state.allows_marketing() and not state.revoked(Purpose.TRANSACTIONAL, "sms")
    assert owner.history("p9") == []
