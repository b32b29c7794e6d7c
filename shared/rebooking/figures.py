"""The report's rebooking section (shared/reports/journeys.py; definitions in docs/rebooking.md, "Reports"):
rebooking nudges and "we missed you" messages sent in the period, and the bookings that followed each
within 14 days. One query per kind (`clinic_id ==`, `kind ==`, `send_at` in the period), then one bounded
read of each messaged patient's appointments."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.messaging import ledger
from shared.platform.store import Store
from shared.rebooking.bookings import booked_between
from shared.rebooking.tasks import NO_SHOW, REBOOK
from shared.reports.journeys import Figure, JourneyFigures
from shared.reports.periods import ReportPeriod

KEY = "rebooking"
FOLLOWED_WITHIN = timedelta(days=14)
SENT = (ledger.State.SENT.value, ledger.State.DELIVERED.value)
MAX_MESSAGES_READ = 5000  # per kind and period: far above a clinic's week


def _sent(store: Store, clinic_id: str, kind: str, period: ReportPeriod) -> list[tuple[str, datetime]]:
    """(patient, sent at) of each message of `kind` that went, planned to send in the period."""
    docs = store.query(
        ledger.COLLECTION,
        where=[
            ("clinic_id", "==", clinic_id),
            ("kind", "==", kind),
            ("send_at", ">=", period.start),
            ("send_at", "<", period.end),
        ],
        fields=["patient_id", "state", "sent_at", "send_at"],
        limit=MAX_MESSAGES_READ,
    )
    found = []
    for doc in docs:
        data = doc.data
        at = data.get("sent_at") or data.get("send_at")
        if data.get("state") in SENT and isinstance(data.get("patient_id"), str) and isinstance(at, datetime):
            found.append((data["patient_id"], at))
    return found


def _followed(store: Store, clinic_id: str, sent: list[tuple[str, datetime]]) -> int:
    return sum(booked_between(store, patient, clinic_id, at, at + FOLLOWED_WITHIN) for patient, at in sent)


def report_figures(store: Store, clinic_id: str, period: ReportPeriod) -> JourneyFigures:
    nudges = _sent(store, clinic_id, REBOOK, period)
    missed = _sent(store, clinic_id, NO_SHOW, period)
    followed = _followed(store, clinic_id, nudges)
    return JourneyFigures(
        KEY,
        "Rebooking and no-shows",
        (
            Figure("rebook_nudges_sent", "Rebooking nudges sent", len(nudges)),
            Figure("bookings_after_nudges", "Bookings within 14 days of a nudge", followed),
            Figure(
                "nudge_conversion", "Nudges followed by a booking", followed / len(nudges) if nudges else None, True
            ),
            Figure("no_show_messages_sent", '"We missed you" messages sent', len(missed)),
            Figure("rebookings_after_no_show", "Rebookings within 14 days of one", _followed(store, clinic_id, missed)),
        ),
    )
