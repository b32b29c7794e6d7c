"""The report's booking-recovery section (shared/reports/journeys.py): one bounded query of the clinic's
recovery records started in the period (`clinic_id ==` + a `started_at` range; docs/booking-recovery.md,
"Figures").

- sessions: booking sessions started in the period (booking.started or .abandoned received);
- nudged: those at least one nudge went out for;
- recovered: nudged sessions completed after their first nudge;
- conversion: recovered / nudged (None when nothing was nudged).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from shared.booking_recovery.recoveries import RECOVERIES
from shared.reports.journeys import Figure, JourneyFigures

if TYPE_CHECKING:
    from shared.platform.store import Store
    from shared.reports.periods import ReportPeriod

SECTION = "booking_recovery"


def report_figures(store: Store, clinic_id: str, period: ReportPeriod) -> JourneyFigures:
    sessions = nudged = recovered = 0
    for doc in store.query(
        RECOVERIES,
        where=[("clinic_id", "==", clinic_id), ("started_at", ">=", period.start), ("started_at", "<", period.end)],
        fields=["first_nudged_at", "completed_at"],
    ):
        sessions += 1
        first, completed = doc.get("first_nudged_at"), doc.get("completed_at")
        if isinstance(first, datetime):
            nudged += 1
            recovered += isinstance(completed, datetime) and completed >= first
    return JourneyFigures(
        SECTION,
        "Abandoned-booking recovery",
        (
            Figure("sessions", "Booking sessions started", sessions),
            Figure("nudged", "Sessions nudged", nudged),
            Figure("recovered", "Bookings recovered after a nudge", recovered),
            Figure("conversion", "Recovered of nudged", recovered / nudged if nudged else None, percent=True),
        ),
    )
