"""Campaigns: every campaigns/{id} document with its status and window, beside its report's figures
(campaign_reports/{id}, shared/campaigns/report.py; docs/campaigns.md). Numbers only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response

from local.sandbox.console.data import ConsoleDataError, plain
from local.sandbox.console.layout import html_response, render

if TYPE_CHECKING:
    from local.sandbox.console import Console

CAMPAIGNS = "campaigns"
CAMPAIGN_REPORTS = "campaign_reports"
LIST = "campaigns.html"
# The report's headline figures, in the order the page shows them.
FIGURES = (
    ("planned", "Recipients"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
    ("opted_out_72h", "Opted out (72 h)"),
    ("clicks", "Clicks"),
    ("bookings", "Bookings (14 d)"),
)


def _money(cents: Any) -> str:
    return f"{cents / 100:,.2f}" if isinstance(cents, int | float) and not isinstance(cents, bool) else "—"


def _rows(docs: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(doc_id, {name: plain(value) for name, value in doc.items()}) for doc_id, doc in docs]


def routes(blueprint: Blueprint, console: Console) -> None:
    data = console.data

    @blueprint.get("/campaigns")
    def campaigns_page() -> Response:
        """Campaigns newest first, each beside its report (when one was built)."""
        context: dict[str, Any] = {"campaigns": [], "reports": {}, "clinics": {}, "problem": None}
        try:
            context["campaigns"] = _rows(data.listing(CAMPAIGNS, [], order="created_at", limit=200))
            context["reports"] = dict(_rows(data.listing(CAMPAIGN_REPORTS, [], order="built_at", limit=200)))
            context["clinics"] = data.clinic_names()
        except ConsoleDataError as error:
            context["problem"] = str(error)
        page = render(LIST, title="Campaigns", active="campaigns", poll=5000, figures=FIGURES, money=_money, **context)
        return html_response(page)
