"""One masker for logs, failed_tasks, the ops CLI and the local console: never a value whole."""

from __future__ import annotations

import pytest

from shared.platform.masking import mask_address, mask_email, mask_name, mask_phone, scrub


def test_phone_is_masked_to_first_digit_and_last_four():
    assert mask_phone("+15551234567") == "+1******4567"
    assert mask_phone("+44 7700 900123") == "+4*******0123"


@pytest.mark.parametrize("short", ["12345", "+12345", "+1234567"])
def test_a_short_number_is_masked_whole_never_echoed(short):
    masked = mask_phone(short)
    digits = "".join(ch for ch in short if ch.isdigit())
    assert set(masked) == {"*"} and len(masked) == len(digits)


def test_email_is_masked_to_first_letter_and_domain():
    assert mask_email("jane.doe@example.com") == "j***@example.com"
    assert mask_email("@example.com") == "***"


def test_name_keeps_its_initial_only():
    assert mask_name("Jane") == "J." and mask_name(" ") == ""


def test_clinic_sender_ids_are_not_masked_but_patients_are():
    assert [mask_address(value) for value in ("GlowSpa", "12345", "MG" + "a" * 32)] == [
        "GlowSpa",
        "12345",
        "MG" + "a" * 32,
    ]
    assert mask_address("+15551234567") == "+1******4567"
    assert mask_address("Jane@Example.com") == "J***@Example.com"


def test_scrub_masks_numbers_and_addresses_inside_free_text():
    text = scrub("call +15551234567 or (212) 555-0123, mail jane@example.com on 2026-11-26")
    assert "5551234567" not in text and "555-0123" not in text and "jane@" not in text
    assert "2026-11-26" in text
