"""A small waitlist world written through the `Store` interface (MemoryStore in unit tests, the Firestore
emulator in tests/integration): a clinic, patients, waitlist entries, a cancelled appointment, and the
waitlist services wired to recording fakes."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.messaging.ledger import Ledger
from shared.messaging.opt_outs import OptOuts
from shared.messaging.sender import MessageSender
from shared.platform.store import Store
from shared.tasks.router import Attempt
from shared.waitlist.cancellations import Opened, open_offer
from shared.waitlist.claims import Claims
from shared.waitlist.inbound import Conversations
from shared.waitlist.messages import WaitlistMessages
from shared.waitlist.offers import SlotOffer, SlotOffers, offer_id_for
from shared.waitlist.waves import Waves
from tests.builders import CLINIC_CONTACT, appointment_doc, patient_doc
from tests.fakes import FixedClock, RecordingEmail, RecordingQueue, RecordingSms

UTC = timezone.utc
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 10:00 in New York
TOKEN_KEY = b"unit-test-claim-token-key"
CLAIM_URL = "https://claim.example.test/"
CLINIC_ID = "clinic-w"
CLINIC = CLINIC_CONTACT
ATTEMPT = Attempt(task_name="t", retry_count=0, queue="waitlist")
_serial = itertools.count(1)


@dataclass
class Events:
    """An AppointmentEvents that records each published appointment id; `fail` makes the next publishes raise."""

    published: list[str] = field(default_factory=list)
    fail: int = 0

    def created(self, appointment_id: str) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("injected publish failure")
        self.published.append(appointment_id)


class Scene:
    """Documents for one test and the services over them."""

    def __init__(self, store: Store, *, now: datetime = NOW, sms_from: str | None = None, **policy: Any) -> None:
        self.store, self.clock, self.now = store, FixedClock(now), now
        self.queue, self.events = RecordingQueue(), Events()
        self.sms, self.email = RecordingSms(), RecordingEmail()
        self.tag = f"s{next(_serial)}"
        waitlist = {"mode": "broadcast", "wave_size": 3, "offer_ttl_minutes": 30, "min_lead_minutes": 120}
        waitlist.update(policy)
        self.clinic_id = f"{CLINIC_ID}-{self.tag}"
        self.sms_from = sms_from or CLINIC["sms_from"]
        self.store.put(f"clinics/{self.clinic_id}", {**CLINIC, "sms_from": self.sms_from, "waitlist": waitlist})
        self._patients = itertools.count(1)

    # ------------------------------------------------------------------------------------ documents

    def patient(self, **fields: Any) -> str:
        number = next(self._patients)
        patient_id = f"pat-{self.tag}-{number:03d}"
        doc = patient_doc(
            patient_id, self.clinic_id, **{"first_name": f"Pat{number}", "phone": f"+1212555{number:04d}", **fields}
        )
        self.store.put(f"patients/{patient_id}", doc)
        return patient_id

    def entry(self, patient_id: str, **fields: Any) -> str:
        entry_id = f"wl-{patient_id}-{next(_serial)}"
        doc = {
            "clinic_id": self.clinic_id,
            "patient_id": patient_id,
            "service_name": "HydraFacial",
            "provider_id": None,
            "earliest": self.now - timedelta(days=1),
            "latest": self.now + timedelta(days=14),
            "status": "waiting",
            "created_at": self.now - timedelta(days=30) + timedelta(minutes=next(_serial)),
        }
        doc.update(fields)
        self.store.put(f"waitlist/{entry_id}", doc)
        return entry_id

    def appointment(self, patient_id: str, *, start: datetime | None = None, **fields: Any) -> str:
        start = start or (self.now + timedelta(days=1)).replace(microsecond=0)
        appointment_id = f"appt-{self.tag}-{next(_serial)}"
        doc = appointment_doc(self.clinic_id, patient_id, start, **fields)
        self.store.put(f"appointments/{appointment_id}", doc)
        return appointment_id

    def cancelled(self, **fields: Any) -> str:
        """A cancelled appointment of a patient of its own (the slot to offer)."""
        return self.appointment(self.patient(), status="cancelled", **fields)

    def doc(self, path: str) -> dict[str, Any]:
        found = self.store.get(path)
        return found.data if found else {}

    # ------------------------------------------------------------------------------------- services

    def waves(self) -> Waves:
        return Waves(store=self.store, clock=self.clock, tasks=self.queue, queue="waitlist", events=self.events)

    def claims(self) -> Claims:
        return Claims(store=self.store, clock=self.clock, tasks=self.queue, queue="waitlist", events=self.events)

    def conversations(self) -> Conversations:
        return Conversations(store=self.store, clock=self.clock, claims=self.claims())

    def messages(self) -> WaitlistMessages:
        ledger = Ledger(self.store, self.clock)
        sender = MessageSender(
            ledger=ledger, sms=self.sms, email=self.email, clock=self.clock, opt_outs=OptOuts(self.store, self.clock)
        )
        return WaitlistMessages(
            store=self.store, ledger=ledger, sender=sender, clock=self.clock, claim_url=CLAIM_URL, token_key=TOKEN_KEY
        )

    def open(self, appointment_id: str) -> Opened:
        from shared.contract.events import AppointmentEvent

        event = AppointmentEvent("appointment.cancelled", appointment_id)
        return open_offer(event, self.waves(), now=self.clock.now())

    def offer_of(self, appointment_id: str) -> SlotOffer:
        start = self.doc(f"appointments/{appointment_id}")["start"]
        offer = SlotOffers(self.store, self.clock).read(offer_id_for(appointment_id, start))
        assert offer is not None
        return offer

    def offer_by_id(self, offer_id: str) -> SlotOffer:
        offer = SlotOffers(self.store, self.clock).read(offer_id)
        assert offer is not None
        return offer

    def tasks(self, kind: str) -> list[dict[str, Any]]:
        return [spec.payload for spec in self.queue.created if spec.payload["type"] == kind]
