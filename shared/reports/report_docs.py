"""reports/{clinic_id}_{period}_{start_date}: one document per clinic and period, and the only module that
writes the collection. A re-run overwrites the whole document with what it computed (the same numbers
for the same data), so there is no state machine: the email's once-only step is the ledger's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.platform.store import Doc, Store
from shared.reports.periods import ReportPeriod

COLLECTION = "reports"


def report_id(clinic_id: str, kind: str, start_date: str) -> str:
    """The report's document id: clinic, period kind and the period's first local day (YYYY-MM-DD)."""
    return f"{clinic_id}_{kind}_{start_date}"


def path(doc_id: str) -> str:
    return f"{COLLECTION}/{doc_id}"


class Reports:
    def __init__(self, store: Store) -> None:
        self.store = store

    def save(
        self,
        clinic_id: str,
        period: ReportPeriod,
        metrics: Mapping[str, Any],
        *,
        generated_at: datetime,
        emailed_to: Sequence[str],
        currency: str | None,
        locale: str,
        partial: bool = False,
    ) -> str:
        """Write (or overwrite) the report; returns its document id."""
        doc_id = report_id(clinic_id, period.kind.value, period.start_date.isoformat())
        self.store.put(
            path(doc_id),
            {
                "clinic_id": clinic_id,
                "period": period.kind.value,
                "start_date": period.start_date.isoformat(),
                "end_date": period.end_date.isoformat(),
                "timezone": period.zone.key,
                "start": period.start,
                "end": period.end,
                "hours": period.hours,
                "metrics": dict(metrics),
                "generated_at": generated_at,
                "emailed_to": list(emailed_to),
                "currency": currency,  # how the email writes the amounts (the clinic's, as it was)
                "locale": locale,
                # Built before the period ended (asked for explicitly): figures as of generated_at.
                "partial": partial,
            },
        )
        return doc_id

    def read(self, doc_id: str) -> Doc | None:
        return self.store.get(path(doc_id))
