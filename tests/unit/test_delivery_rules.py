"""Send-time decisions: which channel, and when a message must be skipped."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.channels import Channel, Recipient, recipients
from shared.messaging.delivery import check_task, skip_reason
from shared.messaging.providers import RecipientRejected, classify_sendgrid, classify_twilio
from shared.platform.errors import PermanentError, RetryableError

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
CLINIC = Clinic.from_doc(
    "c1",
    {
        "name": "Glow",
        "timezone": "America/New_York",
        "phone": "+12125550142",
        "sms_from": "+12125550100",
        "email_from": "hello@glow.example.com",
    },
)


def patient(**fields):
    doc = {"clinic_id": "c1", "first_name": "Ana", "phone": "+12125550123", "email": "ana@example.com"}
    doc.update(fields)
    return Patient.from_doc("p1", doc)


def appointment(**fields):
    doc = {
        "clinic_id": "c1",
        "patient_id": "p1",
        "service_name": "Botox",
        "status": "booked",
        "start": START,
        "end": START + timedelta(hours=1),
    }
    doc.update(fields)
    return Appointment.from_doc("a1", doc)


def task(kind="appointment_reminder", start=START, **fields):
    values = {
        "type": kind,
        "appointment_id": "a1",
        "clinic_id": "c1",
        "patient_id": "p1",
        "dedup_key": "k",
        "send_at": start - timedelta(hours=24),
        "appointment_start": start,
    }
    values.update(fields)
    return AppointmentTask(**values)


def channels(who: Patient) -> list[str]:
    return [recipient.channel for recipient in recipients(who, CLINIC)]


def test_preferred_channel_first_then_the_other():
    assert channels(patient()) == ["sms", "email"]
    assert channels(patient(preferred_channel="email")) == ["email", "sms"]


def test_each_recipient_names_the_patients_address_and_the_clinics_sender_on_its_channel():
    assert recipients(patient(preferred_channel="email"), CLINIC) == [
        Recipient(Channel.EMAIL, "ana@example.com", "hello@glow.example.com", smoke_test=False),
        Recipient(Channel.SMS, "+12125550123", "+12125550100", smoke_test=False),
    ]


def test_opt_outs_and_missing_contacts_remove_channels():
    assert channels(patient(sms_opt_out=True)) == ["email"]
    assert channels(patient(phone=None)) == ["email"]
    assert channels(patient(phone="+1555")) == ["email"]  # not an SMS-capable number
    assert channels(patient(sms_opt_out=True, email_opt_out=True)) == []


@pytest.mark.parametrize(
    ("the_task", "the_appointment", "reason"),
    [
        (task(), appointment(), None),
        (task(), appointment(status="cancelled"), "cancelled"),
        (task(), appointment(status="no_show"), "status_no_show"),
        (task(), appointment(start=START + timedelta(hours=2), end=START + timedelta(hours=3)), "moved"),
        (task(start=NOW - timedelta(hours=1)), appointment(start=NOW - timedelta(hours=1), end=NOW), "past"),
        (task("booking_confirmation"), appointment(status="confirmed"), "already_confirmed"),
        (task("booking_confirmation"), appointment(status="booked"), None),
        (task("followup"), appointment(status="completed"), None),
        (task("followup"), appointment(status="cancelled"), "status_cancelled"),
    ],
)
def test_skip_reasons(the_task, the_appointment, reason):
    assert skip_reason(the_task, the_appointment, NOW) == reason


def test_a_task_for_another_patient_is_a_permanent_error():
    with pytest.raises(PermanentError) as caught:
        check_task(task(patient_id="p2"), appointment(), CLINIC)
    assert caught.value.code == "payload_mismatch"


@pytest.mark.parametrize(
    ("status", "code", "kind", "detail"),
    [
        (400, 21211, RecipientRejected, "invalid_number"),
        (400, 21610, RecipientRejected, "sms_opted_out"),
        (400, 21614, RecipientRejected, "not_mobile"),
        (429, 20429, RetryableError, "twilio_throttled"),
        (500, 20500, RetryableError, "twilio_unavailable"),
        (400, 21602, PermanentError, "twilio_21602"),
    ],
)
def test_twilio_answers_are_classified(status, code, kind, detail):
    error = classify_twilio(status, code)
    assert type(error) is kind and error.code == detail


def test_twilio_throttling_is_a_429_not_a_503():
    throttled, unavailable = classify_twilio(429, 20429), classify_twilio(503, None)
    assert isinstance(throttled, RetryableError) and throttled.throttled
    assert isinstance(unavailable, RetryableError) and not unavailable.throttled


def test_sendgrid_answers_are_classified():
    throttled = classify_sendgrid(429, {"Retry-After": "7"})
    assert isinstance(throttled, RetryableError) and throttled.retry_after_seconds == 7
    assert isinstance(classify_sendgrid(502), RetryableError)
    assert isinstance(classify_sendgrid(400), RecipientRejected)
    assert type(classify_sendgrid(403)) is PermanentError
