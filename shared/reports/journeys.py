"""The report's patient-journey figures: one section per flow (group bookings, booking recovery, feedback,
rebooking and no-shows), each computed by its own domain from its own collections (docs/reports.md).

A flow contributes a `JourneyFigures` through a provider `(store, clinic_id, period) -> JourneyFigures`
listed in `PROVIDERS`; the report builder stores every section in the report doc under `journeys` and
renders them in the email and on the console's report page, in this order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.feedback.figures import report_figures as feedback_figures

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

PROVIDERS: tuple[Provider, ...] = (feedback_figures,)
