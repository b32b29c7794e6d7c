"""Which channel reaches a patient: the one rule the fan-out (queue choice) and the handler (send) share.

Pure and import-light, so the reminder planner can use it without pulling in any client library.
"""

from __future__ import annotations

from shared.contract.models import Clinic, Patient

SMS, EMAIL = "sms", "email"


def usable_channels(patient: Patient, clinic: Clinic) -> list[str]:
    """Channels this patient can get from this clinic, preferred first."""
    sms = patient.has_sms_number and not patient.sms_opt_out and bool(clinic.sms_from)
    email = bool(patient.email) and not patient.email_opt_out and bool(clinic.email_from)
    usable = [channel for channel, ok in ((SMS, sms), (EMAIL, email)) if ok]
    return sorted(usable, key=lambda channel: channel != patient.preferred_channel)


def unreachable_reason(patient: Patient) -> str:
    """Why a patient with no usable channel gets nothing: they opted out, or there is no contact."""
    return "opted_out" if (patient.sms_opt_out or patient.email_opt_out) else "no_contact"


def first_channel(patient: Patient, clinic: Clinic) -> tuple[str | None, str]:
    """(channel, "") for the channel the handler will try first, or (None, reason) when there is none."""
    channels = usable_channels(patient, clinic)
    return (channels[0], "") if channels else (None, unreachable_reason(patient))
