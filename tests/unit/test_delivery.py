"""The appointment-message decision on the fakes: send, skip (with its reason), channel fallback, the
patient's opt-out from Twilio's 21610, duplicates, and bodies that do not describe their appointment."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.contract.models import Clinic
from shared.messaging.appointment_tasks import CONFIRMATION, FOLLOWUP, PREP, REMINDER
from shared.messaging.delivery import ClinicCache
from shared.messaging.keys import message_key
from shared.messaging.providers import RecipientRejected
from shared.platform.errors import PermanentError
from shared.platform.store import Delete
from shared.tasks.declaration import Reopen
from tests.builders import CALLBACK_URL, CLINIC, FIRST_TRY, NOW, World


@pytest.fixture
def world() -> World:
    return World()


def test_a_reminder_is_sent_by_sms_once_and_the_ledger_says_so(world):
    task = world.task(world.appointment(world.patient()))
    outcome = world.messages().deliver(task, FIRST_TRY)
    assert (outcome.status, outcome.channel) == ("sent", "sms")
    (message,) = world.sms.sent
    assert message.to == "+12125551234" and message.sender == CLINIC["sms_from"]
    assert "Glow Aesthetics" in message.body and "HydraFacial" not in message.body
    query = parse_qs(urlsplit(message.status_callback or "").query)
    assert message.status_callback.startswith(CALLBACK_URL) and query == {"ledger": [task.dedup_key], "g": ["1"]}
    entry = world.entry(task.dedup_key)
    assert entry["state"] == "sent" and entry["provider_message_id"] == outcome.provider_message_id
    assert entry["channel"] == "sms" and entry["attempts"] == 1 and entry["reason"] is None
    assert world.email.sent == []


def test_a_second_delivery_of_a_sent_message_is_a_duplicate_and_sends_nothing(world):
    task = world.task(world.appointment(world.patient()))
    world.messages().deliver(task, FIRST_TRY)
    again = world.messages().deliver(task, FIRST_TRY)
    assert again.status == "duplicate" and again.reason == "sent"
    assert len(world.sms.sent) == 1


def test_round_trips_stay_within_the_documented_budget(world):
    task = world.task(world.appointment(world.patient()))
    service = world.messages()
    world.store.round_trips = 0
    service.deliver(task, FIRST_TRY)
    assert world.store.round_trips <= 3  # one batched read, the claim, the "sent" update with its send record
    world.store.round_trips = 0
    service.deliver(task, FIRST_TRY)
    assert world.store.round_trips <= 1  # a duplicate: one batched read (the clinic is cached)
    cancelled = world.appointment(world.patient(), status="cancelled")
    world.store.round_trips = 0
    service.deliver(world.task(cancelled), FIRST_TRY)
    assert world.store.round_trips <= 3  # a skip: one read, the ledger's write, the send record


def test_email_goes_out_when_it_is_the_patients_preferred_channel(world):
    task = world.task(world.appointment(world.patient(preferred_channel="email")))
    outcome = world.messages().deliver(task, FIRST_TRY)
    assert (outcome.status, outcome.channel) == ("sent", "email")
    (mail,) = world.email.sent
    assert mail.to.endswith("@example.com") and mail.sender == CLINIC["email_from"]
    assert "Appointment reminder" in mail.subject and "<p>" in mail.html
    assert mail.reference == f"{task.dedup_key}:1"
    assert world.sms.sent == [] and world.entry(task.dedup_key)["channel"] == "email"


@pytest.mark.parametrize(
    ("appointment_fields", "patient_fields", "kind", "reason"),
    [
        ({"status": "cancelled"}, {}, REMINDER, "cancelled"),
        ({"status": "no_show"}, {}, REMINDER, "status_no_show"),
        ({"status": "confirmed"}, {}, CONFIRMATION, "already_confirmed"),
        ({"status": "booked"}, {}, FOLLOWUP, "status_booked"),
        ({}, {"sms_opt_out": True, "email_opt_out": True}, REMINDER, "opted_out"),
        ({}, {"phone": None, "email": None}, REMINDER, "no_contact"),
    ],
)
def test_a_message_that_must_not_go_is_skipped_with_its_reason(world, appointment_fields, patient_fields, kind, reason):
    appointment = world.appointment(world.patient(**patient_fields), **appointment_fields)
    task = world.task(appointment, kind)
    outcome = world.messages().deliver(task, FIRST_TRY)
    assert (outcome.status, outcome.reason) == ("skipped", reason)
    assert world.entry(task.dedup_key)["state"] == "skipped" and world.entry(task.dedup_key)["reason"] == reason
    assert world.sms.sent == [] and world.email.sent == []


def test_a_moved_appointment_skips_the_message_planned_for_its_old_start(world):
    appointment = world.appointment(world.patient())
    task = world.task(appointment)
    moved = appointment["start"] + timedelta(days=1)
    world.store.seed(f"appointments/{appointment['id']}", {**appointment, "start": moved, "end": moved})
    outcome = world.messages().deliver(task, FIRST_TRY)
    assert (outcome.status, outcome.reason) == ("skipped", "moved") and world.sms.sent == []


def test_an_appointment_already_started_is_skipped_as_past(world):
    task = world.task(world.appointment(world.patient()))
    world.clock.advance(days=2)
    assert world.messages().deliver(task, FIRST_TRY).reason == "past"
    assert world.entry(task.dedup_key)["reason"] == "past"


def test_a_missing_appointment_is_skipped_and_recorded(world):
    task = world.task({"id": "appt-gone", "clinic_id": "clinic-t", "patient_id": "p", "start": NOW})
    outcome = world.messages().deliver(task, FIRST_TRY)
    assert (outcome.status, outcome.reason) == ("skipped", "appointment_missing")
    assert world.entry(task.dedup_key)["state"] == "skipped"


def test_a_skip_racing_a_send_leaves_the_send_standing(world):
    appointment = world.appointment(world.patient())
    task = world.task(appointment)
    stale = world.messages()
    entry = stale._read(task).entry  # noqa: SLF001 - read before the rival's send, as a slow instance would
    world.messages().deliver(task, FIRST_TRY)
    world.store.seed(f"appointments/{appointment['id']}", {**appointment, "status": "cancelled"})
    assert stale.ledger.skip(task.dedup_key, entry, "cancelled", {}).value == "sent"
    assert world.entry(task.dedup_key)["state"] == "sent"


@pytest.mark.parametrize(
    ("missing", "code"), [("clinics/clinic-t", "clinic_missing"), ("patients/pat-1", "patient_missing")]
)
def test_a_missing_clinic_or_patient_is_a_permanent_error(world, missing, code):
    task = world.task(world.appointment(world.patient("pat-1")))
    world.store.commit([Delete(missing)])
    with pytest.raises(PermanentError) as caught:
        world.messages().deliver(task, FIRST_TRY)
    assert caught.value.code == code and world.sms.sent == []


def test_sms_rejected_as_an_invalid_number_falls_back_to_email(world):
    world.sms.fail_with.append(RecipientRejected("sms", "invalid_number", 21211))
    patient = world.patient()
    task = world.task(world.appointment(patient))
    outcome = world.messages().deliver(task, FIRST_TRY)
    assert (outcome.status, outcome.channel) == ("sent", "email") and len(world.email.sent) == 1
    assert world.entry(task.dedup_key)["channel"] == "email"
    assert world.store.doc(f"patients/{patient}")["sms_opt_out"] is False  # 21211 is no opt-out


def test_twilio_21610_records_the_patients_opt_out_and_falls_back_to_email(world):
    world.sms.fail_with.append(RecipientRejected("sms", "sms_opted_out", 21610))
    patient = world.patient()
    outcome = world.messages().deliver(world.task(world.appointment(patient)), FIRST_TRY)
    assert outcome.channel == "email"
    doc = world.store.doc(f"patients/{patient}")
    assert doc["sms_opt_out"] is True and doc["sms_opt_out_source"] == "twilio_21610"
    assert doc["sms_opt_out_at"] == NOW and doc["first_name"] == "Zelda"  # only the opt-out fields change


def test_rejected_on_every_channel_fails_the_message_with_the_providers_reason(world):
    world.sms.fail_with.append(RecipientRejected("sms", "invalid_number", 21211))
    task = world.task(world.appointment(world.patient(email=None)))
    with pytest.raises(RecipientRejected) as caught:
        world.messages().deliver(task, FIRST_TRY)
    assert caught.value.code == "invalid_number"
    entry = world.entry(task.dedup_key)
    assert entry["state"] == "failed" and entry["reason"] == "invalid_number" and world.email.sent == []


def test_the_bodys_dedup_key_is_not_trusted(world):
    """Two bodies for one appointment with different keys: only the key derived from the re-read ids sends."""
    appointment = world.appointment(world.patient())
    honest = world.task(appointment)
    forged = world.task(appointment, dedup_key="appointment_reminder-" + "f" * 40)
    with pytest.raises(PermanentError) as caught:
        world.messages().deliver(forged, FIRST_TRY)
    assert caught.value.code == "dedup_key_mismatch"
    assert world.messages().deliver(honest, FIRST_TRY).status == "sent"
    assert len(world.sms.sent) == 1
    assert set(world.store.docs("notifications")) == {honest.dedup_key}


@pytest.mark.parametrize(
    ("kind", "offset"),
    [(REMINDER, 12), (REMINDER, None), (PREP, 24), (CONFIRMATION, 24), (FOLLOWUP, 2)],
)
def test_an_offset_the_clinic_does_not_use_is_refused(world, kind, offset):
    appointment = world.appointment(world.patient(), status="completed" if kind == FOLLOWUP else "booked")
    key = message_key(kind, appointment["id"], appointment["start"], offset)
    task = world.task(appointment, kind, offset_hours=offset, dedup_key=key)
    with pytest.raises(PermanentError) as caught:
        world.messages().deliver(task, FIRST_TRY)
    assert caught.value.code == "payload_mismatch" and world.sms.sent == []
    assert world.store.docs("notifications") == {}


@pytest.mark.parametrize("field", ["clinic_id", "patient_id"])
def test_ids_that_do_not_match_the_appointment_are_refused(world, field):
    world.clinic("clinic-other")
    appointment = world.appointment(world.patient())
    task = world.task(appointment, **{field: "clinic-other" if field == "clinic_id" else world.patient()})
    with pytest.raises(PermanentError) as caught:
        world.messages().deliver(task, FIRST_TRY)
    assert caught.value.code == "payload_mismatch" and world.sms.sent == []


@pytest.mark.parametrize("kind", [PREP, CONFIRMATION])
def test_prep_and_confirmation_messages_go_out_too(world, kind):
    appointment = world.appointment(world.patient(), requires_prep=True, prep_instructions="No retinoids.")
    outcome = world.messages().deliver(world.task(appointment, kind), FIRST_TRY)
    assert outcome.status == "sent"
    if kind == PREP:
        assert "No retinoids." in world.sms.sent[0].body


def test_a_followup_goes_to_a_completed_appointment(world):
    appointment = world.appointment(world.patient(), status="completed", start=NOW - timedelta(days=7))
    assert world.messages().deliver(world.task(appointment, FOLLOWUP), FIRST_TRY).status == "sent"


def test_reopen_is_the_ledgers_verdict_for_the_sweep(world):
    task = world.task(world.appointment(world.patient()))
    service = world.messages()
    assert service.reopen(task) == Reopen.REOPENED  # nothing there yet: the task settles it
    service.deliver(task, FIRST_TRY)
    assert service.reopen(task) == Reopen.ALREADY_DONE


def test_the_clinic_cache_keeps_a_clinic_for_its_ttl_only():
    clinic = Clinic.from_doc("clinic-t", CLINIC)
    cache = ClinicCache(ttl_seconds=60)
    assert cache.get("clinic-t") is None
    cache.put(clinic)
    assert cache.get("clinic-t") is clinic
    expired = ClinicCache(ttl_seconds=-1)
    expired.put(clinic)
    assert expired.get("clinic-t") is None
