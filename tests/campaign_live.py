"""A campaign on the running local stack, for the integration test (tests/integration/test_campaigns.py) and
the benchmark (bench/campaign_run.py): one clinic with its own sender number, consenting patients and some
who must get nothing, the campaign created and scheduled as ops does, and the checks both make."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from shared.campaigns.tasks import message_key
from shared.consent.consents import ConsentEvent, Consents, ConsentStatus, Purpose
from shared.platform.clock import system_clock
from shared.wiring.services import Services
from tests.builders import CLINIC_CONTACT, patient_doc
from tests.handler_support import Sandbox

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")  # the recipients' numbers are New York's (+1 212)
OPTED_OUT, NEVER_CONSENTED = 10, 10
WINDOW_HOURS = 6
STOP_LINE = "\nReply STOP to opt out."


def stack_instant() -> datetime:
    """Tomorrow 15:30 UTC: 10:30 in New York in winter, 11:30 in summer (inside every recipient window)."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, 15, 30, tzinfo=UTC)


class LiveCampaign:
    def __init__(self, db: Any, services: Services, recipients: int, start: datetime) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.services, self.recipients = services, recipients
        self.clinic_id, self.campaign_id = f"clinic-{suffix}", f"camp-{suffix}"
        self.sender = f"+1646{uuid.uuid4().int % 10_000_000:07d}"
        self.window = (start - timedelta(minutes=1), start + timedelta(hours=WINDOW_HOURS))
        self.consenting: dict[str, str] = {}  # patient id → phone
        self.excluded: set[str] = set()  # phones that must get nothing
        self._seed(db, suffix)

    def _seed(self, db: Any, suffix: str) -> None:
        db.collection("clinics").document(self.clinic_id).set({**CLINIC_CONTACT, "sms_from": self.sender})
        consents, batch = Consents(self.services.store, system_clock), db.batch()
        phones = iter(range(1_000_000 + uuid.uuid4().int % 8_000_000, 10_000_000))
        for n in range(self.recipients + OPTED_OUT + NEVER_CONSENTED):
            patient_id, phone = f"p-{suffix}-{n:05d}", f"+1212{next(phones):07d}"
            opted_out = self.recipients <= n < self.recipients + OPTED_OUT
            doc = patient_doc(patient_id, self.clinic_id, phone=phone, first_name=f"P{n}", sms_opt_out=opted_out)
            batch.set(db.collection("patients").document(patient_id), doc)
            if n < self.recipients + OPTED_OUT:
                consents.record(
                    ConsentEvent(
                        patient_id,
                        self.clinic_id,
                        Purpose.MARKETING,
                        "sms",
                        ConsentStatus.GRANTED,
                        system_clock.now(),
                        "booking_form",
                        "v1",
                        f"ev-{patient_id}",
                    )
                )
            if n < self.recipients:
                self.consenting[patient_id] = phone
            else:
                self.excluded.add(phone)
            if n % 400 == 399:
                batch.commit()
                batch = db.batch()
        batch.commit()

    def schedule(self) -> None:
        """Create the campaign and schedule it, as `python -m ops campaign create` and `schedule` do."""
        doc = {
            "clinic_id": self.clinic_id,
            "name": "live",
            "audience": {"last_visit_within_days": None, "services": [], "tags": []},
            "message": {"template": "Hi {first_name}, 20% off at {clinic_name}", "link": None},
            "window": {"start": self.window[0], "end": self.window[1]},
        }
        self.services.campaign_lifecycle.create(self.campaign_id, doc, by="test")
        self.services.campaign_planner.schedule(self.campaign_id, by="test")

    def sent(self, sandbox: Sandbox) -> list[dict[str, Any]]:
        """The SMS the sandbox holds from this campaign's clinic."""
        return [m for m in sandbox.messages(channel="sms") if m["from"] == self.sender]

    def outside_window(self, sent: list[dict[str, Any]]) -> list[str]:
        """Independently of the code: the federal 08:00-21:00 in New York, inside the campaign's window."""
        late = []
        for message in sent:
            moment = datetime.fromisoformat(message["created_at"])
            hour = moment.astimezone(NEW_YORK).hour
            if not (8 <= hour < 21 and self.window[0] <= moment <= self.window[1]):
                late.append(message["id"])
        return late

    def ledger(self) -> list[Any]:
        keys = [message_key(self.campaign_id, patient_id) for patient_id in self.consenting]
        entries: list[Any] = []
        for at in range(0, len(keys), 300):
            entries += self.services.ledger.read_many(keys[at : at + 300]).values()
        return entries

    def sent_count(self) -> int:
        """The campaign's messages the ledger says went out (one aggregation query)."""
        where = [("campaign_id", "==", self.campaign_id), ("state", "in", ["sent", "delivered"])]
        return self.services.store.count("notifications", where=where)

    def sent_by_ledger(self) -> set[str]:
        return {e.provider_message_id for e in self.ledger() if e.state in ("sent", "delivered")}
