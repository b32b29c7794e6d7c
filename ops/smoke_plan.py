"""What one smoke run seeds and expects: a clinic reserved for the smoke test, its patients and appointments.

Pure: `plan(run_id, now)` is a function of its arguments, so the unit tests check what would be written
before anything is. Every id starts with `smoke-<run id>`; the clinic carries `smoke_test: true`, so its SMS
go out only with Twilio's test credentials and its email only in SendGrid's sandbox mode
(shared/messaging/sender.py): no patient is messaged. The phone numbers are Twilio's magic test numbers
(https://www.twilio.com/docs/iam/test-credentials): +15005550006 is the one From number test credentials may
send from and, as a To number, is validated normally (accepted, never delivered); +15005550001 as To is
refused with 21211 (an invalid number). Neither is anyone's phone.

The clinic is in UTC with no quiet hours and one reminder offset (24 h), and each appointment starts 80
minutes after the run starts, so:
- the 24 h reminder is overdue when planned and goes out at once (the catch-up rule), by SMS to the valid
  number, by SMS to the invalid one (21211 → failed_tasks `invalid_number`), by email to the third patient;
- the booking confirmation an `appointment.created` event plans (an hour later) would arrive within 30
  minutes of the start: it is recorded skipped `too_late` at once. Only the appointment-events function
  plans confirmations, so that ledger doc is its evidence;
- a fourth appointment, cancelled and starting in 4 hours (beyond the default 120-minute waitlist lead),
  opens a slot offer that no waitlist entry can take: expired `no_candidates`, nothing sent;
- one product below its reorder point gives the inventory check a purchase order draft; no inventory or
  manager emails are set, so neither the draft nor the daily report sends anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, PRODUCTS
from shared.messaging.appointment_tasks import CONFIRMATION, REMINDER
from shared.messaging.keys import message_key

PREFIX = "smoke-"
TEST_FROM = "+15005550006"  # the only From number Twilio's test credentials may send from
VALID_TO = "+15005550006"  # validated normally: accepted, never delivered
INVALID_TO = "+15005550001"  # Twilio's test credentials answer 21211 (invalid number)
REMINDER_HOURS = 24
# The confirmation (an hour after booking) would come after start - 30 min: too late. The overdue reminder goes now.
APPOINTMENT_LEAD = timedelta(minutes=80)
CANCELLED_LEAD = timedelta(hours=4)  # beyond the waitlist's default 120-minute minimum lead
SMS, EMAIL = "sms", "email"


@dataclass(frozen=True)
class Recipient:
    """One smoke patient, its booked appointment and the reminder it should end with."""

    name: str  # "valid sms" | "invalid sms" | "email": what the check lines call it
    patient_id: str
    appointment_id: str
    channel: str
    address: str
    reminder_key: str
    confirmation_key: str


@dataclass(frozen=True)
class SmokePlan:
    run_id: str
    clinic_id: str
    now: datetime
    documents: dict[str, dict[str, Any]]  # path → data, everything the run seeds
    recipients: tuple[Recipient, ...]
    cancelled_appointment_id: str

    @property
    def today(self) -> date:
        """The clinic's local date (the clinic is in UTC): the reminders tick's and inventory check's day."""
        return self.now.astimezone(timezone.utc).date()

    def recipient(self, name: str) -> Recipient:
        return next(recipient for recipient in self.recipients if recipient.name == name)


def plan(run_id: str, now: datetime) -> SmokePlan:
    clinic_id = f"{PREFIX}{run_id}"
    start = (now + APPOINTMENT_LEAD).replace(microsecond=0)
    documents: dict[str, dict[str, Any]] = {
        f"{CLINICS}/{clinic_id}": {
            "name": "Smoke test clinic",
            "timezone": "UTC",
            "phone": TEST_FROM,
            "sms_from": TEST_FROM,
            "email_from": "smoke-clinic@example.com",
            "manager_emails": [],
            "inventory_emails": [],
            "locale": "en",
            "reminder_offsets_hours": [REMINDER_HOURS],
            "quiet_hours": {"start": "00:00", "end": "00:00"},  # none: the overdue reminder goes at once
            "smoke_test": True,
        }
    }
    recipients = []
    for name, channel, address in (
        ("valid sms", SMS, VALID_TO),
        ("invalid sms", SMS, INVALID_TO),
        ("email", EMAIL, f"{clinic_id}@example.com"),
    ):
        slug = name.replace(" ", "-")
        patient_id, appointment_id = f"{clinic_id}-patient-{slug}", f"{clinic_id}-appt-{slug}"
        documents[f"{PATIENTS}/{patient_id}"] = {
            "clinic_id": clinic_id,
            "first_name": "Smoke",
            "last_name": "Test",
            **({"phone": address} if channel == SMS else {"email": address}),  # one channel: no fallback
            "preferred_channel": channel,
            "sms_opt_out": False,
            "email_opt_out": False,
        }
        documents[f"{APPOINTMENTS}/{appointment_id}"] = _appointment(clinic_id, patient_id, start, "booked", now)
        recipients.append(
            Recipient(
                name=name,
                patient_id=patient_id,
                appointment_id=appointment_id,
                channel=channel,
                address=address,
                reminder_key=message_key(REMINDER, appointment_id, start, REMINDER_HOURS),
                confirmation_key=message_key(CONFIRMATION, appointment_id, start, None),
            )
        )
    cancelled_id = f"{clinic_id}-appt-cancelled"
    cancelled_start = (now + CANCELLED_LEAD).replace(microsecond=0)
    first = recipients[0].patient_id
    documents[f"{APPOINTMENTS}/{cancelled_id}"] = _appointment(clinic_id, first, cancelled_start, "cancelled", now)
    documents[f"{PRODUCTS}/{clinic_id}-product"] = {
        "clinic_id": clinic_id,
        "name": "Smoke test product",
        "sku": "SMOKE-1",
        "unit": "unit",
        "on_hand": 0,
        "reorder_point": 1,
        "reorder_qty": 1,
        "active": True,
    }
    return SmokePlan(run_id, clinic_id, now, documents, tuple(recipients), cancelled_id)


def _appointment(clinic_id: str, patient_id: str, start: datetime, status: str, now: datetime) -> dict[str, Any]:
    return {
        "clinic_id": clinic_id,
        "patient_id": patient_id,
        "provider_id": f"{clinic_id}-provider",
        "provider_name": "Smoke",
        "service_name": "Smoke test",
        "requires_prep": False,
        "prep_instructions": "",
        "start": start,
        "end": start + timedelta(minutes=30),
        "status": status,
        "price_cents": 0,
        "created_at": now,
        "updated_at": now,
    }
