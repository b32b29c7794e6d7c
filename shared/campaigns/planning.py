"""A campaign's fan-out, like the reminders' (a coordinator, bounded units, named tasks, restartable):
its plan opens the window, its batches turn ≤ 200 recipients each into ledger entries and message tasks,
its finish marks it done. Run from the planning queue by the task handler (shared/campaigns/tasks.py).

- plan (at window.start, created by `schedule`; or at once by `start` / `resume`): scheduled → sending,
  the estimate at send time, the round's first batch;
- batch: one page of the audience; each recipient's ledger entry (Ledger.schedule: created once) and,
  while the entry is still scheduled, its message task timed at the recipient's first allowed moment
  from the round's start, inside the campaign's window (never timed outside; one that cannot fit is
  skipped "window_ended"); then the next batch, or at the end `batched` and the first finish;
- finish: done when no message of the campaign is pending, or once the window closed (what is left is
  skipped when its task runs); else it looks again, 15 s after the last batch and then twice as long each
  time, at most every FINISH_EVERY.

A replayed plan or batch creates nothing twice: entries are created once, tasks are named by campaign,
round, page and slot. A stopped campaign (paused, cancelled) plans nothing more; a resume starts a new
round (docs/campaigns.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.campaigns import wording
from shared.campaigns.audience import Audiences, Recipient
from shared.campaigns.lifecycle import Lifecycle
from shared.campaigns.links import sample_link
from shared.campaigns.model import Campaign, Estimate, Marketing, Status
from shared.campaigns.tasks import BatchTask, FinishTask, MessageTask, PlanTask, message_key
from shared.consent.recipient_time import next_allowed_before, place_of
from shared.contract.models import CLINICS, Clinic
from shared.messaging.ledger import Ledger, Planned, State
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.platform.store import Store
from shared.tasks.declaration import Queue
from shared.tasks.queue import MAX_SCHEDULE_AHEAD, TaskQueue, TaskSpec, create_all
from shared.tasks.router import Outcome
from shared.tasks.router import Status as TaskStatus

FINISH_FIRST = timedelta(seconds=15)
FINISH_EVERY = timedelta(minutes=5)
FINISH_GRACE = timedelta(minutes=10)  # after the window: the last messages' tasks have run (or been skipped)
WINDOW_ENDED = "window_ended"
SCHEDULE_MARGIN = timedelta(days=1)  # a plan task's create may be retried; never brush the limit
REPORT_AFTER = timedelta(minutes=1)  # the report's first edition, once the finish's status write has landed


@dataclass(frozen=True)
class Priced:
    """A campaign's audience counted and its message priced (shared/campaigns/wording.py)."""

    recipients: int
    excluded: Counter[str]
    encoding: str
    segments: int
    price_per_segment_cents: float
    cost_cents: int


class CampaignPlanner:
    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        tasks: TaskQueue,
        queues: Callable[[Queue], str],
        clock: Clock,
        lifecycle: Lifecycle,
        audiences: Audiences,
        click_url: str = "",
    ) -> None:
        """`click_url`: the campaign-click function's URL, so the estimate counts a tracked link at its length
        (empty: the link as written, shorter than what goes out)."""
        self.store, self.ledger, self.tasks, self.queues, self.clock = store, ledger, tasks, queues, clock
        self.lifecycle, self.audiences, self.click_url = lifecycle, audiences, click_url

    # ------------------------------------------------------------------------------- operator's verbs

    def schedule(self, campaign_id: str, *, by: str) -> Campaign:
        """draft → scheduled; its plan task waits for the window to open. A window opening further ahead than
        Cloud Tasks schedules a task (MAX_SCHEDULE_AHEAD, less a day's margin) is refused before anything
        changes: schedule it nearer the time."""
        found = self.lifecycle.read(campaign_id)
        if found.window.start > self.clock.now() + MAX_SCHEDULE_AHEAD - SCHEDULE_MARGIN:
            raise PermanentError(
                f"the window opens more than {(MAX_SCHEDULE_AHEAD - SCHEDULE_MARGIN).days} days ahead; "
                "schedule the campaign nearer its start",
                code="window_too_far",
            )
        campaign = self.lifecycle.schedule(campaign_id, by=by)
        self._enqueue_plan(campaign, at=campaign.window.start)
        return campaign

    def start(self, campaign_id: str, *, by: str) -> Campaign:
        """Open a scheduled campaign now (its window must have opened): scheduled → sending, plan at once."""
        campaign = self.lifecycle.read(campaign_id)
        if self.clock.now() < campaign.window.start:
            raise PermanentError("the campaign's window has not opened; it starts by itself then", code="not_yet")
        campaign = self.lifecycle.start(campaign_id, by=by)
        self._enqueue_plan(campaign, at=None)
        return campaign

    def resume(self, campaign_id: str, *, by: str) -> Campaign:
        """paused → sending: a new round dispatches again what was not sent."""
        campaign = self.lifecycle.resume(campaign_id, by=by)
        self._enqueue_plan(campaign, at=None)
        return campaign

    def estimate(self, campaign: Campaign) -> Priced:
        """Count the audience now and price the message as it will go out (its tracked link at full length), and
        record the estimate on the campaign: what `ops campaign create|estimate` prints and the plan stores."""
        clinic_doc = self._clinic_doc(campaign.clinic_id)
        clinic = Clinic.from_doc(campaign.clinic_id, clinic_doc)
        marketing = Marketing.of_clinic(campaign.clinic_id, clinic_doc)
        recipients, excluded = self.audiences.count(campaign.clinic_id, campaign.audience, self.clock.now())
        link = campaign.link and (
            sample_link(self.click_url, campaign.id, campaign.window.end) if self.click_url else campaign.link
        )
        sample = wording.segments(wording.sample(campaign.template, clinic.name, link))
        cost = wording.estimate_cost_cents(sample.count, recipients, marketing.price_per_segment_cents)
        self.lifecycle.record_estimate(campaign.id, Estimate(recipients, sample.count, cost), excluded)
        return Priced(recipients, excluded, sample.encoding, sample.count, marketing.price_per_segment_cents, cost)

    # ---------------------------------------------------------------------------------------- tasks

    def plan(self, task: PlanTask) -> Outcome:
        campaign = self._campaign(task.campaign_id, task.clinic_id)
        if campaign.status == Status.SCHEDULED:
            campaign = self.lifecycle.start(campaign.id, by="window")
        if campaign.status != Status.SENDING:
            return Outcome(TaskStatus.DONE, reason=f"campaign_{campaign.status}")
        found = self.estimate(campaign)
        log.info(
            "campaign planned",
            campaign_id=campaign.id,
            recipients=found.recipients,
            excluded=sum(found.excluded.values()),
        )
        first = BatchTask(campaign.id, campaign.clinic_id, not_before=self._round_start(campaign), round=campaign.round)
        self._create([self._spec(Queue.CAMPAIGN_PLANNING, first.business_key, first.to_json(), None)])
        return Outcome(TaskStatus.DONE, reason="planned")

    def batch(self, task: BatchTask) -> Outcome:
        campaign = self._campaign(task.campaign_id, task.clinic_id)
        if campaign.status != Status.SENDING or campaign.round != task.round:
            return Outcome(TaskStatus.DONE, reason=f"campaign_{campaign.status}")
        clinic_doc = self._clinic_doc(campaign.clinic_id)
        clinic = Clinic.from_doc(campaign.clinic_id, clinic_doc)
        marketing = Marketing.of_clinic(campaign.clinic_id, clinic_doc)
        page = self.audiences.page(
            campaign.clinic_id, campaign.audience, self.clock.now(), after=task.after, limit=task.limit
        )
        start, end = campaign.window.clamp(task.not_before), campaign.window.end
        slots = {
            r.patient_id: next_allowed_before(start, place_of(r.phone, clinic.timezone), marketing.hours, end) or end
            for r in page.recipients
        }
        planned = [self._planned(campaign, recipient, slots[recipient.patient_id]) for recipient in page.recipients]
        created, existing = self.ledger.schedule(planned) if planned else (set(), {})
        specs = []
        for recipient in page.recipients:
            key = message_key(campaign.id, recipient.patient_id)
            entry = existing.get(key)
            if slots[recipient.patient_id] >= campaign.window.end:
                continue  # recorded skipped (a new entry), or left for the finish (an older one)
            if key in created or (entry is not None and entry.state == State.SCHEDULED):
                message = MessageTask(
                    campaign.id, campaign.clinic_id, recipient.patient_id, key, slots[recipient.patient_id], task.round
                )
                specs.append(self._spec(Queue.CAMPAIGNS, message.business_key, message.to_json(), message.send_at))
        if page.last:
            self.lifecycle.record_batched(campaign.id)
            follow: BatchTask | FinishTask = FinishTask(campaign.id, campaign.clinic_id, round=task.round)
            specs.append(self._spec(Queue.CAMPAIGN_PLANNING, follow.business_key, follow.to_json(), self._finish_at(0)))
        else:
            follow = BatchTask(
                campaign.id, campaign.clinic_id, task.not_before, after=page.after, limit=task.limit, round=task.round
            )
            specs.append(self._spec(Queue.CAMPAIGN_PLANNING, follow.business_key, follow.to_json(), None))
        self._create(specs)
        return Outcome(TaskStatus.DONE, reason=f"batched_{len(page.recipients)}")

    def finish(self, task: FinishTask) -> Outcome:
        campaign = self._campaign(task.campaign_id, task.clinic_id)
        if campaign.status != Status.SENDING or campaign.round != task.round:
            return Outcome(TaskStatus.DONE, reason=f"campaign_{campaign.status}")
        now = self.clock.now()
        pending = self.lifecycle.pending(campaign.id)
        if pending == 0 or now >= campaign.window.end + FINISH_GRACE:
            self._report_editions(campaign, now)  # first: a retry after a failed create finds it still sending
            self.lifecycle.finish(campaign.id, by="finish")
            log.info("campaign done", campaign_id=campaign.id, pending=pending)
            return Outcome(TaskStatus.DONE, reason="campaign_done")
        again = FinishTask(campaign.id, campaign.clinic_id, round=task.round, check=min(task.check + 1, 10_000))
        at = min(self._finish_at(task.check + 1), campaign.window.end + FINISH_GRACE)
        self._create([self._spec(Queue.CAMPAIGN_PLANNING, again.business_key, again.to_json(), at)])
        return Outcome(TaskStatus.DONE, reason=f"pending_{pending}")

    # ---------------------------------------------------------------------------------------- parts

    def _report_editions(self, campaign: Campaign, now: datetime) -> None:
        """The report emailed to the clinic's managers a minute after the campaign is done, and again once the
        14 days in which its recipients' bookings count have passed for the last of them (named tasks: a replay
        queues nothing twice)."""
        from shared.campaigns.report import BOOKING_WINDOW
        from shared.campaigns.tasks import CampaignReportTask

        specs = []
        # Every message went out by now (nothing is pending, or the window has closed): its recipient's 14 days
        # end by now + 14 days, well inside what Cloud Tasks schedules; the window's end + 14 days need not be.
        for at in (now + REPORT_AFTER, now + BOOKING_WINDOW + REPORT_AFTER):
            edition = CampaignReportTask(campaign_id=campaign.id, clinic_id=campaign.clinic_id, date=at.date())
            specs.append(self._spec(Queue.REPORTS, edition.failure_key, edition.to_json(), at))
        self._create(specs)

    def _campaign(self, campaign_id: str, clinic_id: str) -> Campaign:
        campaign = self.lifecycle.read(campaign_id)
        if campaign.clinic_id != clinic_id:
            raise PermanentError("task ids do not match the campaign", code="payload_mismatch")
        return campaign

    def _clinic_doc(self, clinic_id: str) -> dict[str, object]:
        doc = self.store.get(f"{CLINICS}/{clinic_id}")
        if doc is None:
            raise PermanentError("clinic not found", code="clinic_missing")
        return doc.data

    def _round_start(self, campaign: Campaign) -> datetime:
        """When this round began (the last move to sending): the same on every replay of its tasks."""
        starts = [entry.at for entry in campaign.history if entry.status == Status.SENDING]
        return campaign.window.clamp(starts[-1] if starts else self.clock.now())

    def _planned(self, campaign: Campaign, recipient: Recipient, slot: datetime) -> Planned:
        fields = {
            "kind": "campaign_message",
            "channel": "sms",
            "clinic_id": campaign.clinic_id,
            "patient_id": recipient.patient_id,
            "campaign_id": campaign.id,
            "purpose": "marketing",
            "basis": recipient.basis,
            "send_at": slot,
        }
        skipped = WINDOW_ENDED if slot >= campaign.window.end else None
        return Planned(message_key(campaign.id, recipient.patient_id), fields, skipped_reason=skipped)

    def _finish_at(self, check: int) -> datetime:
        """The `check`th look: 15 s after the last batch, then twice as long each time, at most FINISH_EVERY."""
        wait: timedelta = min(FINISH_FIRST * (1 << min(check, 10)), FINISH_EVERY)
        return self.clock.now() + wait

    def _enqueue_plan(self, campaign: Campaign, *, at: datetime | None) -> None:
        plan = PlanTask(campaign.id, campaign.clinic_id, round=campaign.round)
        self._create([self._spec(Queue.CAMPAIGN_PLANNING, plan.business_key, plan.to_json(), at)])

    def _spec(self, queue: Queue, key: str, payload: dict[str, object], at: datetime | None) -> TaskSpec:
        return TaskSpec(self.queues(queue), key, payload, at)

    def _create(self, specs: list[TaskSpec]) -> None:
        """Create every task; a failure is retried with the whole task (names make the retry fill the gap)."""
        report = create_all(self.tasks, specs)
        if report.failed:
            raise RetryableError(
                f"{len(report.failed)} of {len(specs)} campaign tasks not created", code="enqueue_failed"
            )
