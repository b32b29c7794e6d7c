"""The report's patient-journey figures: one section per flow (group bookings, booking recovery, feedback,
rebooking and no-shows), each computed by its own domain from its own collections (docs/reports.md).

A flow contributes a `JourneyFigures` through a provider `(store, clinic_id, period) -> JourneyFigures`
listed in `PROVIDERS` by module name (`provider("shared.<flow>.figures")`: the flow's module imports this one
for `Figure`); the report builder (shared/reports/builder.py, `journey_figures`) stores every section in the
report doc under `journeys` (values) and `journey_sections` (titles and labels, shared/reports/report_docs.py)
and renders them in the email and on the console's report page, in this order (shared/reports/render.py,
`journey_rows`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.platform.store import Store
    from shared.reports.periods import ReportPeriod

Value = int | float | None  # None: not defined for this period (a ratio of nothing)


@dataclass(frozen=True)
class Figure:
    key: str  # stable, snake_case: the report doc's field
    label: str  # what a manager reads
    value: Value
    percent: bool = False  # a ratio in [0, 1], shown as a percentage


@dataclass(frozen=True)
class JourneyFigures:
    key: str  # the section's field under `journeys` in the report doc
    title: str
    figures: tuple[Figure, ...]

    def as_doc(self) -> dict[str, Value]:
        return {figure.key: figure.value for figure in self.figures}


Provider = Callable[["Store", str, "ReportPeriod"], JourneyFigures]


def provider(module: str, name: str = "report_figures") -> Provider:
    """A flow's provider, imported when a report is first built: a flow's figures module imports this one (for
    `Figure`), so listing it here by name keeps the two free of an import cycle."""

    def figures(store: Store, clinic_id: str, period: ReportPeriod) -> JourneyFigures:
        found: Provider = getattr(importlib.import_module(module), name)
        return found(store, clinic_id, period)

    figures.__qualname__ = f"{module}.{name}"
    return figures


PROVIDERS: tuple[Provider, ...] = (
    provider("shared.groups.figures"),
    provider("shared.booking_recovery.figures"),
    provider("shared.feedback.figures"),
    provider("shared.rebooking.figures"),
)


def journey_figures(
    store: Store, clinic_id: str, period: ReportPeriod, providers: Sequence[Provider] = PROVIDERS
) -> list[JourneyFigures]:
    """Every provider's section for one clinic's period, in the providers' order. A provider's failure is the
    report's (the builder counts it and the redelivered tick rebuilds the report whole)."""
    return [figures(store, clinic_id, period) for figures in providers]
