"""Reports: the stored reports/{id} documents (docs/reports.md) and the email each was sent as, its HTML
rendered in a sandboxed iframe, with every recipient's delivery status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from local.sandbox.console.data import LEDGER, REPORTS, ConsoleDataError, plain
from local.sandbox.console.layout import html_response, render
from local.sandbox.console.messages import Enricher, ledger_key
from shared.platform.errors import InvalidDocument
from shared.reports.render import JourneyRows, journey_rows
from shared.reports.report_docs import Report

if TYPE_CHECKING:
    from local.sandbox.console import Console

HEADLINE = ("total", "completed", "cancelled", "no_show")

LIST = "reports.html"

REPORT = "report.html"


def _money(cents: Any) -> str:
    return f"{cents / 100:,.2f}" if isinstance(cents, int | float) else "—"


def _journeys(report_id: str, doc: dict[str, Any] | None) -> list[JourneyRows]:
    """The report's patient-journey sections as the email shows them (none for a document that breaks its shape:
    the raw document is one click away)."""
    if doc is None:
        return []
    try:
        return journey_rows(Report.from_doc(report_id, doc))
    except InvalidDocument:
        return []


def routes(blueprint: Blueprint, console: Console) -> None:
    sandbox, data = console.sandbox, console.data

    @blueprint.get("/reports")
    def reports_page() -> Response:
        problem, reports = None, []
        try:
            reports = [
                (doc_id, {name: plain(value) for name, value in doc.items()})
                for doc_id, doc in data.listing(REPORTS, [], order="generated_at", limit=200)
            ]
        except ConsoleDataError as error:
            problem = str(error)
        page = render(
            LIST,
            title="Reports",
            active="reports",
            poll=5000,
            reports=reports,
            clinics=data.clinic_names(),
            headline=HEADLINE,
            money=_money,
            problem=problem,
        )
        return html_response(page)

    @blueprint.get("/reports/<report_id>")
    def report_page(report_id: str) -> Response:
        import json

        problem, report, ledger, journeys = None, None, [], []
        try:
            found = data.document(REPORTS, report_id)
            report = {name: plain(value) for name, value in found.items()} if found else None
            journeys = _journeys(report_id, found)
            ledger = data.listing(LEDGER, [("report_id", report_id)], order="updated_at", limit=100)
        except ConsoleDataError as error:
            problem = str(error)
        states = {key: str(doc.get("state")) for key, doc in ledger}
        emails = [
            row
            for row in Enricher(data).enrich(sandbox.outbox.list(channel="email"))
            if ledger_key(row.message) in states
        ]
        html = next((row.message["html"] for row in emails if row.message.get("html")), None)
        clinic_id = str((report or {}).get("clinic_id") or "")
        clinic = data.clinic_names().get(clinic_id, clinic_id)
        page = render(
            REPORT,
            title="Report",
            active="reports",
            report_id=report_id[:200],
            report=report,
            clinic=clinic,
            emails=emails,
            states=states,
            ledger_count=len(states),
            html=html,
            journeys=journeys,
            problem=problem,
            pretty=lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str),
        )
        return html_response(page, status=200 if report is not None or problem else 404)
