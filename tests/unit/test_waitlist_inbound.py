"""Inbound texts on the in-memory store: keywords, routing, replies, idempotency on MessageSid."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from shared.waitlist.inbound import parse_inbound, twiml
from shared.waitlist.keywords import Intent, classify
from tests.fakes import MemoryStore
from tests.waitlist_support import CLINIC, NOW, Scene


@pytest.fixture
def scene() -> Scene:
    return Scene(MemoryStore())


def text(scene: Scene, patient_id: str, body: str, sid: str | None = None, **extra: str):
    phone = scene.doc(f"patients/{patient_id}")["phone"]
    form = {"MessageSid": sid or "SM" + uuid.uuid4().hex, "From": phone, "To": CLINIC["sms_from"], "Body": body}
    return scene.conversations().handle({**form, **extra})


@pytest.mark.parametrize(
    ("body", "intent"),
    [
        ("STOP", Intent.OPT_OUT),
        (" stop ", Intent.OPT_OUT),
        ("Stop.", Intent.OPT_OUT),
        ("unsubscribe", Intent.OPT_OUT),
        ("CANCEL", Intent.OPT_OUT),
        ("end", Intent.OPT_OUT),
        ("Quit", Intent.OPT_OUT),
        ("STOPALL", Intent.OPT_OUT),
        ("REVOKE", Intent.OPT_OUT),
        ("optout", Intent.OPT_OUT),
        ("START", Intent.OPT_IN),
        ("unstop", Intent.OPT_IN),
        ("HELP", Intent.HELP),
        ("info", Intent.HELP),
        ("YES", Intent.CLAIM),
        ("y", Intent.CLAIM),
        ("Yes!", Intent.CLAIM),
        ("sí", Intent.CLAIM),
        ("C", Intent.CONFIRM),
        ("confirm", Intent.CONFIRM),
        ("I need to cancel my appointment", Intent.CANCEL_REQUEST),
        ("Sorry, I can’t make it tomorrow", Intent.CANCEL_REQUEST),
        ("Quiero cancelar mi cita", Intent.CANCEL_REQUEST),
        ("Can I reschedule to Friday?", Intent.RESCHEDULE_REQUEST),
        ("could we move it to next week", Intent.RESCHEDULE_REQUEST),
        ("stop texting me please", Intent.OPT_OUT),  # not a Twilio keyword, but a revocation all the same
        ("no más", Intent.OPT_OUT),
        ("not interested", Intent.UNCERTAIN_OPT_OUT),
        ("JOIN", Intent.OTHER),  # a marketing keyword only when the clinic's (see the test below)
        ("thanks!", Intent.OTHER),
        ("", Intent.OTHER),
        ("\ud800" * 3, Intent.OTHER),
        ("x" * 100_000, Intent.OTHER),
    ],
)
def test_keywords_as_twilio_reads_them(body, intent):
    assert classify(body) == intent


def test_the_clinics_marketing_keyword_opts_in_and_never_overrides_twilios_words():
    assert classify("join", "JOIN") == Intent.MARKETING_OPT_IN
    assert classify("Join!", "JOIN") == Intent.MARKETING_OPT_IN
    assert classify("JOIN", "GLOW") == Intent.OTHER
    assert classify("START", "JOIN") == Intent.OPT_IN  # never a marketing consent
    assert classify("join me at 3", "JOIN") == Intent.OTHER


def test_yes_claims_the_offer_the_patient_holds_and_the_reply_confirms(scene):
    patient = scene.patient()
    entry = scene.entry(patient)
    appointment = scene.cancelled()
    scene.open(appointment)
    reply = text(scene, patient, "YES")
    assert reply.outcome == "won" and "Thu, Nov 26 at 10:00 AM" in reply.text and "Glow Aesthetics" in reply.text
    assert "HydraFacial" not in reply.text
    assert scene.doc(f"waitlist/{entry}")["status"] == "booked"
    assert scene.doc(f"slot_offers/{scene.offer_of(appointment).id}")["claim_channel"] == "sms"


def test_a_later_yes_hears_taken_and_a_yes_without_any_offer_hears_so(scene):
    first, second, stranger = scene.patient(), scene.patient(), scene.patient()
    scene.entry(first)
    scene.entry(second)
    scene.open(scene.cancelled())
    assert text(scene, first, "yes").outcome == "won"
    taken = text(scene, second, "Y")
    assert taken.outcome == "taken" and "taken" in taken.text and "waitlist" in taken.text
    assert text(scene, stranger, "YES").outcome == "no_offer"
    assert text(scene, first, "YES").outcome == "won"  # a winner's new YES: still booked


def test_a_replayed_message_sid_has_one_effect_and_the_same_answer(scene):
    patient = scene.patient()
    scene.appointment(patient, start=NOW + timedelta(days=2))
    sid = "SM" + "a" * 32
    first = text(scene, patient, "Can I reschedule?", sid=sid)
    second = text(scene, patient, "Can I reschedule?", sid=sid)
    assert first == second and first.outcome == "request"
    assert len(scene.store.docs("patient_requests")) == 1


def test_stop_and_start_are_recorded_on_the_patient_without_a_reply(scene):
    patient = scene.patient()
    stop = text(scene, patient, "STOP")
    assert (stop.outcome, stop.text) == ("opted_out", None)
    assert scene.doc(f"patients/{patient}")["sms_opt_out"] is True
    assert text(scene, patient, "START").text is None
    assert scene.doc(f"patients/{patient}")["sms_opt_out"] is False


def test_yes_opts_back_in_as_twilio_does(scene):
    patient = scene.patient(sms_opt_out=True)
    assert text(scene, patient, "YES").outcome == "no_offer"
    assert scene.doc(f"patients/{patient}")["sms_opt_out"] is False


def test_help_names_the_clinic_and_its_phone(scene):
    reply = text(scene, scene.patient(), "HELP")
    assert "Glow Aesthetics" in reply.text and CLINIC["phone"] in reply.text


def test_c_confirms_the_next_booked_appointment_once(scene):
    patient = scene.patient()
    later = scene.appointment(patient, start=NOW + timedelta(days=5))
    soon = scene.appointment(patient, start=NOW + timedelta(days=1))
    reply = text(scene, patient, "C")
    assert reply.outcome == "confirmed" and "confirmed" in reply.text
    assert scene.doc(f"appointments/{soon}")["status"] == "confirmed"
    assert scene.doc(f"appointments/{later}")["status"] == "booked"
    assert text(scene, patient, "CONFIRM").outcome == "already_confirmed"


def test_c_with_nothing_to_confirm_says_so(scene):
    patient = scene.patient()
    scene.appointment(patient, start=NOW - timedelta(days=1))
    scene.appointment(patient, start=NOW + timedelta(days=1), status="cancelled")
    assert text(scene, patient, "c").outcome == "no_appointment"


def test_a_cancel_request_becomes_a_front_desk_record_never_a_change(scene):
    patient = scene.patient()
    appointment = scene.appointment(patient)
    reply = text(scene, patient, "I can't make it, please cancel")
    assert reply.outcome == "request"
    (request,) = scene.store.docs("patient_requests").values()
    assert (request["kind"], request["appointment_id"], request["status"], request["source"]) == (
        "cancel",
        appointment,
        "open",
        "sms",
    )
    assert scene.doc(f"appointments/{appointment}")["status"] == "booked"


def test_anything_else_gets_a_short_help_text_and_strangers_get_the_clinic_phone(scene):
    other = text(scene, scene.patient(), "Hello there")
    assert other.outcome == "other" and "YES" in other.text and "HELP" in other.text
    stranger = scene.conversations().handle(
        {"MessageSid": "SM" + "b" * 32, "From": "+15005550006", "To": CLINIC["sms_from"], "Body": "YES"}
    )
    assert stranger.outcome == "unknown_patient" and CLINIC["phone"] in stranger.text


def test_spanish_patients_read_spanish(scene):
    reply = text(scene, scene.patient(locale="es"), "HELP")
    assert reply.text.startswith("Glow Aesthetics: llame")


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"MessageSid": "nope", "From": "+12125550001", "To": "+12125550100"},
        {"MessageSid": "SM" + "c" * 32, "From": "not-a-phone", "To": "+12125550100"},
        {"MessageSid": "SM" + "c" * 32, "From": "+12125550001", "To": "somewhere"},
        {"MessageSid": "SM" + "c" * 32, "From": "+12125550001", "To": "+19995550100", "Body": "YES"},
    ],
    ids=["empty", "bad_sid", "bad_sender", "bad_recipient", "unknown_clinic"],
)
def test_forms_that_name_nothing_get_an_empty_answer_and_write_nothing(scene, form):
    reply = scene.conversations().handle(form)
    assert reply.text is None
    assert scene.store.docs("inbound_sms") == {}


def test_a_messaging_service_identifies_the_clinic(scene):
    sid = "MG" + "5" * 32
    scene.store.put(f"clinics/{scene.clinic_id}", {**scene.doc(f"clinics/{scene.clinic_id}"), "sms_from": sid})
    patient = scene.patient()
    phone = scene.doc(f"patients/{patient}")["phone"]
    form = {
        "MessageSid": "SM" + "d" * 32,
        "From": phone,
        "To": "+12125550177",
        "MessagingServiceSid": sid,
        "Body": "HELP",
    }
    assert scene.conversations().handle(form).outcome == "help"
    assert parse_inbound({**form, "MessagingServiceSid": ""}) != parse_inbound(form)


def test_twiml_has_one_message_or_none():
    assert "<Message>Hi &amp; bye</Message>" in twiml("Hi & bye")
    assert "<Message>" not in twiml(None) and "<Response" in twiml(None)
