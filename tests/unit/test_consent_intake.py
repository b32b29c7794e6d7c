"""A consent the booking platform publishes (consent.recorded): every field checked with a coded answer,
recorded once through consents/' owner, and ignored by the waitlist's subscriber of the same topic."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from shared.consent.consents import Consents, ConsentStatus, Purpose
from shared.consent.intake import record_platform_consent
from shared.contract.events import ConsentRecorded, EventRejected, parse_platform_event
from shared.waitlist.cancellations import open_offer
from tests.fakes import FixedClock, MemoryStore

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)
BODY = {
    "event": "consent.recorded",
    "event_id": "form-8812",
    "patient_id": "p1",
    "clinic_id": "c1",
    "purpose": "marketing",
    "channel": "sms",
    "status": "granted",
    "at": "2026-12-01T09:30:00-05:00",
    "source": "booking_form",
    "wording_version": "booking-form-2026-03",
}


def raw(**changes) -> bytes:
    return json.dumps({k: v for k, v in (BODY | changes).items() if v is not None}).encode()


def test_a_consent_event_parses_with_its_time_in_utc():
    consent = parse_platform_event(raw())
    assert isinstance(consent, ConsentRecorded)
    assert consent.at == datetime(2026, 12, 1, 14, 30, tzinfo=timezone.utc)
    assert (consent.purpose, consent.source, consent.wording_version) == (
        "marketing",
        "booking_form",
        "booking-form-2026-03",
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"purpose": "promotions"}, "bad_purpose"),
        ({"channel": "fax"}, "bad_channel"),
        ({"status": "maybe"}, "bad_status"),
        ({"source": "keyword"}, "bad_source"),  # our own sources are never the platform's to claim
        ({"source": "twilio_21610"}, "bad_source"),
        ({"event_id": "a/b"}, "bad_event_id"),
        ({"event_id": None}, "bad_event_id"),
        ({"patient_id": ".."}, "bad_patient_id"),
        ({"clinic_id": 7}, "bad_clinic_id"),
        ({"at": "2026-12-01T09:30:00"}, "bad_at"),  # no offset: whose 9:30?
        ({"at": "yesterday"}, "bad_at"),
        ({"at": "1999-12-31T23:00:00Z"}, "bad_at"),
        ({"at": 1764600000}, "bad_at"),
        ({"wording_version": None}, "bad_wording"),  # a grant names its wording
        ({"wording_version": "x" * 101}, "bad_wording"),
        ({"wording_version": "\ud800"}, "bad_string"),
        ({"name": "Zelda"}, "unknown_field"),
    ],
)
def test_a_consent_event_that_can_never_be_recorded_is_rejected_with_a_code(changes, code):
    with pytest.raises(EventRejected) as raised:
        parse_platform_event(raw(**changes))
    assert raised.value.code == code


def test_a_revocation_needs_no_wording():
    consent = parse_platform_event(raw(status="revoked", wording_version=None, source="front_desk"))
    assert isinstance(consent, ConsentRecorded) and consent.wording_version == ""


def scene() -> tuple[MemoryStore, FixedClock]:
    store = MemoryStore()
    store.seed("patients/p1", {"clinic_id": "c1", "first_name": "Zelda"})
    return store, FixedClock(NOW)


def consent(**changes) -> ConsentRecorded:
    parsed = parse_platform_event(raw(**changes))
    assert isinstance(parsed, ConsentRecorded)
    return parsed


def test_a_platform_consent_is_recorded_once():
    store, clock = scene()
    assert record_platform_consent(consent(), store=store, clock=clock).outcome == "recorded"
    assert record_platform_consent(consent(), store=store, clock=clock).outcome == "replayed"
    state = Consents(store, clock).current("p1")
    assert state.marketing_basis("sms") == "consent:form-8812"
    (event,) = Consents(store, clock).history("p1")
    assert (event.source, event.wording_version, event.status) == (
        "booking_form",
        "booking-form-2026-03",
        ConsentStatus.GRANTED,
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"patient_id": "ghost"}, "patient_missing"),
        ({"clinic_id": "c2"}, "clinic_mismatch"),
        ({"at": (NOW + timedelta(hours=1)).isoformat()}, "consent_in_future"),
    ],
)
def test_a_consent_that_names_the_wrong_patient_or_time_is_rejected_and_nothing_written(changes, code):
    store, clock = scene()
    with pytest.raises(EventRejected) as raised:
        record_platform_consent(consent(**changes), store=store, clock=clock)
    assert raised.value.code == code
    assert store.docs("consents") == {}


def test_a_front_desk_revocation_wins_over_an_older_grant():
    store, clock = scene()
    record_platform_consent(consent(), store=store, clock=clock)
    revoked = consent(event_id="desk-1", status="revoked", source="front_desk", at=NOW.isoformat())
    record_platform_consent(revoked, store=store, clock=clock)
    assert Consents(store, clock).current("p1").revoked(Purpose.MARKETING, "sms")


def test_the_waitlists_subscriber_ignores_a_consent():
    opened = open_offer(consent(), waves=None, now=NOW)  # type: ignore[arg-type]  # never reached
    assert opened.summary()["outcome"] == "ignored"
