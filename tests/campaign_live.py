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
OPTED_OUT, NEVER_CONSENTED = 10, 10
WINDOW_HOURS = 6
STOP_LINE = "\nReply STOP to opt out."

# The recipients' area codes and, written here from the statutes' text rather than read from the code under
# test (shared/consent/quiet_hours.toml), when each may get a marketing text: its zone, and per weekday
# (Monday 0) the allowed local hours, None when closed.
FEDERAL = ((8, 21),) * 7
AREAS: dict[str, tuple[ZoneInfo, tuple[tuple[int, int] | None, ...]]] = {
    "212": (ZoneInfo("America/New_York"), FEDERAL),  # New York: the federal 8-21
    "305": (ZoneInfo("America/New_York"), ((8, 20),) * 7),  # Miami, Florida: 8-20
    "214": (ZoneInfo("America/Chicago"), ((9, 21),) * 6 + ((12, 21),)),  # Dallas, Texas: 9-21, Sunday from noon
    "415": (ZoneInfo("America/Los_Angeles"), FEDERAL),  # San Francisco, California
    "401": (ZoneInfo("America/New_York"), ((9, 18),) * 5 + ((10, 17), None)),  # Rhode Island: 9-18, Sat 10-17
}


def stack_instant() -> datetime:
    """The next Monday-Thursday after today at 23:15 UTC: 18:15 (winter) or 19:15 (summer) in New York. Open
    then: New York, Florida (until 20:00), Texas and California; closed: Rhode Island (since 18:00), and closed
    for it until after the campaign's six hours, so its recipients must get nothing."""
    day = (datetime.now(UTC) + timedelta(days=1)).date()
    while day.weekday() > 3:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 23, 15, tzinfo=UTC)


def allowed_at(phone: str, moment: datetime) -> bool:
    """Independently of the code: may `phone` (one of AREAS) get a marketing text at `moment`?"""
    zone, week = AREAS[phone[2:5]]
    local = moment.astimezone(zone)
    hours = week[local.weekday()]
    return hours is not None and hours[0] <= local.hour < hours[1]


def ever_open(phone: str, start: datetime, end: datetime) -> bool:
    """Does `phone`'s window open at some minute of [start, end)?"""
    minutes = int((end - start).total_seconds() // 60)
    return any(allowed_at(phone, start + timedelta(minutes=m)) for m in range(minutes))


class LiveCampaign:
    def __init__(self, db: Any, services: Services, recipients: int, start: datetime) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.services, self.recipients = services, recipients
        self.clinic_id, self.campaign_id = f"clinic-{suffix}", f"camp-{suffix}"
        self.sender = f"+1646{uuid.uuid4().int % 10_000_000:07d}"
        self.window = (start - timedelta(minutes=1), start + timedelta(hours=WINDOW_HOURS))
        self.consenting: dict[str, str] = {}  # patient id → phone
        self.excluded: set[str] = set()  # phones that must get nothing
        self.closed: set[str] = set()  # consenting recipients whose window stays shut for the whole campaign
        self._seed(db, suffix)

    def _seed(self, db: Any, suffix: str) -> None:
        db.collection("clinics").document(self.clinic_id).set({**CLINIC_CONTACT, "sms_from": self.sender})
        consents, batch = Consents(self.services.store, system_clock), db.batch()
        phones = iter(range(2_000_000 + uuid.uuid4().int % 7_000_000, 10_000_000))
        areas = list(AREAS)
        open_areas = {area for area in areas if ever_open(f"+1{area}5550100", *self.window)}
        for n in range(self.recipients + OPTED_OUT + NEVER_CONSENTED):
            area = areas[n % len(areas)]
            patient_id, phone = f"p-{suffix}-{n:05d}", f"+1{area}{next(phones):07d}"
            if n < self.recipients and area not in open_areas:
                self.closed.add(phone)
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

    def reachable(self) -> list[str]:
        """The consenting recipients whose window opens during the campaign: each must get exactly one message."""
        return sorted(phone for phone in self.consenting.values() if phone not in self.closed)

    def outside_window(self, sent: list[dict[str, Any]]) -> list[str]:
        """Independently of the code: each message inside its recipient's window (AREAS) and the campaign's."""
        late = []
        for message in sent:
            moment = datetime.fromisoformat(message["created_at"])
            if not (allowed_at(message["to"], moment) and self.window[0] <= moment <= self.window[1]):
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
