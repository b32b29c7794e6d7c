"""Contract documents and tasks, built once for every test: `clinic_doc`, `patient_doc`, `appointment_doc` and
`appointment_task` (as the planner builds it) serve the unit tests' `World` here (on tests/fakes.MemoryStore,
with the appointment-message service wired to the recording fakes), the emulator tests' World
(tests/handler_support.py) and the waitlist's Scene (tests/waitlist_support.py)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.consent.evidence import SendRecords
from shared.messaging.appointment_tasks import CHECKIN, CONFIRMATION, FOLLOWUP, PREP, REMINDER, AppointmentTask
from shared.messaging.delivery import AppointmentMessages
from shared.messaging.keys import message_key
from shared.messaging.ledger import Ledger
from shared.messaging.opt_outs import OptOuts
from shared.messaging.sender import MessageSender
from shared.tasks.router import Attempt
from tests.fakes import FixedClock, MemoryStore, RecordingEmail, RecordingSms

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CALLBACK_URL = "https://status.example.com/twilio-status"
CLINIC_ID = "clinic-t"
CLINIC_CONTACT = {
    "name": "Glow Aesthetics",
    "timezone": "America/New_York",
    "phone": "+12125550142",
    "sms_from": "+12125550100",
    "email_from": "hello@glow.example.com",
    "locale": "en",
}
CLINIC = {**CLINIC_CONTACT, "reminder_offsets_hours": [24, 2]}
OFFSET_HOURS = {REMINDER: 24, PREP: 48, CONFIRMATION: None, FOLLOWUP: None, CHECKIN: None}
TASK_KEY = "appointment_reminder-" + "ab" * 20
REMINDER_BODY = {  # a valid appointment reminder's task body, as its JSON carries it
    "type": "appointment_reminder",
    "v": 1,
    "appointment_id": "appt-1",
    "clinic_id": "clinic-nyc",
    "patient_id": "pat-1",
    "dedup_key": TASK_KEY,
    "send_at": "2026-11-25T14:30:00+00:00",
    "appointment_start": "2026-11-26T14:30:00+00:00",
    "offset_hours": 24,
}
FIRST_TRY = Attempt(task_name="t-1", retry_count=0, queue="reminders-sms", last=False)
LAST_TRY = Attempt(task_name="t-1", retry_count=7, queue="reminders-sms", last=True)


def attempt(retry_count: int = 0, *, last: bool = False) -> Attempt:
    return Attempt(task_name="t-1", retry_count=retry_count, queue="reminders-sms", last=last)


def patient_doc(patient_id: str, clinic_id: str, /, **fields: Any) -> dict[str, Any]:
    """A patient who takes reminders by SMS, with `fields` over the defaults."""
    return {
        "clinic_id": clinic_id,
        "first_name": "Zelda",
        "last_name": "Quist",
        "phone": "+12125551234",
        "email": f"{patient_id}@example.com",
        "preferred_channel": "sms",
        "sms_opt_out": False,
        "email_opt_out": False,
        **fields,
    }


def appointment_doc(clinic_id: str, patient_id: str, start: datetime, /, **fields: Any) -> dict[str, Any]:
    """A booked hour with Dr. A from `start`, with `fields` over the defaults."""
    return {
        "clinic_id": clinic_id,
        "patient_id": patient_id,
        "provider_id": "dr-a",
        "provider_name": "Dr. A",
        "service_name": "HydraFacial",
        "requires_prep": False,
        "prep_instructions": "",
        "start": start,
        "end": start + timedelta(hours=1),
        "status": "booked",
        "price_cents": 19900,
        **fields,
    }


def appointment_task(
    appointment: dict[str, Any], kind: str = REMINDER, *, send_at: datetime, **overrides: Any
) -> AppointmentTask:
    """The task the planner builds for `appointment` (a dict with its "id"), its offset by `kind`."""
    offset = overrides.pop("offset_hours", OFFSET_HOURS[kind])
    values: dict[str, Any] = {
        "type": kind,
        "appointment_id": appointment["id"],
        "clinic_id": appointment["clinic_id"],
        "patient_id": appointment["patient_id"],
        "dedup_key": message_key(kind, appointment["id"], appointment["start"], offset),
        "send_at": send_at,
        "appointment_start": appointment["start"],
        "offset_hours": offset,
    }
    values.update(overrides)
    return AppointmentTask(**values)


@dataclass
class World:
    """A MemoryStore holding one clinic, the recording providers, and the service that sends."""

    store: MemoryStore = field(default_factory=MemoryStore)
    clock: FixedClock = field(default_factory=lambda: FixedClock(NOW))
    sms: RecordingSms = field(default_factory=RecordingSms)
    email: RecordingEmail = field(default_factory=RecordingEmail)
    test_sms: RecordingSms | None = None  # Twilio's test credentials (the smoke test's clinic); None: not configured
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.clinic()
        for sms in (self.sms, self.test_sms):
            if sms is not None and sms.clock is None:
                sms.clock = self.clock  # the provider dates its messages by the world's time

    def clinic(self, clinic_id: str = CLINIC_ID, **fields: Any) -> str:
        self.store.seed(f"clinics/{clinic_id}", {**CLINIC, **fields})
        return clinic_id

    def patient(self, patient_id: str | None = None, **fields: Any) -> str:
        patient_id = patient_id or f"pat-{next(self._ids)}"
        doc = patient_doc(patient_id, CLINIC_ID, **fields)
        self.store.seed(f"patients/{patient_id}", {k: v for k, v in doc.items() if v is not None})
        return patient_id

    def appointment(
        self, patient_id: str, *, start: datetime | None = None, appointment_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        start = start or NOW + timedelta(days=1, hours=2)
        appointment_id = appointment_id or f"appt-{next(self._ids)}"
        doc = appointment_doc(CLINIC_ID, patient_id, start, **{"updated_at": NOW - timedelta(hours=1), **fields})
        self.store.seed(f"appointments/{appointment_id}", doc)
        return {"id": appointment_id, **doc}

    def task(self, appointment: dict[str, Any], kind: str = REMINDER, **overrides: Any) -> AppointmentTask:
        return appointment_task(appointment, kind, **{"send_at": self.clock.now(), **overrides})

    def ledger(self) -> Ledger:
        return Ledger(self.store, self.clock)

    def sender(self, ledger: Ledger) -> MessageSender:
        """The one MessageSender of an instance, on the recording providers."""
        return MessageSender(
            ledger=ledger,
            sms=self.sms,
            email=self.email,
            clock=self.clock,
            opt_outs=OptOuts(self.store, self.clock),
            status_callback_url=CALLBACK_URL,
            test_sms=self.test_sms,
            evidence=SendRecords(self.store, self.clock),
        )

    def messages(self) -> AppointmentMessages:
        """A fresh service (its own clinic cache), as a new function instance would have."""
        ledger = self.ledger()
        return AppointmentMessages(store=self.store, ledger=ledger, sender=self.sender(ledger), clock=self.clock)

    def entry(self, key: str) -> dict[str, Any]:
        return self.store.doc(f"notifications/{key}") or {}
