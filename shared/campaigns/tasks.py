"""A campaign's task types (docs/campaigns.md): its plan and its batches of recipients on the planning
queue, run by shared/campaigns/planning.py; one message per recipient on the campaigns queue, run by
shared/campaigns/sending.py.

    campaign_plan ──► campaign_batch(after="") ──► campaign_batch(after=<last id>) ──► … ──► campaign_finish
                          │ ≤ 200 recipients each                                            │ until nothing
                          ▼                                                                  ▼ is pending
                      campaign_message (one per recipient, at its recipient's window) ──► done

Bodies carry ids, instants and counters only. Every task is named (shared/tasks/queue.py task_id) by
what it does in which dispatch round, so a replayed plan or batch creates nothing twice; a resume starts
a new round and dispatches again only what was not sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from shared.contract.ids import is_doc_id
from shared.messaging.appointment_tasks import LedgerKey
from shared.messaging.keys import dedup_key
from shared.platform.errors import PermanentError
from shared.reports.tasks import recipient_slot
from shared.tasks.declaration import Declaration, Queue, Service
from shared.tasks.payload import Day, DocId, Instant, TaskBody, Whole, bad

if TYPE_CHECKING:
    from shared.campaigns.planning import CampaignPlanner
    from shared.campaigns.report_email import CampaignReportEmails
    from shared.campaigns.sending import CampaignMessages
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome

PLAN = "campaign_plan"
BATCH = "campaign_batch"
FINISH = "campaign_finish"
MESSAGE = "campaign_message"
BATCH_LIMIT = 200
MAX_ROUND = 1000
MAX_CHECKS = 10_000


def message_key(campaign_id: str, patient_id: str) -> str:
    """The ledger key of the campaign's one message to a patient."""
    return dedup_key(MESSAGE, campaign_id, patient_id)


class CursorCheck:
    """A patient id to page after, or "" for the first page."""

    def read(self, value: Any, name: str) -> str:
        if value != "" and not is_doc_id(value):
            raise bad(f"task field '{name}' must be a patient id or empty")
        return str(value)

    def write(self, value: str) -> str:
        return value


Round = Annotated[int, Whole(0, MAX_ROUND)]


@dataclass(frozen=True)
class PlanTask(TaskBody):
    """Open the campaign's window (scheduled → sending), estimate it, start its batches."""

    campaign_id: DocId
    clinic_id: DocId
    round: Round = 0
    type: str = PLAN

    @property
    def business_key(self) -> str:
        return f"{PLAN}:{self.campaign_id}:{self.round}"

    @property
    def failure_key(self) -> str:
        return f"campaign-{self.campaign_id}-plan-{self.round}"


@dataclass(frozen=True)
class BatchTask(TaskBody):
    """One page of ≤ `limit` patients after id `after`: their ledger entries and message tasks, then the next."""

    campaign_id: DocId
    clinic_id: DocId
    not_before: Instant  # the round's start: no message of this round is timed earlier
    after: Annotated[str, CursorCheck()] = ""
    limit: Annotated[int, Whole(1, 500)] = BATCH_LIMIT
    round: Round = 0
    type: str = BATCH

    @property
    def business_key(self) -> str:
        return f"{BATCH}:{self.campaign_id}:{self.round}:{self.after}"

    @property
    def failure_key(self) -> str:
        return f"campaign-{self.campaign_id}-batch-{self.round}-{self.after}"[:200]


@dataclass(frozen=True)
class FinishTask(TaskBody):
    """Once the batches ran: done when no message is pending (or the window is over), else look again later."""

    campaign_id: DocId
    clinic_id: DocId
    round: Round = 0
    check: Annotated[int, Whole(0, MAX_CHECKS)] = 0
    type: str = FINISH

    @property
    def business_key(self) -> str:
        return f"{FINISH}:{self.campaign_id}:{self.round}:{self.check}"

    @property
    def failure_key(self) -> str:
        return f"campaign-{self.campaign_id}-finish-{self.round}"


@dataclass(frozen=True)
class MessageTask(TaskBody):
    """The campaign's message to one patient, due at `send_at` (its recipient's window)."""

    campaign_id: DocId
    clinic_id: DocId
    patient_id: DocId
    dedup_key: LedgerKey
    send_at: Instant
    round: Round = 0
    type: str = MESSAGE

    def validate(self) -> None:
        if self.dedup_key != message_key(self.campaign_id, self.patient_id):
            raise bad("task dedup_key does not match its campaign and patient", code="dedup_key_mismatch")

    @property
    def business_key(self) -> str:
        """Named by its slot: a replayed batch names it again, a move or a new round names a new one."""
        return f"{MESSAGE}:{self.dedup_key}:{self.round}:{self.send_at.isoformat()}"

    @property
    def failure_key(self) -> str:
        return self.dedup_key

    def ledger_fields(self, basis: str | None) -> dict[str, Any]:
        """What its ledger doc records (docs/campaigns.md): ids, purpose and basis, never the text."""
        return {
            "kind": MESSAGE,
            "channel": "sms",
            "clinic_id": self.clinic_id,
            "patient_id": self.patient_id,
            "campaign_id": self.campaign_id,
            "purpose": "marketing",
            "basis": basis,
            "send_at": self.send_at,
        }

    @classmethod
    def from_ledger(cls, key: str, doc: dict[str, Any]) -> MessageTask | None:
        """The task a ledger doc was written for (the stuck sweep's record), or None."""
        send_at = doc.get("send_at")
        if doc.get("kind") != MESSAGE or not isinstance(send_at, datetime):
            return None
        body = {name: doc.get(name) for name in ("campaign_id", "clinic_id", "patient_id")}
        try:
            return cls.from_json({**body, "dedup_key": key, "send_at": send_at.isoformat()}, MESSAGE)
        except PermanentError:
            return None


CAMPAIGN_REPORT = "campaign_report"


@dataclass(frozen=True)
class CampaignReportTask(TaskBody):
    """Build campaign_reports/{campaign_id} and email it to the clinic's managers (one edition per day)."""

    campaign_id: DocId
    clinic_id: DocId
    date: Day  # the edition's day (UTC)
    type: str = CAMPAIGN_REPORT

    @property
    def failure_key(self) -> str:
        return dedup_key(CAMPAIGN_REPORT, self.campaign_id, self.date.isoformat())

    def recipient_key(self, address: str) -> str:
        """The ledger key of this edition's email to one manager."""
        return dedup_key(CAMPAIGN_REPORT, self.campaign_id, recipient_slot(self.date.isoformat(), address))


CAMPAIGN_PLANNER: Service[CampaignPlanner] = Service("campaign_planner")
CAMPAIGN_MESSAGES: Service[CampaignMessages] = Service("campaign_messages")
CAMPAIGN_REPORT_EMAILS: Service[CampaignReportEmails] = Service("campaign_report_emails")


def _plan(planner: CampaignPlanner, task: PlanTask, attempt: Attempt) -> Outcome:
    return planner.plan(task)


def _batch(planner: CampaignPlanner, task: BatchTask, attempt: Attempt) -> Outcome:
    return planner.batch(task)


def _finish(planner: CampaignPlanner, task: FinishTask, attempt: Attempt) -> Outcome:
    return planner.finish(task)


def _message(messages: CampaignMessages, task: MessageTask, attempt: Attempt) -> Outcome:
    return messages.deliver(task, attempt)


def _reopen(messages: CampaignMessages, task: MessageTask) -> Reopen:
    return messages.ledger.reopen(task.dedup_key)


# Plan, batch and finish are idempotent (named tasks, ledger creates): nothing to reopen.
def _report(service: CampaignReportEmails, task: CampaignReportTask, attempt: Attempt) -> Outcome:
    return service.deliver(task, attempt)


def _reopen_report(service: CampaignReportEmails, task: CampaignReportTask) -> Reopen:
    return service.reopen(task)


DECLARATIONS = (
    Declaration(PLAN, PlanTask, Queue.CAMPAIGN_PLANNING, CAMPAIGN_PLANNER, _plan),
    Declaration(BATCH, BatchTask, Queue.CAMPAIGN_PLANNING, CAMPAIGN_PLANNER, _batch),
    Declaration(FINISH, FinishTask, Queue.CAMPAIGN_PLANNING, CAMPAIGN_PLANNER, _finish),
    Declaration(MESSAGE, MessageTask, Queue.CAMPAIGNS, CAMPAIGN_MESSAGES, _message, _reopen, MessageTask.from_ledger),
    Declaration(CAMPAIGN_REPORT, CampaignReportTask, Queue.REPORTS, CAMPAIGN_REPORT_EMAILS, _report, _reopen_report),
)
