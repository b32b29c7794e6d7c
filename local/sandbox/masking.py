"""Masked forms of phone numbers and email addresses, for logs and the outbox page (DESIGN §3.1)."""

from __future__ import annotations

import re

_SHORT_CODE = re.compile(r"^\d{3,6}$")
_SERVICE_SID = re.compile(r"^(MG|AC)[0-9a-fA-F]{32}$")


def mask_phone(phone: str) -> str:
    """`+15551234567` → `+1******4567`: the first digit and the last four survive."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) <= 5:
        return "*" * len(digits) or "***"
    return f"+{digits[0]}{'*' * (len(digits) - 5)}{digits[-4:]}"


def mask_email(email: str) -> str:
    """`jane@example.com` → `j***@example.com`."""
    local, at, domain = email.strip().rpartition("@")
    if not at or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_address(address: str | None) -> str:
    """Mask whatever a message was addressed to or from; sender IDs that name no person pass through."""
    if not address:
        return ""
    value = address.strip()
    if "@" in value:
        return mask_email(value)
    if _SHORT_CODE.match(value) or _SERVICE_SID.match(value):
        return value  # a clinic's short code or Messaging Service, not a patient
    if value.startswith("+") or any(ch.isdigit() for ch in value):
        return mask_phone(value)
    return value  # alphanumeric sender ID such as "GlowSpa"
