"""The waitlist end to end on the local stack: a cancellation published to appointment-events opens an
offer (waitlist-cancellations), the task handler sends it through the provider sandbox, patients answer
by text (waitlist-inbound-sms, signed as Twilio signs) or by claim link (waitlist-claim), and every
assertion is on Firestore documents, the sandbox's outbox and status codes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from google.cloud.firestore_v1.base_query import FieldFilter

from shared.platform.store import FirestoreStore
from shared.waitlist import tokens
from shared.waitlist.bookings import booked_appointment_id
from tests.polling import eventually
from tests.waitlist_live import WAIT, Live, at_once, twiml_text

pytestmark = pytest.mark.integration


@pytest.fixture
def live(stack, sandbox, firestore_client) -> Any:
    requests.delete(f"{stack.sandbox_url}/_sandbox/opt-outs", timeout=10)
    made: list[Live] = []

    def make(**policy: Any) -> Live:
        made.append(Live(stack, sandbox, FirestoreStore(firestore_client), **policy))
        return made[-1]

    yield make
    for world in made:
        world.move_clock(None)


def booked(world: Live, offer_id: str) -> list[dict[str, Any]]:
    query = world.store.client.collection("appointments").where(filter=FieldFilter("slot_offer_id", "==", offer_id))
    return [snapshot.to_dict() or {} for snapshot in query.stream()]


def test_broadcast_fills_a_slot_from_a_texted_yes_and_the_reminders_follow(live):
    world = live(mode="broadcast", wave_size=3, offer_ttl_minutes=30)
    (first, _), (second, second_entry), (third, _) = world.waiting(3)
    appointment = world.cancel()
    world.wait_messages(3, contains="Reply YES")
    offer = world.offer(appointment)
    assert offer.wave == 1 and len(offer.wave_entry_ids) == 3
    assert all("HydraFacial" not in m["body"] for m in world.sandbox.messages(channel="sms"))

    answer = world.reply(second, "yes")
    assert answer["status"] == 200 and "text/xml" in answer["content_type"]
    assert "booked" in (twiml_text(answer["body"]) or "")

    filled = world.offer(appointment)
    assert (filled.status, filled.winner_entry_id) == ("filled", second_entry)
    (appointment_doc,) = booked(world, offer.id)
    assert appointment_doc["status"] == "booked" and appointment_doc["patient_id"] == second
    assert filled.booked_appointment_id == booked_appointment_id(offer.id)
    assert world.entry_status(second_entry) == "booked"
    # the others are told at the window's end (answers sent within it may still be on their way)
    assert world.end_window(filled).status_code == 200
    world.wait_messages(2, contains="has just been taken")
    for loser in (first, third):
        assert len([m for m in world.sms_to(loser) if "has just been taken" in m["body"]]) == 1
    assert [m for m in world.sms_to(second) if "taken" in m["body"]] == []
    # appointment.created reached the reminder fan-out: the new appointment has its confirmation planned
    assert world.wait_offer(appointment, lambda o: o.event_published)
    eventually(lambda: world.ledger(appointment_id=filled.booked_appointment_id, kind="booking_confirmation"), WAIT)


def test_sequential_offers_one_patient_at_a_time_and_the_next_one_fills_it(live):
    world = live(mode="sequential", wave_size=5, offer_ttl_minutes=30)
    (first, first_entry), (second, second_entry) = world.waiting(2)
    appointment = world.cancel()
    world.wait_messages(1, contains="Reply YES")
    offer = world.offer(appointment)
    assert offer.wave_entry_ids == (first_entry,) and world.sms_to(second) == []

    assert world.end_window(offer).status_code == 200
    moved = world.wait_offer(appointment, lambda o: o.wave == 2)
    assert moved.wave_entry_ids == (second_entry,) and world.entry_status(first_entry) == "waiting"
    world.wait_messages(2, contains="Reply YES")
    assert "no longer on offer" in world.wait_messages(1, contains="no longer on offer")[0]["body"]

    late = world.reply(first, "YES")
    assert "ended" in (twiml_text(late["body"]) or "")
    assert "booked" in (twiml_text(world.reply(second, "Y")["body"]) or "")
    filled = world.offer(appointment)
    assert filled.status == "filled" and filled.winner_entry_id == second_entry
    assert world.entry_status(first_entry) == "waiting" and len(booked(world, offer.id)) == 1


def test_an_offer_nobody_takes_expires_and_its_entries_wait_again(live):
    world = live(mode="broadcast", wave_size=5, offer_ttl_minutes=30)
    pairs = world.waiting(2)
    appointment = world.cancel()
    world.wait_messages(2, contains="Reply YES")
    assert world.end_window(world.offer(appointment)).json()["reason"] == "expired_unfilled"
    expired = world.offer(appointment)
    assert expired.status == "expired" and booked(world, expired.id) == []
    assert [world.entry_status(entry) for _, entry in pairs] == ["waiting", "waiting"]
    world.wait_messages(2, contains="no longer on offer")


def test_fifty_concurrent_signed_yes_replies_make_exactly_one_booking(live):
    world = live(mode="broadcast", wave_size=50, offer_ttl_minutes=60)
    pairs = world.waiting(50)
    appointment = world.cancel()
    world.wait_messages(50, contains="Reply YES")
    offer = world.offer(appointment)
    responses = at_once([lambda p=patient: world.signed(world.form(p, "YES")) for patient, _ in pairs])
    assert [r.status_code for r in responses] == [200] * 50
    replies = [twiml_text(r.text) or "" for r in responses]
    assert sum("booked" in reply for reply in replies) == 1
    assert sum("just been taken" in reply for reply in replies) == 49
    _one_consistent_winner(world, offer.id, [entry for _, entry in pairs])
    # everyone answered: at the window's end each result is skipped, and nobody gets a "taken" text too
    assert world.end_window(world.offer(appointment)).status_code == 200
    eventually(lambda: len(world.ledger(offer_id=offer.id, kind="waitlist_result", state="skipped")) == 49, WAIT)
    assert {doc["reason"] for doc in world.ledger(offer_id=offer.id, kind="waitlist_result")} == {"already_answered"}
    assert [m for patient, _ in pairs for m in world.sms_to(patient) if "taken" in m["body"]] == []


def test_fifty_concurrent_claim_link_clicks_make_exactly_one_booking(live):
    world = live(mode="broadcast", wave_size=50, offer_ttl_minutes=60)
    pairs = world.waiting(50, phone=None, preferred_channel="email")
    appointment = world.cancel()
    world.wait_messages(50, channel="email")
    offer = world.offer(appointment)
    links = [world.claim_link(patient) for patient, _ in pairs]
    responses = at_once([lambda link=link: world.click(link) for link in links])
    assert [r.status_code for r in responses] == [200] * 50
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes == ["taken"] * 49 + ["won"]
    _one_consistent_winner(world, offer.id, [entry for _, entry in pairs])
    # the winner of a link claim is confirmed by message; the others heard it on the page already
    winner = next(p for (p, e) in pairs if e == world.offer(appointment).winner_entry_id)
    eventually(lambda: [m for m in world.emails_to(winner) if "booked" in (m["subject"] or "")], WAIT)


def test_replies_and_clicks_mixed_make_exactly_one_booking(live):
    world = live(mode="broadcast", wave_size=40, offer_ttl_minutes=60)
    texters = world.waiting(20)
    clickers = world.waiting(20, phone=None, preferred_channel="email")
    appointment = world.cancel()
    world.wait_messages(20, contains="Reply YES")
    world.wait_messages(20, channel="email")
    offer = world.offer(appointment)
    calls = [lambda p=patient: world.signed(world.form(p, "YES")) for patient, _ in texters]
    links = [world.claim_link(patient) for patient, _ in clickers]
    calls += [lambda link=link: world.click(link) for link in links]
    responses = at_once(calls)
    assert all(r.status_code == 200 for r in responses)
    wins = sum("booked" in (twiml_text(r.text) or "") for r in responses[:20])
    wins += sum(r.json()["outcome"] == "won" for r in responses[20:])
    assert wins == 1
    _one_consistent_winner(world, offer.id, [entry for _, entry in texters + clickers])


def _one_consistent_winner(world: Live, offer_id: str, entries: list[str]) -> None:
    (appointment,) = booked(world, offer_id)
    offer = world.offer(world.scene.doc(f"slot_offers/{offer_id}")["source_appointment_id"])
    assert offer.status == "filled" and offer.winner_entry_id == appointment["waitlist_entry_id"]
    assert offer.booked_appointment_id == booked_appointment_id(offer_id)
    losers = [entry for entry in entries if entry != offer.winner_entry_id]
    assert world.entry_status(offer.winner_entry_id) == "booked"
    eventually(lambda: all(world.entry_status(entry) == "waiting" for entry in losers), WAIT)
    answers = world.store.client.collection("slot_offers").document(offer_id).collection("answers").stream()
    outcomes = sorted(str((snapshot.to_dict() or {}).get("outcome")) for snapshot in answers)
    assert outcomes == ["taken"] * len(losers) + ["won"]


def test_a_forged_or_missing_signature_is_refused_and_nothing_is_written(live):
    world = live(wave_size=2)
    (patient, entry), _ = world.waiting(2)
    appointment = world.cancel()
    world.wait_messages(2, contains="Reply YES")
    form = world.form(patient, "YES")
    assert world.signed(form, signature="forged-signature").status_code == 403
    assert world.signed(form, signature="").status_code == 403
    other_url = world.signed({**form, "Body": "NO"}, signature=_signature_for(world, form))
    assert other_url.status_code == 403  # a signature of another body
    assert world.offer(appointment).status == "open" and world.entry_status(entry) == "offered"
    assert list(world.store.client.collection("inbound_sms").stream()) == []


def _signature_for(world: Live, form: dict[str, str]) -> str:
    from twilio.request_validator import RequestValidator

    from local.sandbox.settings import DEFAULT_AUTH_TOKEN

    return RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(world.inbound_url, form)


def test_a_replayed_message_sid_has_one_effect(live):
    world = live(wave_size=2)
    (patient, entry), (other, _) = world.waiting(2)
    appointment = world.cancel()
    world.wait_messages(2, contains="Reply YES")
    form = world.form(patient, "YES")
    first, again = world.signed(form), world.signed(form)
    assert first.status_code == again.status_code == 200 and first.text == again.text
    assert "booked" in (twiml_text(first.text) or "")
    assert len(booked(world, world.offer(appointment).id)) == 1
    request = world.form(other, "Could I reschedule my appointment please?")
    assert [world.signed(request).status_code for _ in range(3)] == [200, 200, 200]
    assert len(list(world.store.client.collection("patient_requests").stream())) == 1
    assert len(list(world.store.client.collection("inbound_sms").stream())) == 2


def test_forged_expired_or_reused_claim_tokens_are_refused_and_write_nothing(live):
    world = live(wave_size=2, offer_ttl_minutes=30)
    (clicker, entry), (late, late_entry) = world.waiting(2, phone=None, preferred_channel="email")
    appointment = world.cancel()
    world.wait_messages(2, channel="email")
    offer = world.offer(appointment)
    link = world.claim_link(clicker)

    def answers() -> int:
        return len(list(world.store.client.collection("slot_offers").document(offer.id).collection("answers").stream()))

    token = parse_qs(urlsplit(link).query)["t"][0]
    forged = requests.post(
        world.claim_url, data={"t": token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")}, timeout=30
    )
    assert forged.status_code == 403 and answers() == 0
    key = b"local-stack-waitlist-claim-key"
    stale = tokens.sign(key, offer.id, late_entry, offer.start - timedelta(days=3))
    assert requests.post(world.claim_url, data={"t": stale}, timeout=30).status_code == 410 and answers() == 0
    assert requests.get(link, timeout=30).status_code == 200 and answers() == 0  # showing it writes nothing
    assert world.click(link).json()["outcome"] == "won"
    reused = world.click(link)
    assert (reused.status_code, reused.json()["outcome"]) == (409, "reused") and answers() == 1
    assert world.entry_status(late_entry) in ("offered", "waiting") and len(booked(world, offer.id)) == 1
    assert world.entry_status(entry) == "booked"


def test_stop_then_no_sms_offer_start_then_sms_again(live):
    world = live(wave_size=1, offer_ttl_minutes=30)
    patient = world.scene.patient()
    first_entry, second_entry = world.scene.entry(patient), world.scene.entry(patient)
    stop = world.reply(patient, "STOP")
    assert stop["keyword_action"] == "opt_out" and twiml_text(stop["body"]) is None
    assert world.scene.doc(f"patients/{patient}")["sms_opt_out"] is True
    first = world.cancel()
    link = world.claim_link(patient)  # the offer went by email
    assert world.sms_to(patient) == []
    assert world.click(link).json()["outcome"] == "won"
    assert world.entry_status(first_entry) == "booked"

    start = world.reply(patient, "START")
    assert start["keyword_action"] == "opt_in" and world.scene.doc(f"patients/{patient}")["sms_opt_out"] is False
    second = world.cancel(start=world.offer(first).start + timedelta(days=1))
    eventually(lambda: [m for m in world.sms_to(patient) if "Reply YES" in m["body"]], WAIT)
    assert world.offer(second).wave_entry_ids == (second_entry,)


def test_help_answers_with_the_clinic_name_and_phone(live):
    world = live()
    answer = world.reply(world.scene.patient(), "HELP")
    text = twiml_text(answer["body"]) or ""
    assert "Glow Aesthetics" in text and "+12125550142" in text


def test_c_confirms_the_next_appointment_once(live):
    world = live()
    patient = world.scene.patient()
    appointment = world.scene.appointment(patient)
    answer = world.reply(patient, "C")
    assert "confirmed" in (twiml_text(answer["body"]) or "")
    doc = world.scene.doc(f"appointments/{appointment}")
    assert doc["status"] == "confirmed" and doc["confirmed_via"] == "sms"
    assert "already confirmed" in (twiml_text(world.reply(patient, "CONFIRM")["body"]) or "")


def test_a_text_asking_to_reschedule_is_a_front_desk_request_never_a_change(live):
    world = live()
    patient = world.scene.patient()
    appointment = world.scene.appointment(patient)
    answer = world.reply(patient, "Hi, can we move my appointment to next week?")
    assert "will contact you" in (twiml_text(answer["body"]) or "")
    (request,) = [s.to_dict() or {} for s in world.store.client.collection("patient_requests").stream()]
    assert (request["kind"], request["appointment_id"], request["status"]) == ("reschedule", appointment, "open")
    assert world.scene.doc(f"appointments/{appointment}")["status"] == "booked"


def test_malformed_input_gets_a_classified_answer_never_a_5xx(live, stack):
    world = live(wave_size=2)
    patient, _ = world.waiting(1)[0]
    world.scene.entry(world.scene.patient(), earliest="not a time")  # a broken entry is skipped, not fatal
    inbound, claim = world.inbound_url, world.claim_url
    answers = [
        world.signed({"Body": "YES"}),
        world.signed({**world.form(patient, "YES"), "From": "nobody"}),
        world.signed({**world.form(patient, "\U0001f600 YES \u202e"), "MessageSid": "SM" + "e" * 32}),
        world.signed({**world.form(patient, "YES"), "To": "+19995550000"}),
        requests.post(inbound, data={"Body": "YES"}, timeout=30),
        requests.post(inbound, data="x" * 70_000, timeout=30),
        requests.post(inbound, json={"MessageSid": 3}, timeout=30),
        requests.get(claim, timeout=30),
        requests.get(claim, params={"t": "v1.\u00e9.x"}, timeout=30),
        requests.post(claim, data={"t": "a" * 10_000}, timeout=30),
        requests.put(claim, timeout=30),
    ]
    statuses = [response.status_code for response in answers]
    assert statuses == [200, 200, 200, 200, 403, 413, 403, 403, 403, 403, 405], statuses
    assert all(twiml_text(r.text) is None for r in answers[:2])

    from local import identity

    cancellations = stack.url("waitlist-cancellations")
    eventarc = identity.caller_headers(
        stack.state_dir,
        email=identity.service_account(stack.project, "events-invoker"),
        audience=cancellations,
    )
    for data in ("", "bm90IGpzb24=", "eyJldmVudCI6ICJhcHBvaW50bWVudC5jYW5jZWxsZWQifQ==", "!!"):
        event = _cloud_event(data)
        pushed = requests.post(cancellations, data=event[1], headers={**event[0], **eventarc}, timeout=30)
        assert pushed.status_code == 200
    world.publish("appointment.cancelled", "appt-does-not-exist")
    appointment = world.cancel()
    offered = world.wait_offer(appointment, lambda o: o.wave >= 1 or not o.is_open)
    assert len(offered.wave_entry_ids) == 1  # the valid entry is offered despite the broken one
    from tests.handler_support import post

    for body in (
        {"type": "waitlist_offer", "v": 1, "offer_id": "o", "phone": "+15551234567"},
        {"type": "waitlist_result", "v": 1, "outcome": "maybe"},
        {"type": "waitlist_wave", "v": 1, "offer_id": "a/b", "clinic_id": "c", "wave": 1},
    ):
        response = post(stack, body)
        assert response.status_code == 200 and response.json()["outcome"] == "rejected", body
    eventually(lambda: len(list(world.store.client.collection("failed_tasks").stream())) >= 3, WAIT)


def _cloud_event(data: str) -> tuple[dict[str, str], bytes]:
    import json
    import uuid

    headers = {
        "Content-Type": "application/json",
        "ce-id": uuid.uuid4().hex,
        "ce-source": "//pubsub.googleapis.com/projects/medspa-local/topics/appointment-events",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-specversion": "1.0",
    }
    return headers, json.dumps({"message": {"data": data, "messageId": "1"}, "subscription": "s"}).encode()


def test_the_consoles_conversation_replies_as_the_patient(live, stack):
    from local.sandbox.console.conversations import thread_id

    world = live(wave_size=1)
    ((patient, entry),) = world.waiting(1)
    appointment = world.cancel()
    (offer_sms,) = world.wait_messages(1, contains="Reply YES")
    thread = thread_id(offer_sms)
    page = requests.get(f"{stack.sandbox_url}/conversations/{thread}", timeout=10).text
    assert f'action="/conversations/{thread}/reply"' in page and 'value="YES"' in page
    sent = requests.post(f"{stack.sandbox_url}/conversations/{thread}/reply", data={"body": "YES"}, timeout=60)
    assert sent.status_code == 200 and sent.url.startswith(f"{stack.sandbox_url}/conversations/{thread}?sent=SM")
    assert "the webhook answered 200" in sent.text  # back on the conversation, which says how it went
    assert world.offer(appointment).status == "filled" and world.entry_status(entry) == "booked"
    (inbound,) = [m for m in world.sandbox.messages(direction="inbound") if m["from"] == world.phone(patient)]
    assert inbound["body"] == "YES" and inbound["callbacks"][0]["http_status"] == 200
    assert inbound["reply"] and "booked" in inbound["reply"].lower()  # the TwiML reply Twilio sends back
    refused = requests.post(f"{stack.sandbox_url}/conversations/tnope/reply", data={"body": "YES"}, timeout=10)
    assert refused.status_code == 400


def test_the_same_cancellation_delivered_three_times_is_one_offer_and_one_set_of_messages(live):
    world = live(wave_size=3)
    world.waiting(3)
    appointment = world.cancel()
    for _ in range(2):
        world.publish("appointment.cancelled", appointment)
    world.wait_messages(3, contains="Reply YES")
    offers = list(world.store.client.collection("slot_offers").stream())
    assert len(offers) == 1 and world.offer(appointment).wave == 1
    eventually(lambda: len(world.ledger(kind="waitlist_offer")) == 3, WAIT)
    # every delivery has been handled once the bridge has nothing left; still three offers, no more
    assert not _quietly_more(world, 3)


def _quietly_more(world: Live, count: int) -> bool:
    """True if more than `count` offer SMS show up within a few seconds (they must not)."""
    from local.processes import wait_until

    return wait_until(lambda: len(world.wait_messages(count, contains="Reply YES")) > count, 5.0)
