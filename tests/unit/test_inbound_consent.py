"""Inbound texts that grant or revoke consent, on the in-memory store: JOIN, HELP, revocations in free
text, uncertain ones for the front desk, Twilio's own words, and replays."""

from __future__ import annotations

import uuid

import pytest

from shared.consent.consents import Consents, ConsentStatus, Purpose
from tests.fakes import FixedClock, MemoryStore
from tests.waitlist_support import CLINIC, NOW, Scene


@pytest.fixture
def scene() -> Scene:
    return Scene(MemoryStore())


def text(scene: Scene, patient_id: str, body: str, sid: str | None = None):
    phone = scene.doc(f"patients/{patient_id}")["phone"]
    form = {"MessageSid": sid or "SM" + uuid.uuid4().hex, "From": phone, "To": CLINIC["sms_from"], "Body": body}
    return scene.conversations().handle(form)


def consents(scene: Scene) -> Consents:
    return Consents(scene.store, FixedClock(NOW))


def test_join_records_a_marketing_sms_grant_and_confirms_as_ctia_asks(scene):
    patient = scene.patient()
    sid = "SM" + "1" * 32
    reply = text(scene, patient, "Join", sid=sid)
    assert reply.outcome == "joined"
    for part in ("Msg & data rates may apply", "Reply HELP for help, STOP to cancel", "msgs/month"):
        assert part in reply.text
    state = consents(scene).current(patient)
    assert state.marketing_basis("sms") == f"consent:{sid}"
    (grant,) = consents(scene).history(patient)
    assert (grant.source, grant.message_sid, grant.wording_version) == ("keyword", sid, "keyword-v1")


def test_a_clinic_chooses_its_keyword_and_its_wording_version(scene):
    clinic = scene.doc(f"clinics/{scene.clinic_id}")
    marketing = {"keyword": "glow", "wording_version": "glow-2026", "program_name": "Glow Perks"}
    scene.store.put(f"clinics/{scene.clinic_id}", {**clinic, "marketing": marketing})
    patient = scene.patient()
    assert text(scene, patient, "JOIN").outcome == "other"
    reply = text(scene, patient, "GLOW")
    assert reply.outcome == "joined" and reply.text.startswith("Glow Perks:")
    assert [e.wording_version for e in consents(scene).history(patient)] == ["glow-2026"]


def test_start_opts_back_in_to_appointment_texts_never_to_marketing(scene):
    patient = scene.patient()
    text(scene, patient, "STOP")
    assert text(scene, patient, "START").text is None
    state = consents(scene).current(patient)
    assert not state.allows_marketing() and not state.revoked(Purpose.TRANSACTIONAL, "sms")


def test_twilios_stop_is_recorded_in_consents_without_a_reply(scene):
    patient = scene.patient()
    reply = text(scene, patient, "STOP")
    assert (reply.outcome, reply.text) == ("opted_out", None)
    state = consents(scene).current(patient)
    assert state.revoked(Purpose.MARKETING, "sms") and state.revoked(Purpose.TRANSACTIONAL, "sms")
    assert {e.source for e in consents(scene).history(patient)} == {"keyword"}


@pytest.mark.parametrize("body", ["stop texting me", "No más", "Please STOP", "no me manden más mensajes"])
def test_a_revocation_twilio_did_not_see_opts_out_and_confirms(scene, body):
    patient = scene.patient()
    reply = text(scene, patient, body)
    assert reply.outcome == "revoked" and "START" in reply.text
    assert scene.doc(f"patients/{patient}")["sms_opt_out"] is True
    assert consents(scene).current(patient).revoked(Purpose.TRANSACTIONAL, "sms")
    assert {e.source for e in consents(scene).history(patient)} == {"revocation_text"}
    assert scene.store.docs("patient_requests") == {}


def test_an_uncertain_text_opts_out_and_asks_the_front_desk_to_look(scene):
    patient = scene.patient()
    sid = "SM" + "2" * 32
    reply = text(scene, patient, "not interested", sid=sid)
    assert reply.outcome == "opted_out_uncertain" and "START" in reply.text and CLINIC["phone"] in reply.text
    assert scene.doc(f"patients/{patient}")["sms_opt_out"] is True
    assert consents(scene).current(patient).revoked(Purpose.MARKETING, "sms")
    (request,) = scene.store.docs("patient_requests").values()
    assert (request["kind"], request["patient_id"], request["message_sid"]) == ("opt_out_review", patient, sid)
    assert "not interested" not in str(request)  # the text stays in Twilio's log


def test_a_replayed_revocation_or_join_has_one_effect_and_the_same_answer(scene):
    patient = scene.patient()
    for body, digit in (("not interested", "3"), ("JOIN", "4")):
        sid = "SM" + digit * 32
        first, second = text(scene, patient, body, sid=sid), text(scene, patient, body, sid=sid)
        assert first == second
    history = consents(scene).history(patient)
    assert len(history) == 3  # two revocations, one grant
    assert len(scene.store.docs("patient_requests")) == 1
    assert consents(scene).current(patient).allows_marketing()
    assert [e.status for e in history if e.purpose == Purpose.MARKETING] == [
        ConsentStatus.REVOKED,
        ConsentStatus.GRANTED,
    ]


def test_a_cancel_request_stays_a_request(scene):
    patient = scene.patient()
    scene.appointment(patient)
    assert text(scene, patient, "I need to cancel my appointment").outcome == "request"
    assert scene.doc(f"patients/{patient}")["sms_opt_out"] is False
    assert consents(scene).history(patient) == []


def test_help_is_answered_to_a_stranger_too(scene):
    form = {"MessageSid": "SM" + "5" * 32, "From": "+15005550006", "To": CLINIC["sms_from"], "Body": "HELP"}
    reply = scene.conversations().handle(form)
    assert reply.outcome == "help" and "Msg & data rates may apply" in reply.text and "STOP" in reply.text


def test_a_marketing_map_that_breaks_the_contract_keeps_the_clinic_working(scene):
    clinic = scene.doc(f"clinics/{scene.clinic_id}")
    scene.store.put(f"clinics/{scene.clinic_id}", {**clinic, "marketing": {"keyword": "STOP", "frequency": 4}})
    patient = scene.patient()
    assert text(scene, patient, "JOIN").outcome == "joined"  # the default keyword
