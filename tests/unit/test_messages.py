"""Patient-facing texts: locale, local time, GSM-7, at most two SMS segments, no forbidden keywords."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.templates import fit_segments, format_local, gsm7_safe, render, render_sms, sms_segments

UTC = timezone.utc
CLINIC_FIELDS = {
    "name": "Glow Aesthetics",
    "timezone": "America/New_York",
    "phone": "+12125550142",
    "sms_from": "+12125550100",
    "email_from": "hello@glow.example.com",
}
CLINIC = Clinic.from_doc("c1", CLINIC_FIELDS)
PATIENT = Patient.from_doc(
    "p1", {"clinic_id": "c1", "first_name": "Ana", "phone": "+12125550123", "email": "ana@example.com"}
)
APPOINTMENT_FIELDS = {
    "clinic_id": "c1",
    "patient_id": "p1",
    "service_name": "Chemical peel",
    "status": "booked",
    "start": datetime(2026, 11, 26, 14, 30, tzinfo=UTC),
    "end": datetime(2026, 11, 26, 15, 30, tzinfo=UTC),
    "requires_prep": True,
    "prep_instructions": "Avoid retinoids for 3 days before your peel. " * 8,
}
APPOINTMENT = Appointment.from_doc("a1", APPOINTMENT_FIELDS)
KINDS = ("appointment_reminder", "booking_confirmation", "prep_instructions", "followup")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("locale", ["en", "es"])
def test_sms_is_gsm7_and_at_most_two_segments(kind, locale):
    patient = Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Ana", "locale": locale})
    sms = render_sms(kind, clinic=CLINIC, patient=patient, appointment=APPOINTMENT)
    assert gsm7_safe(sms) == sms
    assert sms_segments(sms) <= 2
    assert "STOP" not in sms.upper() and "CANCEL" not in sms.upper()


def test_reminder_shows_the_clinic_local_time_and_phone_but_not_the_treatment():
    sms = render_sms("appointment_reminder", clinic=CLINIC, patient=PATIENT, appointment=APPOINTMENT)
    assert "Thu, Nov 26 at 9:30 AM" in sms and "+12125550142" in sms and "Glow Aesthetics" in sms
    assert "peel" not in sms.lower()


def test_spanish_patient_gets_spanish_text():
    patient = Patient.from_doc("p2", {"clinic_id": "c1", "first_name": "José", "locale": "es"})
    message = render("appointment_reminder", clinic=CLINIC, patient=patient, appointment=APPOINTMENT)
    assert message.text.startswith("Hola José") and "jue 26 nov, 09:30" in message.text
    assert "Recordatorio" in message.subject


def test_prep_message_carries_the_instructions_and_email_has_html():
    message = render("prep_instructions", clinic=CLINIC, patient=PATIENT, appointment=APPOINTMENT)
    assert "Avoid retinoids" in message.text and "<p>" in message.html


def test_email_html_escapes_clinic_provided_text():
    clinic = Clinic.from_doc("c1", {"name": "Skin & <Co>", "timezone": "UTC", "phone": "+12125550142"})
    message = render("appointment_reminder", clinic=clinic, patient=PATIENT, appointment=APPOINTMENT)
    assert "Skin &amp; &lt;Co&gt;" in message.html and "<Co>" not in message.html


def test_gsm7_replaces_characters_outside_the_alphabet():
    assert gsm7_safe("Cita en “Clínica Sol” — ¿sí?") == 'Cita en "Clinica Sol" - ¿si?'
    assert gsm7_safe("café ñ") == "café ñ"  # é and ñ are GSM-7


def test_segment_counting():
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2 and sms_segments("a" * 307) == 3
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # extension chars take two septets
    assert sms_segments("😀" * 35) == 1 and sms_segments("😀" * 36) == 2  # UCS-2: 70 units, emoji is 2


def test_fit_segments_cuts_at_a_word():
    fitted = fit_segments("word " * 100)
    assert sms_segments(fitted) == 2 and fitted.endswith("word...")


def test_format_local_in_english_and_spanish():
    start = datetime(2026, 11, 26, 14, 30, tzinfo=timezone.utc)
    assert format_local(start, ZoneInfo("America/New_York"), "en") == "Thu, Nov 26 at 9:30 AM"
    assert format_local(start, ZoneInfo("America/New_York"), "es") == "jue 26 nov, 09:30"
    assert format_local(start, ZoneInfo("Asia/Kolkata"), "en") == "Thu, Nov 26 at 8:00 PM"


def test_a_megabyte_of_text_is_shortened_in_one_pass(capsys):
    """Issue 8, bug 1: shortening used to drop one word at a time and re-measure (1 MB never finished)."""
    import time

    for text in ("word " * 200_000, "mot é " * 170_000, "😀 " * 340_000):
        started = time.perf_counter()
        fitted = fit_segments(text)
        with capsys.disabled():
            print(f"\nfit_segments of {len(text):,} characters: {time.perf_counter() - started:.3f} s")
        assert sms_segments(fitted) <= 2 and fitted.endswith("...") and text.startswith(fitted[:-3])


def test_prep_text_longer_than_the_contract_allows_is_an_invalid_document():
    from shared.contract.models import MAX_PREP_CHARS
    from shared.platform.errors import InvalidDocument

    doc = {name: value for name, value in APPOINTMENT_FIELDS.items() if name != "prep_instructions"}
    assert len(Appointment.from_doc("a1", {**doc, "prep_instructions": "x" * MAX_PREP_CHARS}).prep_instructions) == 4000
    with pytest.raises(InvalidDocument) as caught:
        Appointment.from_doc("a1", {**doc, "prep_instructions": "x" * 1_000_000})
    assert caught.value.field == "prep_instructions"


def test_the_longest_prep_text_allowed_renders_whole_in_email_and_within_two_segments_in_sms():
    from shared.contract.models import MAX_PREP_CHARS

    prep = ("Évitez le soleil 😀 avant votre soin. " * 200)[:MAX_PREP_CHARS]
    appointment = Appointment.from_doc("a1", {**APPOINTMENT_FIELDS, "prep_instructions": prep})
    sms = render_sms("prep_instructions", clinic=CLINIC, patient=PATIENT, appointment=appointment)
    assert sms_segments(sms) <= 2 and gsm7_safe(sms) == sms
    assert prep.strip() in render("prep_instructions", clinic=CLINIC, patient=PATIENT, appointment=appointment).text


START = APPOINTMENT.start  # Thu, Nov 26 at 9:30 AM in New York
REMINDER_WORDS = [
    (timedelta(hours=24), "en", "tomorrow at 9:30 AM"),
    (timedelta(hours=2), "en", "in 2 hours, at 9:30 AM"),
    (timedelta(hours=1), "en", "in 1 hour, at 9:30 AM"),
    (timedelta(hours=24), "es", "mañana a las 09:30"),
    (timedelta(hours=2), "es", "en 2 horas, a las 09:30"),
    (timedelta(hours=1), "es", "en 1 hora, a las 09:30"),
    (timedelta(hours=48), "en", "on Thu, Nov 26 at 9:30 AM"),
    (timedelta(hours=48), "es", "el jue 26 nov, 09:30"),
]


def reminder_sms(
    lead: timedelta, *, patient: Patient = PATIENT, clinic: Clinic = CLINIC, appointment: Appointment = APPOINTMENT
) -> str:
    """The SMS of a reminder planned `lead` before its appointment."""
    send_at = appointment.start - lead
    return render_sms("appointment_reminder", clinic=clinic, patient=patient, appointment=appointment, send_at=send_at)


def speaker(locale: str) -> Patient:
    return Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Ana", "locale": locale})


@pytest.mark.parametrize(("lead", "locale", "words"), REMINDER_WORDS)
def test_each_reminder_says_when_in_its_own_words(lead, locale, words):
    email = render(
        "appointment_reminder", clinic=CLINIC, patient=speaker(locale), appointment=APPOINTMENT, send_at=START - lead
    )
    assert words in reminder_sms(lead, patient=speaker(locale)) and words in email.text and words in email.html


@pytest.mark.parametrize("locale", ["en", "es"])
def test_the_24_hour_and_2_hour_reminders_never_read_alike(locale):
    patient = speaker(locale)
    assert reminder_sms(timedelta(hours=24), patient=patient) != reminder_sms(timedelta(hours=2), patient=patient)


def at(start: datetime) -> Appointment:
    return Appointment.from_doc("a2", {**APPOINTMENT_FIELDS, "start": start, "end": start + timedelta(hours=1)})


def test_a_reminder_caught_up_on_the_day_says_today_not_tomorrow():
    # a 24 h reminder of a 3:30 PM appointment planned late (a clinic's first tick, 7:00 AM on the day)
    sms = reminder_sms(timedelta(hours=8, minutes=30), appointment=at(datetime(2026, 11, 26, 20, 30, tzinfo=UTC)))
    assert "today at 3:30 PM" in sms and "tomorrow" not in sms


def test_tomorrow_is_the_clinics_local_tomorrow_across_a_dst_change():
    # 2026-11-01 is New York's 25-hour day: a 9:00 AM EST appointment (14:00Z) reminded 24 real hours
    # before (10:00 EDT on the 31st) is "tomorrow"; its 2 h reminder at 7:00 EST is "in 2 hours".
    appointment = at(datetime(2026, 11, 1, 14, 0, tzinfo=UTC))
    assert "tomorrow at 9:00 AM" in reminder_sms(timedelta(hours=24), appointment=appointment)
    assert "in 2 hours, at 9:00 AM" in reminder_sms(timedelta(hours=2), appointment=appointment)


@pytest.mark.parametrize(("lead", "locale", "words"), REMINDER_WORDS)
def test_every_reminder_wording_stays_gsm7_within_two_segments_with_long_names(lead, locale, words):
    clinic = Clinic.from_doc("c1", {**CLINIC_FIELDS, "name": "Glow Aesthetics & Laser Medical Spa of Manhattan"})
    patient = Patient.from_doc("p1", {"clinic_id": "c1", "first_name": "Maximiliana-Josefina", "locale": locale})
    sms = reminder_sms(lead, patient=patient, clinic=clinic)
    assert gsm7_safe(sms) == sms and sms_segments(sms) <= 2 and words in sms
