"""Contract documents parse into typed views; malformed ones name the field."""

from __future__ import annotations

from datetime import datetime, time, timezone

import pytest

from shared.contract.models import Appointment, Clinic, Patient, WaitlistEntry
from shared.platform.errors import InvalidDocument, PermanentError

UTC = timezone.utc
START = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
END = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)


def clinic_doc(**overrides):
    doc = {
        "name": "Glow Aesthetics",
        "timezone": "America/New_York",
        "phone": "+12125550142",
        "sms_from": "+12125550100",
        "email_from": "hello@glow.example.com",
        "manager_emails": ["manager@glow.example.com"],
    }
    doc.update(overrides)
    return doc


def appointment_doc(**overrides):
    doc = {
        "clinic_id": "c1",
        "patient_id": "p1",
        "provider_id": "dr-a",
        "provider_name": "Dr. A",
        "service_name": "HydraFacial",
        "start": START,
        "end": END,
        "status": "booked",
        "price_cents": 19900,
    }
    doc.update(overrides)
    return doc


def test_clinic_defaults_follow_the_contract():
    clinic = Clinic.from_doc("c1", clinic_doc())
    assert clinic.reminder_offsets_hours == (24, 2)
    assert (clinic.quiet_hours.start, clinic.quiet_hours.end) == (time(21, 0), time(8, 0))
    assert clinic.locale == "en"
    assert clinic.waitlist.mode == "broadcast"


def test_clinic_accepts_a_messaging_service_sid_as_sender():
    clinic = Clinic.from_doc("c1", clinic_doc(sms_from="MG" + "a" * 32))
    assert clinic.sms_from == "MG" + "a" * 32


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"name": ""}, "name"),
        ({"sms_from": "555-0100"}, "sms_from"),
        ({"reminder_offsets_hours": [24, "2"]}, "reminder_offsets_hours"),
        ({"quiet_hours": {"start": "9pm"}}, "quiet_hours.start"),
        ({"waitlist": {"mode": "lottery"}}, "mode"),
        ({"locale": "fr"}, "locale"),
    ],
)
def test_malformed_clinic_names_the_field(overrides, field):
    with pytest.raises(InvalidDocument) as caught:
        Clinic.from_doc("c1", clinic_doc(**overrides))
    assert caught.value.field == field
    assert f"'{field}'" in str(caught.value)
    assert "clinics/c1" in str(caught.value)


def test_a_bad_staff_address_is_skipped_and_noted_masked_never_refusing_the_clinic():
    clinic = Clinic.from_doc(
        "c1",
        clinic_doc(
            manager_emails=["manager@glow.example.com", "jane.doe@glow", 7, "ok@glow.example.com"],
            inventory_emails="stock@glow.example.com",
        ),
    )
    assert clinic.manager_emails == ("manager@glow.example.com", "ok@glow.example.com")
    assert clinic.inventory_emails == ()
    assert [(p.field, p.problem) for p in clinic.problems_of("manager_emails")] == [
        ("manager_emails[1]", "is not an email address (j***@glow)"),
        ("manager_emails[2]", "is not an email address (int)"),
    ]
    assert [p.field for p in clinic.problems_of("inventory_emails")] == ["inventory_emails"]
    assert "jane.doe" not in repr(clinic.problems) and "stock@" not in repr(clinic.problems)


def test_a_missing_document_is_invalid_not_a_crash():
    with pytest.raises(InvalidDocument) as caught:
        Clinic.from_doc("gone", None)
    assert caught.value.field == "(document)"


def test_invalid_document_is_a_permanent_error():
    assert issubclass(InvalidDocument, PermanentError)


def test_appointment_parses_and_knows_whether_it_is_active():
    appointment = Appointment.from_doc("a1", appointment_doc())
    assert appointment.start == START and appointment.is_active
    assert not Appointment.from_doc("a1", appointment_doc(status="cancelled")).is_active


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"start": "2026-11-26T14:30:00Z"}, "start"),
        ({"start": datetime(2026, 11, 26, 14, 30)}, "start"),
        ({"end": datetime(2026, 11, 26, 13, 0, tzinfo=UTC)}, "end"),
        ({"status": "maybe"}, "status"),
        ({"patient_id": 42}, "patient_id"),
        ({"price_cents": -1}, "price_cents"),
        ({"requires_prep": "yes"}, "requires_prep"),
    ],
)
def test_malformed_appointment_names_the_field(overrides, field):
    with pytest.raises(InvalidDocument) as caught:
        Appointment.from_doc("a1", appointment_doc(**overrides))
    assert caught.value.field == field


def test_patient_without_a_valid_number_has_no_sms_number():
    base = {"clinic_id": "c1", "first_name": "Ana", "email": "ana@example.com"}
    assert not Patient.from_doc("p1", base).has_sms_number
    assert not Patient.from_doc("p1", {**base, "phone": "+1555"}).has_sms_number
    assert Patient.from_doc("p1", {**base, "phone": "+12125550123"}).has_sms_number


def test_malformed_patient_names_the_field():
    with pytest.raises(InvalidDocument) as caught:
        Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Ana", "email": "not-an-email"})
    assert caught.value.field == "email"
    assert "not-an-email" not in str(caught.value)  # the error never echoes PHI


def test_waitlist_entry_rejects_an_inverted_window():
    doc = {
        "clinic_id": "c1",
        "patient_id": "p1",
        "service_name": "Botox",
        "earliest": END,
        "latest": START,
        "status": "waiting",
    }
    with pytest.raises(InvalidDocument) as caught:
        WaitlistEntry.from_doc("w1", doc)
    assert caught.value.field == "latest"


def test_a_clinic_without_a_marketing_map_has_the_join_keyword_and_default_wording():
    marketing = Clinic.from_doc("c1", clinic_doc()).marketing
    assert (marketing.keyword, marketing.program_name, marketing.frequency) == ("JOIN", None, "Up to 4 msgs/month")


def test_a_clinics_marketing_keyword_is_one_word_upper_case():
    doc = clinic_doc(marketing={"keyword": " glow26 ", "program_name": "Glow  Perks", "wording_version": "v7"})
    marketing = Clinic.from_doc("c1", doc).marketing
    assert (marketing.keyword, marketing.program_name, marketing.wording_version) == ("GLOW26", "Glow Perks", "v7")


@pytest.mark.parametrize(
    ("marketing", "field"),
    [
        ({"keyword": "STOP"}, "marketing.keyword"),
        ({"keyword": "join now"}, "marketing.keyword"),
        ({"keyword": 7}, "marketing.keyword"),
        ({"frequency": "x" * 61}, "marketing.frequency"),
        ("JOIN", "marketing"),
    ],
)
def test_a_bad_marketing_field_is_noted_and_its_default_used(marketing, field):
    clinic = Clinic.from_doc("c1", clinic_doc(marketing=marketing))
    assert clinic.marketing.keyword == "JOIN"
    assert [problem.field for problem in clinic.problems] == [field]
