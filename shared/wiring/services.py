"""Every service with its real adapters, each built once from one Settings (docs/architecture.md).

Properties import their service on first use: the task handler builds the waitlist's services on its
first waitlist task, never at start (docs/performance.md, cold starts).
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.platform import clients
from shared.platform.clock import Clock, system_clock
from shared.platform.settings import Settings, settings
from shared.tasks.queue import CloudTasksQueue, Target

if TYPE_CHECKING:
    from shared.booking_recovery.links import RestoreLinks
    from shared.booking_recovery.nudges import BookingNudges
    from shared.campaigns.lifecycle import Lifecycle
    from shared.campaigns.links import CampaignLinks
    from shared.campaigns.planning import CampaignPlanner
    from shared.campaigns.report_email import CampaignReportEmails
    from shared.campaigns.sending import CampaignMessages
    from shared.consent.caps import MarketingCaps
    from shared.consent.consents import Consents
    from shared.consent.evidence import SendRecords
    from shared.feedback.links import FeedbackLinks
    from shared.feedback.messages import FeedbackMessages
    from shared.feedback.surveys import Surveys
    from shared.messaging.delivery import AppointmentMessages
    from shared.messaging.ledger import Ledger
    from shared.messaging.sender import MessageSender
    from shared.platform.store import FirestoreStore
    from shared.rebooking.sending import RebookingMessages
    from shared.reminders.fanout import Fanout
    from shared.reports.builder import ReportBuilder
    from shared.reports.emails import StaffEmails
    from shared.reports.inventory import InventoryCheck
    from shared.tasks.failed_tasks import FailedTasks
    from shared.waitlist.claim_link import ClaimLinks
    from shared.waitlist.claims import Claims
    from shared.waitlist.inbound import Conversations
    from shared.waitlist.messages import WaitlistMessages
    from shared.waitlist.waves import Waves


class Services:
    def __init__(self, config: Settings, clock: Clock = system_clock) -> None:
        self.config, self.clock = config, clock

    @functools.cached_property
    def store(self) -> FirestoreStore:
        return clients.store()

    @functools.cached_property
    def tasks(self) -> CloudTasksQueue:
        """Cloud Tasks aimed at the task handler."""
        return CloudTasksQueue(clients.tasks(), self.config)

    @functools.cached_property
    def failures(self) -> FailedTasks:
        from shared.tasks.failed_tasks import FailedTasks

        return FailedTasks(self.store, self.clock)

    # -------------------------------------------------------------------------------------- messages

    @functools.cached_property
    def ledger(self) -> Ledger:
        """The notifications ledger every message claims through, with the deployed lease."""
        from shared.messaging.ledger import Ledger

        return Ledger(self.store, self.clock, lease=timedelta(seconds=self.config.ledger_lease_seconds))

    @functools.cached_property
    def sender(self) -> MessageSender:
        """The one claim → send → record path every message type uses, with the real providers."""
        from shared.messaging.opt_outs import OptOuts
        from shared.messaging.providers import SendGridEmail, TwilioSms, TwilioTestSms
        from shared.messaging.sender import MessageSender

        return MessageSender(
            ledger=self.ledger,
            sms=TwilioSms(clients.twilio()),
            email=SendGridEmail(clients.sendgrid()),
            clock=self.clock,
            opt_outs=OptOuts(self.store, self.clock),
            status_callback_url=self.config.status_callback_url,
            unconfirmed_wait=timedelta(seconds=self.config.unconfirmed_wait_seconds),
            test_sms=TwilioTestSms(clients.twilio_test),  # its client is built on the smoke clinic's first SMS
            evidence=self.evidence,
        )

    @functools.cached_property
    def evidence(self) -> SendRecords:
        """Every patient message's send record (docs/compliance.md), written by the sender and the callbacks."""
        from shared.consent.evidence import SendRecords

        return SendRecords(self.store, self.clock)

    @functools.cached_property
    def appointment_messages(self) -> AppointmentMessages:
        from shared.messaging.delivery import AppointmentMessages

        return AppointmentMessages(
            store=self.store, ledger=self.ledger, sender=self.sender, clock=self.clock, surveys=self.surveys
        )

    @functools.cached_property
    def staff_emails(self) -> StaffEmails:
        """Report and reorder emails: the same ledger and sender as every other message."""
        from shared.reports.emails import StaffEmails

        return StaffEmails(store=self.store, ledger=self.ledger, sender=self.sender, clock=self.clock)

    # -------------------------------------------------------------------------------------- waitlist

    @functools.cached_property
    def waitlist_messages(self) -> WaitlistMessages:
        """Built on the first waitlist message only: a handler that sends no offers needs no claim URL or key."""
        from shared.waitlist.messages import WaitlistMessages

        return WaitlistMessages(
            store=self.store,
            ledger=self.ledger,
            sender=self.sender,
            clock=self.clock,
            claim_url=self.config.needed("claim_url"),
            token_key=self.waitlist_token_key,
        )

    @property
    def waitlist_token_key(self) -> bytes:
        """The claim tokens' signing key (Secret Manager in production)."""
        return clients.secret("WAITLIST_TOKEN_KEY").encode("utf-8")

    @functools.cached_property
    def waves(self) -> Waves:
        from shared.waitlist.events import PubSubAppointmentEvents
        from shared.waitlist.waves import Waves

        return Waves(
            store=self.store,
            clock=self.clock,
            tasks=self.tasks,
            queue=self.config.queue_waitlist,
            events=PubSubAppointmentEvents(clients.publisher, self.config.project),
        )

    @functools.cached_property
    def claims(self) -> Claims:
        from shared.waitlist.claims import Claims

        waves = self.waves
        return Claims(store=self.store, clock=self.clock, tasks=waves.tasks, queue=waves.queue, events=waves.events)

    @functools.cached_property
    def conversations(self) -> Conversations:
        from shared.waitlist.inbound import Conversations

        return Conversations(store=self.store, clock=self.clock, claims=self.claims, surveys=self.surveys)

    @functools.cached_property
    def claim_links(self) -> ClaimLinks:
        from shared.waitlist.claim_link import ClaimLinks

        return ClaimLinks(store=self.store, clock=self.clock, claims=self.claims, token_key=self.waitlist_token_key)

    # ------------------------------------------------------------------------------------- campaigns

    @functools.cached_property
    def campaign_links(self) -> CampaignLinks:
        """Signs a campaign message's link (the task handler) and follows it (campaign-click)."""
        from shared.campaigns.links import CampaignLinks

        return CampaignLinks(
            store=self.store,
            clock=self.clock,
            click_url=self.config.needed("campaign_click_url"),
            key=clients.secret("CAMPAIGN_LINK_KEY").encode("utf-8"),
        )

    @functools.cached_property
    def campaign_report_emails(self) -> CampaignReportEmails:
        """A campaign's report, built and emailed to its clinic's managers like the clinic reports."""
        from shared.campaigns.report import CampaignReports
        from shared.campaigns.report_email import CampaignReportEmails

        return CampaignReportEmails(reports=CampaignReports(self.store), emails=self.staff_emails, clock=self.clock)

    # -------------------------------------------------------------------------------------- feedback

    @functools.cached_property
    def surveys(self) -> Surveys:
        """The feedback survey: opened as a follow-up goes, answered by text or on its page, routed once."""
        from shared.feedback.surveys import Surveys

        return Surveys(
            store=self.store,
            clock=self.clock,
            ledger=self.ledger,
            tasks=lambda: self.tasks,
            queues=self.config.queue,
            links=lambda: self.feedback_links,
        )

    @functools.cached_property
    def feedback_links(self) -> FeedbackLinks:
        """Signs a survey email's page link (the task handler) and answers it (feedback-page)."""
        from shared.feedback.links import FeedbackLinks

        return FeedbackLinks(
            store=self.store,
            clock=self.clock,
            page_url=self.config.needed("feedback_page_url"),
            key=clients.secret("FEEDBACK_LINK_KEY").encode("utf-8"),
            surveys=self.surveys,
        )

    @functools.cached_property
    def feedback_messages(self) -> FeedbackMessages:
        """A high score's review link and a low score's alert to the managers (docs/feedback.md)."""
        from shared.feedback.messages import FeedbackMessages

        return FeedbackMessages(
            store=self.store, ledger=self.ledger, sender=self.sender, emails=self.staff_emails, clock=self.clock
        )

    # ------------------------------------------------------------------------------------- reminders

    def fanout(self, *, units: bool) -> Fanout:
        """The fan-out; with `units`, the queue that runs a tick's units (the coordinator's and the units' own)."""
        return self._fanout_with_units if units else self._fanout

    @functools.cached_property
    def _fanout(self) -> Fanout:
        from shared.reminders.fanout import Fanout
        from shared.reminders.scheduler import Queues

        return Fanout(
            store=self.store,
            tasks=self.tasks,
            queues=Queues(sms=self.config.queue_sms, email=self.config.queue_email),
            clock=self.clock,
        )

    @functools.cached_property
    def _fanout_with_units(self) -> Fanout:
        import dataclasses

        from shared.reminders.fanout import UnitQueue

        target = self.unit_target
        unit_queue = UnitQueue(CloudTasksQueue(clients.tasks(), self.config, target=target), self.config.queue_fanout)
        return dataclasses.replace(self._fanout, units=unit_queue)

    @property
    def unit_target(self) -> Target:
        """Where units are POSTed, and the audience their tokens name (the unit function's own URL)."""
        url = self.config.needed("fanout_unit_url")
        return Target(url=url, audience=url)

    # ------------------------------------------------------------------------------------- campaigns

    @functools.cached_property
    def consents(self) -> Consents:
        from shared.consent.consents import Consents

        return Consents(self.store, self.clock)

    @functools.cached_property
    def campaign_lifecycle(self) -> Lifecycle:
        from shared.campaigns.lifecycle import Lifecycle

        return Lifecycle(self.store, self.clock)

    @functools.cached_property
    def campaign_planner(self) -> CampaignPlanner:
        """A campaign's plan, batches and finish (docs/campaigns.md)."""
        from shared.campaigns.audience import Audiences
        from shared.campaigns.planning import CampaignPlanner

        return CampaignPlanner(
            store=self.store,
            ledger=self.ledger,
            tasks=self.tasks,
            queues=self.config.queue,
            clock=self.clock,
            lifecycle=self.campaign_lifecycle,
            audiences=Audiences(self.store, self.consents),
            click_url=self.config.campaign_click_url,
        )

    @functools.cached_property
    def campaign_messages(self) -> CampaignMessages:
        """One campaign message per task, through the same ledger and sender as every other message."""
        from shared.campaigns.sending import CampaignMessages

        return CampaignMessages(
            store=self.store,
            ledger=self.ledger,
            sender=self.sender,
            tasks=self.tasks,
            queues=self.config.queue,
            clock=self.clock,
            consents=self.consents,
            caps=self.marketing_caps,
            links=lambda: self.campaign_links,
        )

    @functools.cached_property
    def marketing_caps(self) -> MarketingCaps:
        """The daily marketing cap every marketing message checks (campaign messages, rebooking nudges)."""
        from shared.consent.caps import MarketingCaps

        return MarketingCaps(self.evidence)

    @functools.cached_property
    def rebooking_messages(self) -> RebookingMessages:
        """Rebooking nudges (marketing) and "we missed you" (transactional), through the same ledger and sender."""
        from shared.rebooking.sending import RebookingMessages

        return RebookingMessages(
            store=self.store,
            ledger=self.ledger,
            sender=self.sender,
            tasks=self.tasks,
            queues=self.config.queue,
            clock=self.clock,
            consents=self.consents,
            caps=self.marketing_caps,
        )

    # ------------------------------------------------------------------------------ booking recovery

    @functools.cached_property
    def restore_links(self) -> RestoreLinks:
        """Signs a booking nudge's restore link (the task handler) and follows it (booking-restore)."""
        from shared.booking_recovery.links import RestoreLinks

        return RestoreLinks(
            store=self.store,
            clock=self.clock,
            restore_url=self.config.needed("booking_restore_url"),
            key=clients.secret("BOOKING_LINK_KEY").encode("utf-8"),
        )

    @functools.cached_property
    def booking_nudges(self) -> BookingNudges:
        """A booking nudge per task (docs/booking-recovery.md), through the same ledger and sender."""
        from shared.booking_recovery.nudges import BookingNudges

        return BookingNudges(
            store=self.store,
            ledger=self.ledger,
            sender=self.sender,
            clock=self.clock,
            consents=self.consents,
            caps=self.marketing_caps,
            links=lambda: self.restore_links,
        )

    # --------------------------------------------------------------------------------------- reports

    @functools.cached_property
    def reports(self) -> ReportBuilder:
        from shared.reports.builder import ReportBuilder

        return ReportBuilder(store=self.store, tasks=self.tasks, queue=self.config.queue_reports)

    @functools.cached_property
    def inventory(self) -> InventoryCheck:
        from shared.reports.inventory import InventoryCheck

        return InventoryCheck(store=self.store, tasks=self.tasks, queue=self.config.queue_reports)


@functools.cache
def services() -> Services:
    """The process's services, from the process's settings."""
    return Services(settings())
