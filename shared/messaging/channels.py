"""Who a message reaches and how: the one rule the fan-out (queue choice) and the handler (send) share.

Pure and import-light, so the reminder planner can use it without pulling in any client library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.contract.models import Clinic, Patient


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


SMS, EMAIL = Channel.SMS, Channel.EMAIL


@dataclass(frozen=True)
class Recipient:
    """One way to reach a patient (or a clinic's staff): the channel, their address on it, the clinic's sender."""

    channel: Channel
    to: str  # an E.164 number, or an email address
    sender: str  # the clinic's E.164 number or Messaging Service SID, or its email address
    smoke_test: bool = False  # the smoke test's clinic: Twilio's test credentials, SendGrid's sandbox mode


def recipients(patient: Patient, clinic: Clinic) -> list[Recipient]:
    """The ways this patient can get a message from this clinic, preferred channel first."""
    found = []
    if patient.phone and patient.has_sms_number and not patient.sms_opt_out and clinic.sms_from:
        found.append(Recipient(SMS, patient.phone, clinic.sms_from, clinic.smoke_test))
    if patient.email and not patient.email_opt_out and clinic.email_from:
        found.append(Recipient(EMAIL, patient.email, clinic.email_from, clinic.smoke_test))
    return sorted(found, key=lambda recipient: recipient.channel != patient.preferred_channel)


def unreachable_reason(patient: Patient) -> str:
    """Why a patient with no usable channel gets nothing: they opted out, or there is no contact."""
    return "opted_out" if (patient.sms_opt_out or patient.email_opt_out) else "no_contact"


def first_channel(patient: Patient, clinic: Clinic) -> tuple[str | None, str]:
    """(channel, "") for the channel the handler will try first, or (None, reason) when there is none (the
    channel's plain value: the planner stores it in the ledger doc)."""
    reachable = recipients(patient, clinic)
    return (reachable[0].channel.value, "") if reachable else (None, unreachable_reason(patient))
