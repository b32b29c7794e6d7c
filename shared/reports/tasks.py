"""The task types of the emails to clinic staff, run by shared/reports/emails.py's StaffEmails: a stored
report to its managers (report_email) and the morning reorder alert to its inventory contacts
(inventory_alert). Written by report_builder. A body carries ids, the period and the date only; the
recipients are read again from the clinic at send time, each with its own ledger key, so a re-run or a
retry never mails anyone twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from shared.messaging.keys import dedup_key
from shared.tasks.declaration import Declaration, Queue, Service
from shared.tasks.payload import Day, DocId, Instant, OneOf, TaskBody

if TYPE_CHECKING:
    from shared.reports.emails import StaffEmails
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome

REPORT_EMAIL = "report_email"
INVENTORY_ALERT = "inventory_alert"
PERIODS = ("daily", "weekly")


def recipient_slot(slot: str, address: str) -> str:
    """One recipient's share of a message's send slot (hashed into the ledger key, never stored)."""
    return f"{slot}>{address.strip().lower()}"


@dataclass(frozen=True)
class ReportEmailTask(TaskBody):
    """Email the stored report reports/{clinic_id}_{period}_{date} to the clinic's managers."""

    clinic_id: DocId
    period: Annotated[str, OneOf(PERIODS)]
    date: Day  # the period's first local day
    # A partial report (asked for before the period ended): the instant it was built as of. Its task and
    # ledger keys are its own, so the complete report after the period ends is still emailed.
    as_of: Instant | None = None
    type: str = REPORT_EMAIL

    @property
    def slot(self) -> str:
        whole = f"{self.period}@{self.date.isoformat()}"
        return whole if self.as_of is None else f"{whole}~partial@{self.as_of.isoformat()}"

    @property
    def report_id(self) -> str:
        return f"{self.clinic_id}_{self.period}_{self.date.isoformat()}"

    @property
    def failure_key(self) -> str:
        """The task's name and its failed_tasks id: one per clinic, period and date."""
        return dedup_key(REPORT_EMAIL, self.clinic_id, self.slot)

    def recipient_key(self, address: str) -> str:
        """The ledger key of the report's email to one manager."""
        return dedup_key(REPORT_EMAIL, self.clinic_id, recipient_slot(self.slot, address))


@dataclass(frozen=True)
class InventoryAlertTask(TaskBody):
    """Email the day's reorder draft purchase_orders/{clinic_id}_{date} to the clinic's inventory contacts."""

    clinic_id: DocId
    date: Day  # the clinic's local day of the check
    type: str = INVENTORY_ALERT

    @property
    def slot(self) -> str:
        return self.date.isoformat()

    @property
    def order_id(self) -> str:
        return f"{self.clinic_id}_{self.date.isoformat()}"

    @property
    def failure_key(self) -> str:
        return dedup_key(INVENTORY_ALERT, self.clinic_id, self.slot)

    def recipient_key(self, address: str) -> str:
        return dedup_key(INVENTORY_ALERT, self.clinic_id, recipient_slot(self.slot, address))


STAFF_EMAILS: Service[StaffEmails] = Service("staff_emails")


def _report(emails: StaffEmails, task: ReportEmailTask, attempt: Attempt) -> Outcome:
    return emails.deliver_report(task, attempt)


def _reopen_report(emails: StaffEmails, task: ReportEmailTask) -> Reopen:
    return emails.reopen(emails.report_keys(task))


def _alert(emails: StaffEmails, task: InventoryAlertTask, attempt: Attempt) -> Outcome:
    return emails.deliver_inventory_alert(task, attempt)


def _reopen_alert(emails: StaffEmails, task: InventoryAlertTask) -> Reopen:
    return emails.reopen(emails.alert_keys(task))


DECLARATIONS = (
    Declaration(REPORT_EMAIL, ReportEmailTask, Queue.REPORTS, STAFF_EMAILS, _report, _reopen_report),
    Declaration(INVENTORY_ALERT, InventoryAlertTask, Queue.REPORTS, STAFF_EMAILS, _alert, _reopen_alert),
)
