"""Send records (shared/consent/evidence.py) as the sender and the providers' callbacks write them, and the
marketing caps counted over them (shared/consent/caps.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.consent.caps import MarketingCaps
from shared.consent.evidence import RETENTION, SendRecords
from shared.consent.recipient_time import Place
from shared.messaging.channels import Channel, Recipient
from shared.messaging.email_events import apply_events
from shared.messaging.providers import SendUnconfirmed
from shared.messaging.sender import SentNotRecorded, Wording
from shared.messaging.status_callbacks import apply_status
from shared.messaging.templates import Message
from shared.platform.errors import PermanentError
from tests.builders import FIRST_TRY, NOW, World, attempt

EMAIL = Message(subject="s", text="t", html="<p>t</p>")
FLORIDA = Place(zones=("America/New_York",), regions=("FL",), known=True)
NEW_YORK = Place(zones=("America/New_York",), regions=("NY",), known=True)


@pytest.fixture
def world() -> World:
    return World()


def record(world: World, key: str) -> dict:
    return world.store.doc(f"send_records/{key}") or {}


def test_a_sent_reminder_leaves_a_transactional_send_record_without_contact_or_text(world):
    patient_id = world.patient()
    task = world.task(world.appointment(patient_id))
    outcome = world.messages().deliver(task, FIRST_TRY)
    stored = record(world, task.dedup_key)
    assert stored["outcome"] == "sent" and stored["patient_id"] == patient_id and stored["kind"] == task.type
    assert (stored["purpose"], stored["basis"], stored["channel"]) == ("transactional", "transactional", "sms")
    assert stored["provider_message_id"] == outcome.provider_message_id and stored["at"] == NOW
    assert stored["expire_at"] == NOW + RETENTION and RETENTION > timedelta(days=4 * 365 + 1)
    patient = world.store.doc(f"patients/{patient_id}") or {}
    written = json.dumps(stored, default=str)
    assert patient["phone"] not in written and world.sms.sent[0].body not in written


def test_a_skipped_reminder_is_recorded_with_its_reason(world):
    task = world.task(world.appointment(world.patient(), status="cancelled"))
    world.messages().deliver(task, FIRST_TRY)
    stored = record(world, task.dedup_key)
    assert (stored["outcome"], stored["reason"]) == ("skipped", "cancelled")


def test_a_duplicate_writes_no_second_record(world):
    task = world.task(world.appointment(world.patient()))
    world.messages().deliver(task, FIRST_TRY)
    world.clock.advance(minutes=5)
    world.messages().deliver(task, FIRST_TRY)
    assert record(world, task.dedup_key)["at"] == NOW


def test_a_permanent_failure_is_recorded_failed_with_its_code(world):
    task = world.task(world.appointment(world.patient()))
    world.sms.fail_with.append(PermanentError("bad request", code="twilio_21602"))
    with pytest.raises(PermanentError):
        world.messages().deliver(task, FIRST_TRY)
    assert (record(world, task.dedup_key)["outcome"], record(world, task.dedup_key)["reason"]) == (
        "failed",
        "twilio_21602",
    )


def test_an_answer_lost_is_unconfirmed_then_sent_once_found(world):
    task = world.task(world.appointment(world.patient()))
    world.sms.accepted_then_lost = 1
    with pytest.raises(SendUnconfirmed):
        world.messages().deliver(task, FIRST_TRY)
    assert record(world, task.dedup_key)["outcome"] == "unconfirmed"
    outcome = world.messages().deliver(task, attempt(1))
    stored = record(world, task.dedup_key)
    assert stored["outcome"] == "sent" and stored["provider_message_id"] == outcome.provider_message_id


def test_a_marketing_message_carries_its_consent_basis_and_campaign(world):
    service = world.messages()
    to = [Recipient(Channel.SMS, "+12125551234", "+12125550100")]
    fields = {
        "kind": "campaign_message",
        "clinic_id": "clinic-1",
        "patient_id": "pat-9",
        "campaign_id": "camp-1",
        "purpose": "marketing",
        "basis": "consent:evt-1",
    }
    service.sender.deliver("k-marketing", None, fields, to, Wording(sms=lambda: "hi", email=lambda: EMAIL), FIRST_TRY)
    stored = record(world, "k-marketing")
    assert (stored["purpose"], stored["basis"], stored["campaign_id"]) == ("marketing", "consent:evt-1", "camp-1")


def test_a_marketing_message_without_a_basis_says_so(world):
    service = world.messages()
    to = [Recipient(Channel.SMS, "+12125551234", "+12125550100")]
    fields = {"kind": "campaign_message", "patient_id": "pat-9", "purpose": "marketing"}
    service.sender.deliver("k-bare", None, fields, to, Wording(sms=lambda: "hi", email=lambda: EMAIL), FIRST_TRY)
    assert record(world, "k-bare")["basis"] == "missing"


def test_a_staff_email_has_no_send_record(world):
    service = world.messages()
    to = [Recipient(Channel.EMAIL, "manager@example.com", "clinic@example.com")]
    fields = {"kind": "report_email", "clinic_id": "clinic-1"}
    service.sender.deliver("k-staff", None, fields, to, Wording(sms=None, email=lambda: EMAIL), FIRST_TRY)
    assert world.store.docs("send_records") == {}


def test_the_send_record_is_committed_with_the_ledgers_sent_both_or_neither(world):
    task = world.task(world.appointment(world.patient()))
    service = world.messages()
    service.deliver(task, FIRST_TRY)  # warm: the clinic is cached
    second = world.task(world.appointment(world.patient()))
    world.store.fail_next("commit")  # the one commit of "sent" and its record
    with pytest.raises(SentNotRecorded):
        service.deliver(second, FIRST_TRY)
    assert world.entry(second.dedup_key)["state"] == "unconfirmed" and record(world, second.dedup_key) == {}
    third = world.task(world.appointment(world.patient()))
    world.store.round_trips = 0
    assert service.deliver(third, FIRST_TRY).status == "sent"
    assert world.store.round_trips == 3  # the batched read, the claim, "sent" with its record in one commit
    assert world.entry(third.dedup_key)["state"] == "sent" and record(world, third.dedup_key)["outcome"] == "sent"


def test_a_status_callback_the_ledger_takes_updates_the_record_and_a_stale_one_does_not(world):
    task = world.task(world.appointment(world.patient()))
    outcome = world.messages().deliver(task, FIRST_TRY)
    evidence = SendRecords(world.store, world.clock)
    query = {"ledger": task.dedup_key, "g": "1"}
    delivered = {"MessageSid": outcome.provider_message_id, "MessageStatus": "delivered"}
    apply_status(world.ledger(), query, delivered, None, evidence)
    queued = {"MessageSid": outcome.provider_message_id, "MessageStatus": "queued"}
    apply_status(world.ledger(), query, queued, None, evidence)
    assert record(world, task.dedup_key)["delivery"] == {"status": "delivered", "error_code": None, "at": NOW}


def test_a_failing_callback_records_its_error_code(world):
    task = world.task(world.appointment(world.patient()))
    outcome = world.messages().deliver(task, FIRST_TRY)
    form = {"MessageSid": outcome.provider_message_id, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    apply_status(
        world.ledger(), {"ledger": task.dedup_key, "g": "1"}, form, None, SendRecords(world.store, world.clock)
    )
    assert record(world, task.dedup_key)["delivery"]["error_code"] == "30003"


def test_an_email_event_updates_the_record(world):
    patient_id = world.patient(preferred_channel="email")
    task = world.task(world.appointment(patient_id))
    outcome = world.messages().deliver(task, FIRST_TRY)
    event = {
        "event": "delivered",
        "ledger_key": f"{task.dedup_key}:1",
        "sg_message_id": f"{outcome.provider_message_id}.f",
    }
    apply_events(world.ledger(), json.dumps([event]).encode(), None, SendRecords(world.store, world.clock))
    assert record(world, task.dedup_key)["delivery"]["status"] == "delivered"


# ------------------------------------------------------------------------------------------- caps


def sent_marketing(records: SendRecords, patient_id: str, count: int, *, purpose: str = "marketing") -> None:
    for n in range(count):
        records.record(f"k-{patient_id}-{purpose}-{n}", {"patient_id": patient_id, "purpose": purpose}, "sent")


def test_marketing_sent_since_counts_marketing_only_within_the_window(world):
    records = SendRecords(world.store, world.clock)
    sent_marketing(records, "pat-1", 2)
    sent_marketing(records, "pat-1", 3, purpose="transactional")
    sent_marketing(records, "pat-2", 4)
    records.record("k-skip", {"patient_id": "pat-1", "purpose": "marketing"}, "skipped", reason="at_cap")
    assert records.marketing_sent_since("pat-1", NOW - timedelta(hours=24)) == 2
    assert records.marketing_sent_since("pat-1", NOW + timedelta(seconds=1)) == 0


def test_a_florida_recipient_is_at_cap_after_three_under_a_clinic_cap_of_five(world):
    records = SendRecords(world.store, world.clock)
    caps = MarketingCaps(records)
    sent_marketing(records, "pat-fl", 2)
    assert not caps.at_cap("pat-fl", FLORIDA, 5, NOW)
    sent_marketing(records, "pat-fl-more", 1)
    records.record("k-third", {"patient_id": "pat-fl", "purpose": "marketing"}, "unconfirmed")
    assert caps.at_cap("pat-fl", FLORIDA, 5, NOW)
    assert not caps.at_cap("pat-fl", NEW_YORK, 5, NOW)


def test_the_cap_window_is_twenty_four_hours(world):
    records = SendRecords(world.store, world.clock)
    sent_marketing(records, "pat-ny", 1)
    caps = MarketingCaps(records)
    assert caps.at_cap("pat-ny", NEW_YORK, 1, NOW + timedelta(hours=23, minutes=59))
    assert not caps.at_cap("pat-ny", NEW_YORK, 1, NOW + timedelta(hours=24, seconds=1))
