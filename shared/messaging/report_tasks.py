"""The task bodies of the emails to clinic staff: a stored report to its managers (report_email) and the
morning reorder alert to its inventory contacts (inventory_alert). Written by report_builder, read by the
task handler. A body carries ids, the period and the date only; the recipients are read again from the
clinic at send time, each with its own ledger key, so a re-run or a retry never mails anyone twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.messaging.keys import dedup_key
from shared.platform.errors import PermanentError
from shared.tasks.payload import VERSION, TaskBody, doc_id, instant, require_fields, task_type

REPORT_EMAIL = "report_email"
INVENTORY_ALERT = "inventory_alert"
PERIODS = ("daily", "weekly")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date(body: dict[str, Any], name: str) -> date:
    value = body.get(name)
    try:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise PermanentError(f"task field '{name}' must be a date YYYY-MM-DD", code="bad_payload") from None


def recipient_slot(slot: str, address: str) -> str:
    """One recipient's share of a message's send slot (hashed into the ledger key, never stored)."""
    return f"{slot}>{address.strip().lower()}"


@dataclass(frozen=True)
class ReportEmailTask(TaskBody):
    """Email the stored report reports/{clinic_id}_{period}_{date} to the clinic's managers."""

    clinic_id: str
    period: str
    date: date  # the period's first local day
    # A partial report (asked for before the period ended): the instant it was built as of. Its task and
    # ledger keys are its own, so the complete report after the period ends is still emailed.
    as_of: datetime | None = None
    type: str = REPORT_EMAIL
    v: int = VERSION

    FIELDS = ("clinic_id", "period", "date", "as_of")

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

    clinic_id: str
    date: date  # the clinic's local day of the check
    type: str = INVENTORY_ALERT
    v: int = VERSION

    FIELDS = ("clinic_id", "date")

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


def parse_report_email_task(body: dict[str, Any]) -> ReportEmailTask:
    if task_type(body) != REPORT_EMAIL:
        raise PermanentError("not a report_email task", code="unknown_type")
    require_fields(body, ReportEmailTask.FIELDS)
    period = body.get("period")
    if period not in PERIODS:
        raise PermanentError("task field 'period' must be daily or weekly", code="bad_payload")
    as_of = instant(body, "as_of") if body.get("as_of") is not None else None
    return ReportEmailTask(
        clinic_id=doc_id(body, "clinic_id"), period=str(period), date=_date(body, "date"), as_of=as_of
    )


def parse_inventory_alert_task(body: dict[str, Any]) -> InventoryAlertTask:
    if task_type(body) != INVENTORY_ALERT:
        raise PermanentError("not an inventory_alert task", code="unknown_type")
    require_fields(body, InventoryAlertTask.FIELDS)
    return InventoryAlertTask(clinic_id=doc_id(body, "clinic_id"), date=_date(body, "date"))
