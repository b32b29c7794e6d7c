"""The one claim → send → record sequence, on the fakes: lost and live claims, a stale sender after a
takeover, an answer lost (reconciled from a recorded callback or the provider's message list before any
re-send), transient failures and the queue's last attempt."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.messaging.channels import Channel, Recipient
from shared.messaging.keys import message_key
from shared.messaging.ledger import Ledger, Planned, State
from shared.messaging.providers import RecipientRejected, SendUnconfirmed
from shared.messaging.sender import Wording
from shared.messaging.templates import Message
from shared.platform.errors import FailedEarlier, InvalidDocument, PermanentError, RetryableError
from tests.builders import FIRST_TRY, LAST_TRY, NOW, World, attempt

EMAIL = Message(subject="s", text="t", html="<p>t</p>")


@pytest.fixture
def world() -> World:
    return World()


def reminder(world: World):
    return world.task(world.appointment(world.patient()))


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"state": "sent_by_hand"}, "state"),
        ({"state": "unconfirmed", "unconfirmed_at": "a minute ago"}, "unconfirmed_at"),
    ],
)
def test_a_ledger_doc_that_breaks_the_contract_is_refused_and_nothing_is_sent(world, doc, field):
    task = reminder(world)
    world.store.put(f"notifications/{task.dedup_key}", doc)
    with pytest.raises(InvalidDocument) as caught:
        world.messages().deliver(task, FIRST_TRY)
    assert caught.value.field == field and world.sms.sent == [] and world.email.sent == []
    assert world.entry(task.dedup_key) == doc


def test_an_answer_lost_is_recorded_unconfirmed_and_never_simply_resent(world):
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed) as caught:
        world.messages().deliver(task, FIRST_TRY)
    assert caught.value.code == "twilio_answer_lost" and not caught.value.throttled
    entry = world.entry(task.dedup_key)
    assert entry["state"] == "unconfirmed" and entry["reason"] == "twilio_answer_lost" and entry["channel"] == "sms"
    assert entry["lease_until"] is None


def test_the_next_attempt_finds_the_lost_message_at_the_provider_and_sends_nothing(world):
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    first_sid = world.sms.listed[0].sid
    outcome = world.messages().deliver(task, attempt(1))
    assert (outcome.status, outcome.reason, outcome.provider_message_id) == ("sent", "found_at_provider", first_sid)
    assert len(world.sms.sent) == 1 and world.sms.lookups == 1
    entry = world.entry(task.dedup_key)
    assert entry["state"] == "sent" and entry["provider_message_id"] == first_sid and entry["reason"] is None


def test_a_callback_that_arrived_before_the_answer_was_lost_confirms_the_send(world):
    task = reminder(world)
    ledger = world.ledger()

    def twilio_calls_back(message, sid):
        ledger.record_delivery(task.dedup_key, generation=1, message_id=sid, status="sent", error_code=None)

    world.sms.on_send, world.sms.accepted_then_lost = twilio_calls_back, 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    world.sms.on_send = None
    world.sms.listed.clear()  # the provider's list cannot help: the callback alone is the evidence
    outcome = world.messages().deliver(task, attempt(1))
    assert (outcome.status, outcome.reason) == ("sent", "confirmed_by_callback")
    assert len(world.sms.sent) == 1 and world.sms.lookups == 0
    assert world.entry(task.dedup_key)["provider_message_id"] == outcome.provider_message_id


def test_a_callback_after_the_answer_was_lost_confirms_it_before_the_retry_comes(world):
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    sid = world.sms.listed[0].sid
    assert world.ledger().record_delivery(
        task.dedup_key, generation=1, message_id=sid, status="queued", error_code=None
    )
    assert world.entry(task.dedup_key)["state"] == "sent"
    assert world.messages().deliver(task, attempt(1)).status == "duplicate" and len(world.sms.sent) == 1


def test_an_unconfirmed_send_the_provider_never_got_is_sent_again(world):
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    world.sms.listed.clear()  # the request went out, the provider has no such message
    with pytest.raises(RetryableError) as waiting:  # evidence can lag: not yet
        world.messages().deliver(task, attempt(1))
    assert waiting.value.code == "awaiting_provider_evidence" and waiting.value.throttled
    assert len(world.sms.sent) == 1
    world.clock.advance(seconds=61)  # past the wait, still nothing: truly absent
    outcome = world.messages().deliver(task, attempt(2))
    assert outcome.status == "sent" and outcome.reason == "" and len(world.sms.sent) == 2
    entry = world.entry(task.dedup_key)
    assert entry["generation"] == 2 and entry["provider_message_id"] == outcome.provider_message_id


def test_a_message_to_the_same_number_with_another_body_is_not_taken_for_ours(world):
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    lost = world.sms.listed.pop()
    world.sms.listed.append(type(lost)(sid="SM" + "9" * 32, to=lost.to, sender=lost.sender, body="other", sent_at=None))
    world.clock.advance(seconds=61)
    outcome = world.messages().deliver(task, attempt(1))
    assert outcome.reason == "" and outcome.provider_message_id != "SM" + "9" * 32 and len(world.sms.sent) == 2


def lost_then_listed_at(world: World, moved: timedelta):
    """A reminder whose answer was lost and which the provider never got; the provider's list holds a message
    with its very words, sent `moved` from the lost send (a rebooked appointment's, another sender's)."""
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    lost = world.sms.listed.pop()
    assert lost.sent_at == NOW
    other = type(lost)(sid="SM" + "8" * 32, to=lost.to, sender=lost.sender, body=lost.body, sent_at=NOW + moved)
    world.sms.listed.append(other)
    world.clock.advance(seconds=61)
    return task, other


def test_a_message_with_our_words_sent_before_the_claim_is_not_taken_for_ours(world):
    # Two minutes early: inside the window the provider's list answers (since the claim, less its clock
    # allowance), outside the sender's own (since the claim, less a few seconds).
    task, other = lost_then_listed_at(world, -timedelta(minutes=2))
    assert [m.sid for m in world.sms.find_sent(to=other.to, sender=other.sender, since=NOW)] == [other.sid]
    outcome = world.messages().deliver(task, attempt(1))
    assert outcome.reason == "" and outcome.provider_message_id != other.sid and len(world.sms.sent) == 2


def test_a_message_with_our_words_sent_after_the_answer_was_lost_is_not_taken_for_ours(world):
    task, other = lost_then_listed_at(world, timedelta(seconds=30))
    outcome = world.messages().deliver(task, attempt(1))
    assert outcome.reason == "" and outcome.provider_message_id != other.sid and len(world.sms.sent) == 2


def test_a_message_with_our_words_sent_at_the_claim_is_ours(world):
    # The same message a second off (Twilio dates messages in whole seconds): found, not sent again.
    task, other = lost_then_listed_at(world, timedelta(seconds=1))
    outcome = world.messages().deliver(task, attempt(1))
    assert (outcome.reason, outcome.provider_message_id) == ("found_at_provider", other.sid)
    assert len(world.sms.sent) == 1


def test_the_provider_list_answers_from_the_claim_on(world):
    task, other = lost_then_listed_at(world, -timedelta(hours=1))
    assert world.sms.find_sent(to=other.to, sender=other.sender, since=NOW) == []
    assert world.sms.find_sent(to=other.to, sender=other.sender, since=NOW - timedelta(hours=2)) == [other]


def test_an_unconfirmed_email_without_an_event_is_sent_again_after_the_wait(world):
    task = world.task(world.appointment(world.patient(preferred_channel="email")))
    world.email.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    assert world.entry(task.dedup_key)["channel"] == "email"
    world.clock.advance(seconds=61)  # SendGrid's "processed" event never came: it never got it
    assert world.messages().deliver(task, attempt(1)).status == "sent"
    assert len(world.email.sent) == 2 and world.sms.lookups == 0


def test_an_unconfirmed_send_is_never_sent_blind_on_the_last_attempt(world):
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    world.sms.listed.clear()
    world.clock.advance(seconds=61)
    with pytest.raises(RetryableError) as caught:  # recorded in failed_tasks by the router: an operator decides
        world.messages().deliver(task, LAST_TRY)
    assert caught.value.code == "send_unconfirmed" and len(world.sms.sent) == 1
    assert world.entry(task.dedup_key)["state"] == "unconfirmed"


def test_a_sender_that_died_after_sending_is_found_by_the_takeover_not_sent_again(world):
    task = reminder(world)
    killed = []

    def dies_after_sending(message, sid):  # the process is killed: no except clause of ours runs
        killed.append(sid)
        raise KeyboardInterrupt

    world.sms.on_send = dies_after_sending
    with pytest.raises(KeyboardInterrupt):
        world.messages().deliver(task, FIRST_TRY)
    world.sms.on_send = None
    assert world.entry(task.dedup_key)["state"] == "sending"
    world.clock.advance(minutes=3)  # its lease ran out; the retry takes over, and looks first
    outcome = world.messages().deliver(task, attempt(1))
    assert (outcome.status, outcome.reason, outcome.provider_message_id) == ("sent", "found_at_provider", killed[0])
    assert len(world.sms.sent) == 1 and world.entry(task.dedup_key)["generation"] == 1


def test_a_provider_lookup_that_fails_is_retried_and_sends_nothing(world):
    task = reminder(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    world.sms.lookup_fails.append(RetryableError("twilio down", code="twilio_unreachable"))
    with pytest.raises(RetryableError) as caught:
        world.messages().deliver(task, attempt(1))
    assert caught.value.code == "twilio_unreachable" and len(world.sms.sent) == 1
    assert world.entry(task.dedup_key)["state"] == "unconfirmed"


def test_a_transient_failure_gives_the_claim_back_and_success_clears_its_reason(world):
    task = reminder(world)
    world.sms.fail_with.append(RetryableError("twilio 503", code="twilio_unavailable"))
    with pytest.raises(RetryableError):
        world.messages().deliver(task, FIRST_TRY)
    entry = world.entry(task.dedup_key)
    assert entry["state"] == "scheduled" and entry["reason"] == "twilio_unavailable" and entry["lease_until"] is None
    assert world.messages().deliver(task, attempt(1)).status == "sent"
    entry = world.entry(task.dedup_key)
    assert entry["state"] == "sent" and entry["reason"] is None and entry["attempts"] == 2


def test_a_transient_failure_on_the_last_attempt_fails_the_message_with_its_code(world):
    task = reminder(world)
    world.sms.fail_with.append(RetryableError("twilio 503", code="twilio_unavailable"))
    with pytest.raises(RetryableError):
        world.messages().deliver(task, LAST_TRY)
    entry = world.entry(task.dedup_key)
    assert entry["state"] == "failed" and entry["reason"] == "twilio_unavailable" and entry["failed_at"] == NOW


@pytest.mark.parametrize(("last", "state"), [(False, "scheduled"), (True, "failed")])
def test_an_unexpected_error_is_given_back_by_its_class_name(world, last, state):
    task = reminder(world)
    world.sms.fail_with.append(ValueError("a bug in the client"))
    with pytest.raises(ValueError):
        world.messages().deliver(task, attempt(7 if last else 0, last=last))
    entry = world.entry(task.dedup_key)
    assert entry["state"] == state and entry["reason"] == "ValueError"


def test_a_permanent_provider_answer_fails_the_message(world):
    task = reminder(world)
    world.sms.fail_with.append(PermanentError("bad request", code="twilio_21602"))
    with pytest.raises(PermanentError):
        world.messages().deliver(task, FIRST_TRY)
    assert world.entry(task.dedup_key)["state"] == "failed" and world.entry(task.dedup_key)["reason"] == "twilio_21602"


def test_a_message_that_failed_is_failed_again_on_redelivery_and_sends_nothing(world):
    # The attempt that failed it may have died before its failed_tasks write: the redelivery says why again.
    task = reminder(world)
    world.sms.fail_with.append(PermanentError("bad request", code="twilio_21602"))
    with pytest.raises(PermanentError):
        world.messages().deliver(task, FIRST_TRY)
    with pytest.raises(FailedEarlier) as again:
        world.messages().deliver(task, attempt(1))
    assert again.value.code == "twilio_21602" and world.sms.sent == []
    assert world.entry(task.dedup_key)["state"] == "failed"


def test_a_message_a_provider_callback_failed_is_a_plain_duplicate(world):
    task = reminder(world)
    sent = world.messages().deliver(task, FIRST_TRY)
    world.ledger().record_delivery(
        task.dedup_key, generation=1, message_id=sent.provider_message_id, status="undelivered", error_code="30003"
    )
    assert world.entry(task.dedup_key)["state"] == "failed"
    outcome = world.messages().deliver(task, attempt(1))
    assert (outcome.status, outcome.reason) == ("duplicate", "failed") and len(world.sms.sent) == 1


def test_a_live_claim_sends_nothing_and_asks_to_come_back_after_its_lease(world):
    task = reminder(world)
    service = world.messages()
    ledger = world.ledger()
    ledger.claim(task.dedup_key, None, {})  # another instance is sending right now
    world.clock.advance(seconds=30)
    with pytest.raises(RetryableError) as caught:
        service.deliver(task, FIRST_TRY)
    assert caught.value.code == "claim_in_flight" and caught.value.throttled
    assert 80 <= caught.value.retry_after_seconds <= 91 and world.sms.sent == []


@pytest.mark.parametrize("the_attempt", [FIRST_TRY, LAST_TRY])
def test_a_claim_lost_to_a_concurrent_delivery_is_retried_and_on_the_last_attempt_recorded(world, the_attempt):
    # On the last attempt too: the concurrent winner may still give the message back (a transient failure of
    # its own), and then nothing would be left to send it; the router records the failure instead.
    task = reminder(world)
    world.ledger().schedule([Planned(task.dedup_key, {})])
    rival = Ledger(world.store, world.clock)
    world.store.after_read = lambda: rival.claim(task.dedup_key, rival.read(task.dedup_key), {})
    with pytest.raises(RetryableError) as caught:
        world.messages().deliver(task, the_attempt)
    assert caught.value.code == "claim_lost" and caught.value.throttled
    assert world.sms.sent == [] and world.entry(task.dedup_key)["generation"] == 1


def test_a_stale_sender_finishing_after_a_takeover_leaves_the_rescuers_result(world):
    task = reminder(world)
    slow = world.messages()
    rescuer_clock = type(world.clock)(NOW + timedelta(minutes=3))  # after the 2 min lease

    def stalls_until_rescued(message, sid):
        world.sms.on_send = None
        rescuer = World(store=world.store, clock=rescuer_clock, sms=world.sms, email=world.email)
        assert rescuer.messages().deliver(task, attempt(1)).status == "sent"

    world.sms.on_send = stalls_until_rescued
    outcome = slow.deliver(task, FIRST_TRY)
    assert outcome.status == "superseded"
    entry = world.entry(task.dedup_key)
    # The rescuer looked before sending, found the slow sender's message, and confirmed it: one message.
    assert entry["state"] == "sent" and entry["generation"] == 1 and len(world.sms.sent) == 1
    assert entry["provider_message_id"] == world.sms.listed[0].sid


def test_a_transient_failure_after_a_takeover_leaves_the_rescuers_result(world):
    task = reminder(world)
    slow = world.messages()
    rescuer_clock = type(world.clock)(NOW + timedelta(minutes=3))

    def rescued_then_fails(message, sid):
        world.sms.on_send = None
        rescuer = World(store=world.store, clock=rescuer_clock, sms=world.sms, email=world.email)
        rescuer.messages().deliver(task, attempt(1))
        raise RetryableError("twilio 503", code="twilio_unavailable")

    world.sms.on_send = rescued_then_fails
    with pytest.raises(RetryableError):
        slow.deliver(task, LAST_TRY)
    assert world.entry(task.dedup_key)["state"] == "sent"  # the stale "failed" was refused


def test_a_message_with_no_channel_to_send_on_is_a_permanent_error(world):
    task = reminder(world)
    sender = world.messages().sender
    with pytest.raises(PermanentError) as caught:
        sender.deliver(task.dedup_key, None, {}, [], Wording(sms=lambda: "hi", email=lambda: EMAIL), FIRST_TRY)
    assert caught.value.code == "no_channel"
    assert world.entry(task.dedup_key)["state"] == State.FAILED


def test_rejected_on_sms_with_no_patient_id_falls_back_without_an_opt_out_write(world):
    task = reminder(world)
    service = world.messages()
    world.sms.fail_with.append(RecipientRejected("sms", "sms_opted_out", 21610))
    before = world.store.docs("patients")
    read = service._read(task)  # noqa: SLF001 - drive the sender as a type without patients would

    to = [Recipient(Channel.SMS, "+12125551234", "+12125550100"), Recipient(Channel.EMAIL, "a@example.com", "c@x.com")]
    wording = Wording(sms=lambda: "hi", email=lambda: EMAIL)
    outcome = service.sender.deliver(task.dedup_key, read.entry, {}, to, wording, FIRST_TRY)
    assert outcome.channel == "email" and world.store.docs("patients") == before
    assert [(email.to, email.subject) for email in world.email.sent] == [("a@example.com", "s")]


@pytest.mark.parametrize(("status", "state"), [("delivered", "delivered"), ("undelivered", "failed")])
def test_a_final_callback_that_came_before_the_answer_was_lost_still_lands_once_confirmed(world, status, state):
    task = reminder(world)
    ledger = world.ledger()

    def twilio_calls_back(message, sid):
        ledger.record_delivery(task.dedup_key, generation=1, message_id=sid, status=status, error_code="30003")

    world.sms.on_send, world.sms.accepted_then_lost = twilio_calls_back, 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    world.sms.on_send = None
    assert world.messages().deliver(task, attempt(1)).reason == "confirmed_by_callback"
    entry = world.entry(task.dedup_key)
    assert entry["state"] == state and entry["delivery_status"] == status  # no later callback will come


def day_before_lost_and_its_twin(world: World):
    """An appointment's 24 h reminder whose request never reached Twilio (answer lost), and its 2 h reminder,
    planned as the planner plans them (a day before, and 2 hours before)."""
    appointment = world.appointment(world.patient())
    start = appointment["start"]
    day_before = world.task(appointment, send_at=start - timedelta(hours=24))
    key = message_key("appointment_reminder", appointment["id"], start, 2)
    two_hours = world.task(appointment, offset_hours=2, dedup_key=key, send_at=start - timedelta(hours=2))
    world.sms.fail_with.append(SendUnconfirmed("sms", "twilio_answer_lost"))  # never reached Twilio
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(day_before, FIRST_TRY)
    return day_before, two_hours


def both_twins_lost(world: World):
    """As above, and the 2 h reminder's answer lost too, after Twilio took it: (24 h, 2 h, its message)."""
    day_before, two_hours = day_before_lost_and_its_twin(world)
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(two_hours, FIRST_TRY)
    (theirs,) = world.sms.listed
    return day_before, two_hours, theirs


def test_a_lost_answer_is_not_confused_with_the_other_reminder_of_its_appointment(world):
    # The 2 h reminder's message, recorded on its own ledger doc, is never taken for the 24 h one whose
    # answer was lost and which the provider never got.
    day_before, two_hours = day_before_lost_and_its_twin(world)
    sent = world.messages().deliver(two_hours, FIRST_TRY)
    assert sent.status == "sent" and len(world.sms.sent) == 1
    world.clock.advance(seconds=61)
    again = world.messages().deliver(day_before, attempt(1))
    assert again.reason == "" and again.provider_message_id != sent.provider_message_id and len(world.sms.sent) == 2


def test_twin_reminders_both_lost_without_callbacks_each_reconcile_onto_their_own_message(world):
    # Both answers lost and no status callback came (none configured, or lost): only Twilio's message list
    # can tell. The 2 h reminder's message is there, the 24 h one's is not. Each reminder reads its own
    # words, so the 24 h one does not take the 2 h one's message (and leave its twin unconfirmed, to be
    # sent twice): the 24 h one is sent now, the 2 h one finds its own.
    day_before, two_hours, theirs = both_twins_lost(world)
    world.clock.advance(seconds=61)
    again = world.messages().deliver(day_before, attempt(1))
    assert again.reason == "" and again.provider_message_id != theirs.sid
    own = world.messages().deliver(two_hours, attempt(1))
    assert (own.reason, own.provider_message_id) == ("found_at_provider", theirs.sid)
    assert len(world.sms.listed) == 2
    bodies = {m.body for m in world.sms.listed}
    assert len(bodies) == 2 and any("tomorrow at" in body for body in bodies)


def test_a_message_a_callback_gave_to_another_ledger_doc_is_never_taken_for_ours(world):
    # Both answers lost; only the 2 h reminder's message reached Twilio, and its status callback says whose it
    # is. The 24 h one must not claim it: it was never sent, so it is sent now.
    day_before, two_hours, theirs = both_twins_lost(world)
    ledger = world.ledger()
    ledger.record_delivery(two_hours.dedup_key, generation=1, message_id=theirs.sid, status="sent", error_code=None)
    world.clock.advance(seconds=61)
    again = world.messages().deliver(day_before, attempt(1))
    assert again.provider_message_id != theirs.sid and len(world.sms.listed) == 2
    assert world.entry(day_before.dedup_key)["provider_message_id"] == again.provider_message_id
