"""A campaign world on tests/fakes.MemoryStore: a clinic, consenting patients, the campaign's services wired
to the recording fakes, and a queue that runs the tasks it holds in schedule order, moving the clock."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.campaigns.audience import Audiences
from shared.campaigns.lifecycle import Lifecycle
from shared.campaigns.links import CampaignLinks
from shared.campaigns.planning import CampaignPlanner
from shared.campaigns.sending import CampaignMessages
from shared.campaigns.tasks import DECLARATIONS
from shared.consent.caps import MarketingCaps
from shared.consent.consents import ConsentEvent, Consents, ConsentStatus, Purpose
from shared.consent.evidence import SendRecords
from shared.messaging.ledger import Ledger
from shared.tasks.declaration import Queue
from shared.tasks.payload import parse
from shared.tasks.queue import TaskSpec
from shared.tasks.router import Attempt, Outcome
from tests.builders import NOW, World
from tests.fakes import RecordingQueue

# NOW is 07:00 in New York: before the recipients' window (08:00-21:00 for a +1 212 number).
WINDOW = (NOW, NOW + timedelta(days=2))
BODIES = {declaration.name: declaration.body for declaration in DECLARATIONS}
QUEUE_NAMES = {Queue.CAMPAIGNS: "campaigns", Queue.CAMPAIGN_PLANNING: "campaign-planning", Queue.REPORTS: "reports"}
CLICK_URL, LINK_KEY = "https://click.example/c", b"campaign-test-link-key"
ATTEMPT = Attempt(task_name="t-1", retry_count=0, queue="campaigns", last=False)


def campaign_doc(clinic_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "clinic_id": clinic_id,
        "name": "November glow",
        "audience": {"last_visit_within_days": None, "services": [], "tags": []},
        "message": {
            "template": "Hi {first_name}, 20% off at {clinic_name} this week: {link}",
            "link": "https://g.example/x",
        },
        "window": {"start": WINDOW[0], "end": WINDOW[1]},
        **fields,
    }


@dataclass
class CapsAt:
    """MarketingCaps over what the test says each patient already got."""

    at: set[str] = field(default_factory=set)

    def at_cap(self, patient_id: str, place: Any, clinic_cap: int, now: datetime) -> bool:
        return patient_id in self.at


@dataclass
class Scene(World):
    queue: RecordingQueue = field(default_factory=RecordingQueue)
    caps: Any = None
    ran: list[str] = field(default_factory=list)  # business keys of the tasks run, in order

    def consenting(self, patient_id: str | None = None, **fields: Any) -> str:
        patient_id = self.patient(patient_id, **fields)
        self.grant(patient_id)
        return patient_id

    def grant(self, patient_id: str, status: ConsentStatus = ConsentStatus.GRANTED) -> None:
        event = ConsentEvent(
            patient_id,
            "clinic-t",
            Purpose.MARKETING,
            "sms",
            status,
            self.clock.now(),
            "booking_form",
            "v1",
            f"ev-{patient_id}-{status}",
        )
        Consents(self.store, self.clock).record(event)

    def campaign(self, campaign_id: str = "camp-1", **fields: Any) -> str:
        self.lifecycle().create(campaign_id, campaign_doc("clinic-t", **fields), by="test")
        return campaign_id

    def lifecycle(self, **options: Any) -> Lifecycle:
        return Lifecycle(self.store, self.clock, **options)

    def planner(self) -> CampaignPlanner:
        consents = Consents(self.store, self.clock)
        return CampaignPlanner(
            store=self.store,
            ledger=Ledger(self.store, self.clock),
            tasks=self.queue,
            queues=QUEUE_NAMES.__getitem__,
            clock=self.clock,
            lifecycle=self.lifecycle(),
            audiences=Audiences(self.store, consents),
            click_url=CLICK_URL,
        )

    def campaign_messages(self) -> CampaignMessages:
        ledger = Ledger(self.store, self.clock)
        sender = self.sender(ledger)
        return CampaignMessages(
            store=self.store,
            ledger=ledger,
            sender=sender,
            tasks=self.queue,
            queues=QUEUE_NAMES.__getitem__,
            clock=self.clock,
            consents=Consents(self.store, self.clock),
            caps=self.caps or MarketingCaps(SendRecords(self.store, self.clock)),
            links=self.links,
        )

    def links(self) -> CampaignLinks:
        return CampaignLinks(store=self.store, clock=self.clock, click_url=CLICK_URL, key=LINK_KEY)

    def pending(self) -> list[TaskSpec]:
        """The campaign's own tasks not run yet (the report's editions, on the reports queue, are only queued)."""
        done = set(self.ran)
        return [s for s in self.queue.created if s.business_key not in done and s.queue != "reports"]

    def report_editions(self) -> list[TaskSpec]:
        return [spec for spec in self.queue.created if spec.queue == "reports"]

    def run_next(self) -> Outcome | None:
        """Run the earliest due task (the clock moves to its schedule time), as the queues would."""
        waiting = self.pending()
        if not waiting:
            return None
        spec = min(waiting, key=lambda s: s.schedule_time or self.clock.now())
        if spec.schedule_time is not None and spec.schedule_time > self.clock.now():
            self.clock.instant = spec.schedule_time
        self.ran.append(spec.business_key)
        task = parse(json.loads(json.dumps(spec.payload)), BODIES)
        if spec.queue == "campaigns":
            return self.campaign_messages().deliver(task, ATTEMPT)  # type: ignore[arg-type]
        planner = self.planner()
        return {"campaign_plan": planner.plan, "campaign_batch": planner.batch, "campaign_finish": planner.finish}[
            task.type
        ](task)  # type: ignore[operator]

    def run_all(self, limit: int = 10_000) -> None:
        for _ in range(limit):
            if self.run_next() is None:
                return
        raise AssertionError("the campaign's tasks never ran out")
