"""Consent by text end to end on the local stack: the patient texts the real inbound webhook (played by the
provider sandbox as Twilio, or signed here with Twilio's RequestValidator) and every assertion is on the
TwiML answer and on Firestore: JOIN, HELP, revocations Twilio does not know, an uncertain one, a replay;
and the booking platform's consent.recorded, published to appointment-events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.consent.consents import Consents, ConsentStatus, Purpose
from shared.platform import clients
from shared.platform.clock import system_clock
from tests.integration.test_waitlist import live  # noqa: F401  (the fixture: one clinic and its sender per test)
from tests.polling import eventually
from tests.waitlist_live import WAIT, Live, twiml_text

pytestmark = pytest.mark.integration


def consents(world: Live) -> Consents:
    return Consents(world.store, system_clock)


def docs(world: Live, collection: str) -> list[dict[str, Any]]:
    return [snapshot.to_dict() or {} for snapshot in world.store.client.collection(collection).stream()]


def test_join_grants_marketing_and_help_answers_as_ctia_asks(live):  # noqa: F811
    world: Live = live()
    patient = world.scene.patient()
    joined = world.reply(patient, "JOIN")
    assert joined["keyword_action"] is None  # not a word Twilio acts on
    text = twiml_text(joined["body"]) or ""
    assert "Msg &amp; data rates may apply" in text and "Reply HELP for help, STOP to cancel" in text
    state = consents(world).current(patient)
    assert state.allows_marketing("sms")
    (grant,) = consents(world).history(patient)
    assert grant.source == "keyword" and grant.message_sid == grant.event_id and grant.event_id.startswith("SM")
    assert state.marketing_basis("sms") == f"consent:{grant.message_sid}"

    help_text = twiml_text(world.reply(patient, "HELP")["body"]) or ""
    for part in (
        "Msg &amp; data rates may apply",
        "msgs/month",
        "STOP",
        world.scene.doc(f"clinics/{world.scene.clinic_id}")["phone"],
    ):
        assert part in help_text, part


@pytest.mark.parametrize(
    ("body", "locale", "says"), [("stop texting me", "en", "unsubscribed"), ("no más", "es", "baja")]
)
def test_a_revocation_twilio_does_not_know_opts_out_and_is_confirmed(live, body, locale, says):  # noqa: F811
    world: Live = live()
    patient = world.scene.patient(locale=locale)
    world.reply(patient, "JOIN")
    answer = world.reply(patient, body)
    assert says in (twiml_text(answer["body"]) or "")
    assert world.scene.doc(f"patients/{patient}")["sms_opt_out"] is True
    state = consents(world).current(patient)
    assert state.revoked(Purpose.MARKETING, "sms") and state.revoked(Purpose.TRANSACTIONAL, "sms")
    assert not state.allows_marketing()
    assert {e.source for e in consents(world).history(patient) if e.status == ConsentStatus.REVOKED} == {
        "revocation_text"
    }


def test_an_uncertain_text_opts_out_for_the_front_desk_and_a_replay_changes_nothing(live):  # noqa: F811
    world: Live = live()
    patient = world.scene.patient()
    form = world.form(patient, "not interested")
    first, again = world.signed(form), world.signed(form)
    assert first.status_code == again.status_code == 200 and first.text == again.text
    assert "START" in (twiml_text(first.text) or "")
    assert world.scene.doc(f"patients/{patient}")["sms_opt_out"] is True
    (request,) = docs(world, "patient_requests")
    assert (request["kind"], request["patient_id"], request["message_sid"]) == (
        "opt_out_review",
        patient,
        form["MessageSid"],
    )
    assert sorted(e.event_id for e in consents(world).history(patient)) == [
        f"{form['MessageSid']}-marketing",
        f"{form['MessageSid']}-transactional",
    ]
    join = world.form(patient, "JOIN")
    assert [world.signed(join).status_code for _ in range(3)] == [200, 200, 200]
    assert len(consents(world).history(patient)) == 3 and consents(world).current(patient).allows_marketing()


def test_the_platform_publishes_a_consent_and_appointment_events_records_it_once(live):  # noqa: F811
    world: Live = live()
    patient = world.scene.patient()
    publisher = clients.publisher()
    topic = publisher.topic_path(world.stack.project, "appointment-events")
    consent = {
        "event": "consent.recorded",
        "event_id": f"form-{patient}",
        "patient_id": patient,
        "clinic_id": world.scene.clinic_id,
        "purpose": "marketing",
        "channel": "sms",
        "status": "granted",
        "at": system_clock.now().isoformat(),
        "source": "booking_form",
        "wording_version": "booking-form-2026-03",
    }
    for _ in range(2):  # published twice, as a platform retrying would
        publisher.publish(topic, json.dumps(consent).encode()).result(timeout=30)
    eventually(lambda: consents(world).current(patient).allows_marketing(), WAIT)
    (grant,) = consents(world).history(patient)
    assert (grant.event_id, grant.source, grant.wording_version) == (
        f"form-{patient}",
        "booking_form",
        "booking-form-2026-03",
    )
