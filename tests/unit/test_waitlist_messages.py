"""waitlist_offer and waitlist_result on the in-memory store and recording providers: what is sent, what is
skipped and why, and what the patient reads."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.contract.models import Clinic, Patient
from shared.messaging.templates import sms_segments
from shared.platform.errors import PermanentError, RetryableError
from shared.waitlist import tokens
from shared.waitlist.tasks import (
    Result,
    WaitlistOfferTask,
    WaitlistResultTask,
    WaveTask,
    new_offer_task,
    new_result_task,
)
from shared.waitlist.templates import REPLY_KINDS, offer_email, offer_sms, reply_text, result_sms
from tests.bodies import parse_task
from tests.fakes import MemoryStore
from tests.waitlist_support import ATTEMPT, CLINIC, NOW, TOKEN_KEY, Scene


@pytest.fixture
def scene() -> Scene:
    return Scene(MemoryStore())


def offered(scene: Scene, count: int = 1, **patient_fields):
    entries = [scene.entry(scene.patient(**patient_fields)) for _ in range(count)]
    appointment = scene.cancelled(service_name="Lip filler")
    for entry in entries:
        scene.store.put(f"waitlist/{entry}", {**scene.doc(f"waitlist/{entry}"), "service_name": "Lip filler"})
    scene.open(appointment)
    return scene.offer_of(appointment), entries


def offer_task(scene: Scene, index: int = 0) -> WaitlistOfferTask:
    return parse_task(scene.tasks("waitlist_offer")[index], WaitlistOfferTask)


def test_an_sms_offer_asks_for_yes_by_a_local_time_and_never_names_the_treatment(scene):
    offer, _ = offered(scene)
    outcome = scene.messages().deliver_offer(offer_task(scene), ATTEMPT)
    assert (outcome.status, outcome.channel) == ("sent", "sms")
    (sms,) = scene.sms.sent
    assert "Reply YES by 10:30 AM" in sms.body and "Thu, Nov 26 at 10:00 AM" in sms.body
    assert "filler" not in sms.body.lower() and "STOP" not in sms.body and sms_segments(sms.body) <= 2
    assert sms.sender == CLINIC["sms_from"]


def test_a_patient_without_sms_gets_an_email_with_a_one_time_claim_link(scene):
    offer, (entry,) = offered(scene, phone=None, preferred_channel="email")
    outcome = scene.messages().deliver_offer(offer_task(scene), ATTEMPT)
    assert outcome.channel == "email" and scene.sms.sent == []
    (email,) = scene.email.sent
    link = next(word for word in email.text.split() if word.startswith("https://claim.example.test/"))
    token = parse_qs(urlsplit(link).query)["t"][0]
    claim = tokens.verify(TOKEN_KEY, token, NOW)
    assert (claim.offer_id, claim.entry_id, claim.expires_at) == (offer.id, entry, offer.expires_at)
    assert "filler" not in (email.subject + email.text + email.html).lower()
    assert 'href="https://claim.example.test/?t=' in email.html


def test_a_delivered_offer_is_never_sent_twice(scene):
    offered(scene)
    service = scene.messages()
    assert service.deliver_offer(offer_task(scene), ATTEMPT).status == "sent"
    assert service.deliver_offer(offer_task(scene), ATTEMPT).status == "duplicate"
    assert len(scene.sms.sent) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("filled", "offer_filled"),
        ("window", "window_over"),
        ("opted_out", "opted_out"),
        ("busy", "busy_then"),
        ("released", "not_offered"),
    ],
)
def test_an_offer_is_checked_just_before_sending(scene, change, reason):
    offer, (entry, other) = offered(scene, 2)
    patient = scene.doc(f"waitlist/{entry}")["patient_id"]
    if change == "filled":
        scene.claims().claim(offer.id, other, channel="sms")
    elif change == "window":
        scene.clock.advance(minutes=30)
    elif change == "opted_out":
        scene.store.update(f"patients/{patient}", {"sms_opt_out": True, "email_opt_out": True})
    elif change == "busy":
        scene.appointment(patient, start=offer.start)
    else:
        scene.store.update(f"waitlist/{entry}", {"status": "waiting", "offer_id": None})
    outcome = scene.messages().deliver_offer(offer_task(scene, 0), ATTEMPT)
    assert (outcome.status, outcome.reason) == ("skipped", reason)
    assert scene.sms.sent == [] and scene.email.sent == []


def test_a_task_naming_someone_else_is_refused(scene):
    offered(scene)
    task = offer_task(scene)
    forged = WaitlistOfferTask(task.offer_id, task.entry_id, task.clinic_id, "pat-other", 1, task.dedup_key)
    with pytest.raises(PermanentError) as refused:
        scene.messages().deliver_offer(forged, ATTEMPT)
    assert refused.value.code == "payload_mismatch"


def test_results_go_to_those_who_have_no_answer_yet(scene):
    offer, (winner, silent, answered) = offered(scene, 3)
    claims = scene.claims()
    claims.claim(offer.id, winner, channel="sms")
    claims.claim(offer.id, answered, channel="sms")
    scene.clock.advance(minutes=30)
    scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)  # the window's end
    service = scene.messages()
    outcomes = {
        task["entry_id"]: service.deliver_result(parse_task(task, WaitlistResultTask), ATTEMPT)
        for task in scene.tasks("waitlist_result")
    }
    assert set(outcomes) == {silent, answered}
    assert outcomes[silent].status == "sent" and (outcomes[answered].status, outcomes[answered].reason) == (
        "skipped",
        "already_answered",
    )
    (sms,) = scene.sms.sent
    assert "has just been taken" in sms.body and "waitlist" in sms.body


def texts_yes(scene: Scene, entry_id: str):
    """The patient of `entry_id` texts YES (the inbound webhook, as Twilio calls it)."""
    phone = scene.doc(f"patients/{scene.doc(f'waitlist/{entry_id}')['patient_id']}")["phone"]
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": phone, "To": CLINIC["sms_from"], "Body": "YES"}
    return scene.conversations().handle(form)


def texts_to(scene: Scene, entry_id: str) -> list[str]:
    phone = scene.doc(f"patients/{scene.doc(f'waitlist/{entry_id}')['patient_id']}")["phone"]
    return [m.body for m in scene.sms.sent if m.to == phone]


def taken_at_the_windows_end(scene: Scene):
    """Two offered, the first wins by SMS, the window ends: (offer, the other entry, its "taken" result task)."""
    offer, (winner, other) = offered(scene, 2)
    scene.claims().claim(offer.id, winner, channel="sms")
    scene.clock.advance(minutes=31)
    scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)  # the window's end
    (task,) = [parse_task(t, WaitlistResultTask) for t in scene.tasks("waitlist_result") if t["entry_id"] == other]
    return offer, other, task


def test_a_yes_recorded_while_its_taken_result_is_being_sent_gets_only_the_reply(scene):
    # The race: the result task has read "no answer yet" when the patient's YES is answered ("taken");
    # the result must then not go out as well. Whichever records the entry's answer first tells the patient.
    offer, racer, task = taken_at_the_windows_end(scene)
    replies = []
    scene.store.after_read = lambda: replies.append(texts_yes(scene, racer))  # right after the task's read
    outcome = scene.messages().deliver_result(task, ATTEMPT)
    (reply,) = replies
    assert reply.outcome == "taken" and "has just been taken" in (reply.text or "")
    assert (outcome.status, outcome.reason) == ("skipped", "already_answered")
    assert texts_to(scene, racer) == []


def test_a_result_sent_first_is_the_answer_a_later_yes_replays(scene):
    # The other order: the result told the patient first; a YES after it hears the same outcome again and
    # records nothing new (the link would still show "taken", never "already used").
    offer, late, task = taken_at_the_windows_end(scene)
    assert scene.messages().deliver_result(task, ATTEMPT).status == "sent"
    claim = scene.claims().claim(offer.id, late, channel="link")
    assert (claim.outcome, claim.replay) == ("taken", False)
    assert scene.doc(f"slot_offers/{offer.id}/answers/{late}")["channel"] == "message"
    assert len(texts_to(scene, late)) == 1


def test_a_result_retried_after_recording_its_answer_is_still_sent(scene):
    # its own "message" answer is no patient's: a transient send failure's retry sends it
    offer, silent, task = taken_at_the_windows_end(scene)
    scene.sms.fail_with.append(RetryableError("twilio 503", code="twilio_unavailable"))
    with pytest.raises(RetryableError):
        scene.messages().deliver_result(task, ATTEMPT)
    assert scene.messages().deliver_result(task, ATTEMPT).status == "sent"
    assert len(texts_to(scene, silent)) == 1


def test_taken_is_texted_only_at_the_windows_end_so_whoever_answers_in_it_hears_it_only_in_the_reply(scene):
    # 50 patients answer at once; the slot fills with the first, and some YES are still on their way to the
    # webhook when the settle runs. The "taken" text waits for the window's end (the offer's own deadline),
    # by which every answer sent within the window has been answered in its reply.
    offer, (winner, in_flight, silent) = offered(scene, 3)
    scene.claims().claim(offer.id, winner, channel="sms")
    scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)  # the settle right after the win
    assert scene.tasks("waitlist_result") == []
    assert scene.doc(f"waitlist/{silent}")["status"] == "waiting"  # released at once, free for other offers
    reply = texts_yes(scene, in_flight)
    assert reply.outcome == "taken"
    scene.clock.advance(minutes=30)
    scene.waves().handle(WaveTask(offer.id, scene.clinic_id, 1), ATTEMPT)  # the window's end
    service = scene.messages()
    for task in scene.tasks("waitlist_result"):
        service.deliver_result(parse_task(task, WaitlistResultTask), ATTEMPT)
    assert texts_to(scene, in_flight) == [] and texts_to(scene, winner) == []
    (told,) = texts_to(scene, silent)
    assert "has just been taken" in told


def test_a_link_winner_gets_a_confirmation_an_sms_winner_does_not(scene):
    offer, (winner,) = offered(scene)
    patient = scene.doc(f"waitlist/{winner}")["patient_id"]
    service = scene.messages()
    won = new_result_task(offer.id, winner, scene.clinic_id, patient, Result.WON)
    scene.claims().claim(offer.id, winner, channel="sms")
    assert service.deliver_result(won, ATTEMPT).reason == "answered_by_reply"
    other_offer, (link_winner,) = offered(scene)
    scene.claims().claim(other_offer.id, link_winner, channel="link")
    task = new_result_task(
        other_offer.id, link_winner, scene.clinic_id, scene.doc(f"waitlist/{link_winner}")["patient_id"], Result.WON
    )
    assert service.deliver_result(task, ATTEMPT).status == "sent"
    assert "you're booked" in scene.sms.sent[-1].body


def test_result_skips_for_a_removed_entry_or_a_wrong_winner(scene):
    offer, (entry, removed, other) = offered(scene, 3)
    scene.claims().claim(offer.id, other, channel="link")
    wrong = new_result_task(offer.id, entry, scene.clinic_id, scene.doc(f"waitlist/{entry}")["patient_id"], Result.WON)
    assert scene.messages().deliver_result(wrong, ATTEMPT).reason == "not_the_winner"
    again = new_result_task(
        offer.id, entry, scene.clinic_id, scene.doc(f"waitlist/{entry}")["patient_id"], Result.TAKEN
    )
    assert scene.messages().deliver_result(again, ATTEMPT).status == "duplicate"  # one result per entry and offer
    scene.store.update(f"waitlist/{removed}", {"status": "removed"})
    patient = scene.doc(f"waitlist/{removed}")["patient_id"]
    taken = new_result_task(offer.id, removed, scene.clinic_id, patient, Result.TAKEN)
    assert scene.messages().deliver_result(taken, ATTEMPT).reason == "entry_removed"


def test_a_missing_offer_or_clinic(scene):
    offered(scene)
    task = offer_task(scene)
    gone = WaitlistOfferTask("offer-" + "9" * 40, task.entry_id, task.clinic_id, task.patient_id, 1, task.dedup_key)
    with pytest.raises(PermanentError):
        parse_task(gone.to_json(), WaitlistOfferTask)  # the key no longer matches its ids
    missing = new_offer_task("offer-" + "9" * 40, task.entry_id, task.clinic_id, task.patient_id, 1)
    assert scene.messages().deliver_offer(missing, ATTEMPT).reason == "offer_missing"
    elsewhere = new_offer_task(task.offer_id, task.entry_id, "clinic-nowhere", task.patient_id, 1)
    with pytest.raises(PermanentError):
        scene.messages().deliver_offer(elsewhere, ATTEMPT)


# ------------------------------------------------------------------------------------- task bodies


def test_task_bodies_round_trip_and_refuse_anything_else():
    offer = new_offer_task("offer-1", "wl-1", "clinic-1", "pat-1", 2)
    result = new_result_task("offer-1", "wl-1", "clinic-1", "pat-1", Result.TAKEN)
    assert (
        parse_task(offer.to_json(), WaitlistOfferTask) == offer
        and parse_task(result.to_json(), WaitlistResultTask) == result
    )
    assert offer.failure_key == offer.dedup_key and result.failure_key == result.dedup_key
    bad_bodies = [
        ({**offer.to_json(), "wave": 0}, WaitlistOfferTask),
        ({**offer.to_json(), "wave": None}, WaitlistOfferTask),
        ({**offer.to_json(), "phone": "+15551234567"}, WaitlistOfferTask),
        ({**offer.to_json(), "type": "waitlist_result"}, WaitlistOfferTask),
        ({**result.to_json(), "outcome": "maybe"}, WaitlistResultTask),
        ({**result.to_json(), "dedup_key": offer.dedup_key}, WaitlistResultTask),
        ({**result.to_json(), "type": "waitlist_offer"}, WaitlistResultTask),
    ]
    for body, cls in bad_bodies:
        with pytest.raises(PermanentError):
            parse_task(body, cls)
    assert isinstance(result, WaitlistResultTask)


# ---------------------------------------------------------------------------------------- the texts

CLINIC_DOC = Clinic.from_doc("c1", CLINIC)


@pytest.mark.parametrize("locale", ["en", "es"])
def test_every_waitlist_text_is_gsm7_within_two_segments_and_never_asks_for_cancel(locale):
    patient = Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Ana", "locale": locale})
    start = NOW + timedelta(days=1)
    texts = [offer_sms(clinic=CLINIC_DOC, patient=patient, start=start, deadline=NOW + timedelta(minutes=30))]
    texts += [result_sms(o, clinic=CLINIC_DOC, patient=patient, start=start) for o in ("won", "taken", "expired")]
    texts += [reply_text(kind, clinic=CLINIC_DOC, patient=patient, start=start) for kind in REPLY_KINDS]
    for body in texts:
        assert sms_segments(body) <= 2, body
        assert "CANCEL" not in body and "reply cancel" not in body.lower(), body  # never a keyword to reply
    email = offer_email(
        clinic=CLINIC_DOC, patient=patient, start=start, deadline=start, link="https://x.test/?t=a&b=<c>"
    )
    assert "&lt;c&gt;" in email.html and "<c>" not in email.html


def test_only_the_help_answer_and_the_marketing_opt_in_confirmation_name_stop():
    patient = Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Ana"})
    naming = [kind for kind in REPLY_KINDS if "STOP" in reply_text(kind, clinic=CLINIC_DOC, patient=patient)]
    assert naming == ["help", "joined"]


@pytest.mark.parametrize("kind", ["help", "joined"])
def test_help_and_the_opt_in_confirmation_say_what_ctia_asks(kind):
    clinic = Clinic.from_doc(
        "c1", {**CLINIC, "marketing": {"program_name": "Glow Perks", "frequency": "Up to 2 msgs/month"}}
    )
    patient = Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Ana"})
    body = reply_text(kind, clinic=clinic, patient=patient)
    for part in ("Glow Perks", "Up to 2 msgs/month", "Msg & data rates may apply", "Reply", "STOP"):
        assert part in body, (part, body)
    assert ("HELP for help" in body) if kind == "joined" else (CLINIC["phone"] in body)


@pytest.mark.parametrize(("status", "asks"), [("booked", True), ("confirmed", False)])
def test_a_booked_appointments_reminder_asks_for_c_and_a_confirmed_ones_does_not(status, asks):
    from shared.contract.models import Appointment
    from shared.messaging.templates import render_sms

    appointment = Appointment.from_doc(
        "a1",
        {
            "clinic_id": "c1",
            "patient_id": "p1",
            "service_name": "Botox",
            "status": status,
            "start": NOW + timedelta(days=1),
            "end": NOW + timedelta(days=1, hours=1),
        },
    )
    patient = Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Ana"})
    sms = render_sms("appointment_reminder", clinic=CLINIC_DOC, patient=patient, appointment=appointment)
    assert ("Reply C to confirm" in sms) is asks and "HELP" in sms and sms_segments(sms) <= 2
