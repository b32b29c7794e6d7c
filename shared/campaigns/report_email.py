"""The campaign_report task's service (its body and declaration: shared/campaigns/tasks.py): build a
campaign's report (shared.campaigns.report) and email it to the clinic's
managers through the staff emails' path (shared.reports.emails: one ledger entry per manager and edition).

A body carries ids and the edition's day only: a redelivered task rebuilds the same document and finds its
emails sent; the next day's edition (bookings keep arriving for 14 days) is a new task and a new email.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.campaigns.report import CampaignReport, CampaignReports
from shared.campaigns.tasks import CampaignReportTask
from shared.contract.models import Clinic
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError
from shared.platform.html_templates import render_html
from shared.reports.render import TEMPLATES, Email

if TYPE_CHECKING:
    from shared.reports.emails import StaffEmails
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def figures(report: CampaignReport) -> list[tuple[str, str]]:
    """The report's headline figures as (label, text): the email and the console show the same."""
    cost = "—" if report.cost_cents is None else f"{report.cost_cents / 100:,.2f}"
    return [
        ("Audience", _count(report.audience)),
        ("Excluded", _count(sum(report.excluded.values()))),
        ("Recipients", _count(report.planned)),
        ("Sent", _count(report.sent)),
        ("Delivered", _count(report.delivered)),
        ("Failed", _count(report.failed)),
        ("Not sent", _count(sum(report.skipped.values()))),
        ("Still sending", _count(report.pending)),
        ("Opted out within 72 h", _count(report.opted_out_72h)),
        ("Clicks (recipients)", f"{report.clicks:,} ({report.clickers:,})"),
        ("Bookings within 14 days (recipients)", f"{report.bookings:,} ({report.booked_recipients:,})"),
        ("SMS segments", _count(report.segments)),
        ("Cost", cost),
    ]


def _rows(counts: dict[str, int]) -> list[tuple[str, str]]:
    return [(reason, f"{n:,}") for reason, n in counts.items()]


def campaign_email(report: CampaignReport, clinic_name: str) -> Email:
    """The report as an email: a table of figures, as text and as HTML."""
    built_at = report.built_at.strftime("%Y-%m-%d %H:%M UTC")
    subject = f"{clinic_name}: campaign report, {report.name or report.campaign_id} ({report.status})"
    lines = [f"{clinic_name} - campaign report: {report.name or report.campaign_id} ({report.status})", ""]
    lines += [f"  {label}: {value}" for label, value in figures(report)]
    for title, counts in (
        ("Excluded at planning", report.excluded),
        ("Failed, by error code", report.failed_by_code),
        ("Not sent, by reason", report.skipped),
    ):
        if counts:
            lines += ["", f"{title}:", *(f"  {reason}: {n:,}" for reason, n in counts.items())]
    lines += ["", f"As of {built_at}"]
    html = render_html(
        TEMPLATES,
        "campaign_report.html",
        clinic_name=clinic_name,
        campaign_name=report.name or report.campaign_id,
        status=report.status,
        figures=figures(report),
        excluded=_rows(report.excluded),
        failed=_rows(report.failed_by_code),
        skipped=_rows(report.skipped),
        built_at=built_at,
    )
    return Email(subject=subject, text="\n".join(lines) + "\n", html=html)


class CampaignReportEmails:
    """The service behind campaign_report."""

    def __init__(self, *, reports: CampaignReports, emails: StaffEmails, clock: Clock) -> None:
        self.reports, self.emails, self.clock = reports, emails, clock

    def deliver(self, task: CampaignReportTask, attempt: Attempt) -> Outcome:
        report = self.reports.build(task.campaign_id, now=self.clock.now())
        if report.clinic_id != task.clinic_id:
            raise PermanentError("the campaign belongs to another clinic", code="payload_mismatch")
        fields: dict[str, Any] = {"kind": task.type, "campaign_id": task.campaign_id}

        def email_of(clinic: Clinic) -> Email:
            return campaign_email(report, clinic.name)

        return self.emails.deliver_to_managers(task.clinic_id, task.recipient_key, fields, email_of, attempt)

    def reopen(self, task: CampaignReportTask) -> Reopen:
        return self.emails.reopen(self.emails.manager_keys(task.clinic_id, task.recipient_key))
