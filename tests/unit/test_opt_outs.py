"""An opt-out (or its end) is recorded on the patient and in consents/, once."""

from __future__ import annotations

from datetime import timedelta

from shared.consent.consents import Consents, ConsentStatus, Purpose
from shared.messaging.opt_outs import OptOuts
from tests.builders import NOW
from tests.fakes import FixedClock, MemoryStore

SID = "SM" + "a" * 32


def owners() -> tuple[MemoryStore, OptOuts, Consents, FixedClock]:
    store, clock = MemoryStore(), FixedClock(NOW)
    store.seed("patients/p1", {"clinic_id": "c1", "first_name": "Zelda", "sms_opt_out": False})
    return store, OptOuts(store, clock), Consents(store, clock), clock


def test_a_21610_revokes_both_sms_purposes_once():
    store, opt_outs, consents, clock = owners()
    assert opt_outs.set_sms_opt_out("p1", True, source="twilio_21610")
    clock.advance(minutes=5)
    assert opt_outs.set_sms_opt_out("p1", True, source="twilio_21610")  # the next send refused again
    state = consents.current("p1")
    assert state.revoked(Purpose.MARKETING, "sms") and state.revoked(Purpose.TRANSACTIONAL, "sms")
    history = consents.history("p1")
    assert sorted((e.purpose.value, e.source, e.at, e.clinic_id) for e in history) == [
        ("marketing", "twilio_21610", NOW, "c1"),
        ("transactional", "twilio_21610", NOW, "c1"),
    ]
    assert store.stored("patients/p1")["sms_opt_out"] is True


def test_an_inbound_stop_is_recorded_by_its_message_sid_and_a_replay_adds_nothing():
    _, opt_outs, consents, _ = owners()
    for _ in range(2):
        opt_outs.set_sms_opt_out("p1", True, source="sms_opt_out", event_id=SID, message_sid=SID)
    history = consents.history("p1")
    assert sorted(e.event_id for e in history) == [f"{SID}-marketing", f"{SID}-transactional"]
    assert {(e.source, e.message_sid) for e in history} == {("keyword", SID)}


def test_opting_back_in_grants_transactional_sms_never_marketing():
    _, opt_outs, consents, clock = owners()
    opt_outs.set_sms_opt_out("p1", True, source="sms_opt_out", event_id=SID)
    clock.advance(minutes=1)
    start = "SM" + "b" * 32
    assert opt_outs.set_sms_opt_out("p1", False, source="sms_opt_in", event_id=start, message_sid=start)
    state = consents.current("p1")
    latest = state.latest(Purpose.TRANSACTIONAL, "sms")
    assert latest is not None and latest.status == ConsentStatus.GRANTED and latest.at == NOW + timedelta(minutes=1)
    assert state.revoked(Purpose.MARKETING, "sms") and not state.allows_marketing()


def test_no_patient_no_consent_either():
    store = MemoryStore()
    assert not OptOuts(store, FixedClock(NOW)).set_sms_opt_out("ghost", True, source="twilio_21610")
    assert store.docs("consents") == {}
