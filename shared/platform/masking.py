"""Masked forms of phone numbers, email addresses and names: the one masker, used by the logs,
failed_tasks, the ops CLI and the local console alike. Nothing here ever returns the value whole."""

from __future__ import annotations

import re

# E.164 ('+15551234567') and North American '555-123-4567' / '(555) 123-4567'; dates and ids stay.
_PHONE = re.compile(r"\+\d{7,15}\b|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")
_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+")
_SHORT_CODE = re.compile(r"\d{3,6}")
_SENDER_SID = re.compile(r"(MG|AC)[0-9a-fA-F]{32}")
KEPT_DIGITS = 4
MIN_DIGITS_TO_KEEP_ANY = 8  # shorter than that, keeping five digits would leave too few hidden


def mask_phone(phone: str | None) -> str:
    """'+15551234567' → '+1******4567': the first digit and the last four, only when at least 3 stay hidden."""
    digits = re.sub(r"\D", "", phone or "")
    if not digits:
        return "***" if phone else ""
    if len(digits) < MIN_DIGITS_TO_KEEP_ANY:
        return "*" * len(digits)
    return f"+{digits[0]}{'*' * (len(digits) - 1 - KEPT_DIGITS)}{digits[-KEPT_DIGITS:]}"


def mask_email(email: str | None) -> str:
    """'jane.doe@example.com' → 'j***@example.com'."""
    if not email:
        return ""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_name(name: str | None) -> str:
    """'Jane' → 'J.'."""
    return f"{name.strip()[:1]}." if name and name.strip() else ""


def mask_address(address: str | None) -> str:
    """Whatever a message was addressed to or from: a patient's phone or email is masked; a clinic's
    short code, Messaging Service SID or alphanumeric sender ID names no person and passes."""
    if not address:
        return ""
    value = address.strip()
    if "@" in value:
        return mask_email(value)
    if _SHORT_CODE.fullmatch(value) or _SENDER_SID.fullmatch(value):
        return value
    if any(ch.isdigit() for ch in value):
        return mask_phone(value)
    return value  # an alphanumeric sender ID such as "GlowSpa"


def scrub(text: str) -> str:
    """Mask anything in free text that looks like a phone number or an email address."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
