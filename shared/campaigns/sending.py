"""Sending one campaign message: re-read, decide (send / move / skip), claim, re-check, send, record.

Nothing in the body is trusted beyond its ids (the ledger key is derived again from campaign and
patient). In order:
- the campaign: cancelled → skipped "campaign_cancelled"; paused → nothing, the entry stays scheduled
  for the resume's new round; its window over → skipped "window_ended";
- the patient: gone, opted out of SMS or without a number → skipped; no marketing consent for SMS any
  more → skipped "no_marketing_consent" (the basis recorded is the consent's event);
- the recipient's window (shared/consent/recipient_time.py): outside it, the message is moved to the next
  allowed moment (a new named task), never sent outside; the daily marketing cap: at the cap, moved a day
  on, or skipped "daily_cap" when the campaign's window ends first;
- then MessageSender.deliver, whose `before_send` re-reads the campaign's status after the claim and
  withdraws the message if it was stopped meanwhile: after a stop is acknowledged nothing is sent
  (shared/campaigns/lifecycle.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shared.campaigns import wording
from shared.campaigns.lifecycle import path as campaign_path
from shared.campaigns.links import CampaignLinks, link_expiry
from shared.campaigns.model import Campaign, Marketing, Status
from shared.campaigns.tasks import MessageTask
from shared.consent.caps import WINDOW as CAP_PERIOD
from shared.consent.caps import MarketingCaps
from shared.consent.consents import Consents
from shared.consent.recipient_time import Place, next_allowed_before, place_of
from shared.contract.models import CLINICS, PATIENTS, Clinic, Patient
from shared.messaging.channels import SMS, Recipient
from shared.messaging.ledger import Entry, Ledger
from shared.messaging.ledger import path as ledger_path
from shared.messaging.sender import MessageSender, Rendered, Withdrawn, Wording, duplicate_of
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.platform.store import Store
from shared.tasks.declaration import Queue
from shared.tasks.queue import TaskQueue, TaskSpec
from shared.tasks.router import Attempt, Outcome
from shared.tasks.router import Status as TaskStatus

CANCELLED, PAUSED, WINDOW_ENDED, DAILY_CAP = "campaign_cancelled", "campaign_paused", "window_ended", "daily_cap"


def _no_email() -> Rendered:
    raise PermanentError("a campaign message is an SMS only", code="no_channel")


class CampaignMessages:
    """The service behind campaign_message."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sender: MessageSender,
        tasks: TaskQueue,
        queues: Callable[[Queue], str],
        clock: Clock,
        consents: Consents,
        caps: MarketingCaps,
        links: Callable[[], CampaignLinks] | None = None,
    ) -> None:
        """`links` provides the signer of tracked links, needed only by a campaign with a link."""
        self.store, self.ledger, self.sender, self.tasks, self.queues = store, ledger, sender, tasks, queues
        self.clock, self.consents, self.caps, self.links = clock, consents, caps, links

    def deliver(self, task: MessageTask, attempt: Attempt) -> Outcome:
        paths = {
            "ledger": ledger_path(task.dedup_key),
            "campaign": campaign_path(task.campaign_id),
            "patient": f"{PATIENTS}/{task.patient_id}",
            "clinic": f"{CLINICS}/{task.clinic_id}",
        }
        docs = self.store.get_all(list(paths.values()))
        found = {name: docs.get(doc_path) for name, doc_path in paths.items()}
        entry = Entry.from_doc(found["ledger"]) if found["ledger"] else None
        if entry is not None and entry.is_done:
            return duplicate_of(entry)
        campaign_doc, patient_doc, clinic_doc = found["campaign"], found["patient"], found["clinic"]
        if campaign_doc is None or clinic_doc is None:
            raise PermanentError("campaign or clinic not found", code="campaign_missing")
        campaign = Campaign.from_doc(campaign_doc.id, campaign_doc.data)
        if campaign.clinic_id != task.clinic_id:
            raise PermanentError("task ids do not match the campaign", code="payload_mismatch")
        basis = entry.data.get("basis") if entry is not None else None
        fields = task.ledger_fields(basis if isinstance(basis, str) else None)

        def skip(reason: str) -> Outcome:
            return self.sender.skip(task.dedup_key, entry, reason, fields)

        now = self.clock.now()
        if campaign.status == Status.CANCELLED:
            return skip(CANCELLED)
        if now >= campaign.window.end:
            return skip(WINDOW_ENDED)
        if campaign.status != Status.SENDING:
            return Outcome(TaskStatus.DONE, reason=PAUSED)  # the entry stays scheduled: a resume dispatches it
        if patient_doc is None:
            return skip("patient_missing")
        patient = Patient.from_doc(patient_doc.id, patient_doc.data)
        if patient.clinic_id != campaign.clinic_id:
            raise PermanentError("task ids do not match the patient", code="payload_mismatch")
        if patient.sms_opt_out:
            return skip("sms_opt_out")
        clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
        if patient.phone is None or not patient.has_sms_number or not clinic.sms_from:
            return skip("no_phone")
        consent = self.consents.current(patient.id).marketing_basis("sms")
        if consent is None:
            return skip("no_marketing_consent")
        fields["basis"] = consent
        marketing = Marketing.of_clinic(clinic.id, clinic_doc.data)
        place = place_of(patient.phone, clinic.timezone)
        end = campaign.window.end
        allowed_at = next_allowed_before(campaign.window.clamp(now), place, marketing.hours, end) or end
        if allowed_at > now:
            return self._move(task, campaign, allowed_at, skip)
        if self.caps.at_cap(patient.id, place, marketing.daily_cap, now):
            return self._move(
                task, campaign, self._after_cap(now, place, marketing, campaign.window.end), skip, reason=DAILY_CAP
            )
        values = {"first_name": patient.first_name, "clinic_name": clinic.name, "link": self._link(campaign, task)}
        text = wording.render(campaign.template, values)
        fields["segments"] = wording.segments(text).count  # on its ledger entry: the report's exact cost
        recipient = Recipient(SMS, patient.phone, clinic.sms_from, clinic.smoke_test)

        def still_sending() -> None:
            """After the claim: a stop written before it is seen here, and nothing goes out."""
            doc = self.store.get(campaign_path(campaign.id))
            status = Campaign.from_doc(doc.id, doc.data).status if doc is not None else Status.CANCELLED
            if status != Status.SENDING:
                raise Withdrawn(CANCELLED if status == Status.CANCELLED else PAUSED)

        try:
            return self.sender.deliver(
                task.dedup_key,
                entry,
                fields,
                [recipient],
                Wording(sms=lambda: text, email=_no_email),
                attempt,
                patient_id=patient.id,
                before_send=still_sending,
            )
        except Withdrawn as withdrawn:
            if withdrawn.reason == CANCELLED:
                return self.sender.skip(task.dedup_key, None, CANCELLED, fields)
            return Outcome(TaskStatus.DONE, reason=PAUSED)

    def _link(self, campaign: Campaign, task: MessageTask) -> str:
        """The recipient's tracked link (campaign id and ledger key, signed: no PHI in the URL), or "" without one."""
        if not campaign.link:
            return ""
        if self.links is None:
            raise PermanentError("the campaign has a link and no link signer is configured", code="no_link_signer")
        return self.links().link_for(campaign.id, task.dedup_key, link_expiry(campaign.window.end))

    def _after_cap(self, now: datetime, place: Place, marketing: Marketing, end: datetime) -> datetime:
        """The first allowed moment once a full cap period has passed (no send counted now is in it)."""
        return next_allowed_before(now + CAP_PERIOD, place, marketing.hours, end) or end

    def _move(
        self,
        task: MessageTask,
        campaign: Campaign,
        at: datetime,
        skip: Callable[[str], Outcome],
        *,
        reason: str = WINDOW_ENDED,
    ) -> Outcome:
        """Re-time the message to `at` (a new named task), or skip it with `reason` when the window ends first."""
        if at >= campaign.window.end:
            return skip(reason)
        moved = MessageTask(task.campaign_id, task.clinic_id, task.patient_id, task.dedup_key, at, task.round)
        try:
            self.tasks.create(TaskSpec(self.queues(Queue.CAMPAIGNS), moved.business_key, moved.to_json(), at))
        except Exception as exc:
            raise RetryableError("could not re-time the campaign message", code="enqueue_failed") from exc
        return Outcome(TaskStatus.DONE, reason="moved")
