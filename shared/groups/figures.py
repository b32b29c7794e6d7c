"""The report's group-bookings section (shared/reports/journeys.py, docs/groups.md): what the period's
group messages did, from their ledger docs (one per seat and offset) in one bounded query: the clinic's
`group_reminder` docs whose send time lies in the period."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.groups.model import GROUP_CANCELLED, ORGANIZER_HOURS
from shared.messaging.appointment_tasks import GROUP
from shared.messaging.ledger import COLLECTION, State
from shared.reports.journeys import Figure, JourneyFigures

if TYPE_CHECKING:
    from shared.platform.store import Store
    from shared.reports.periods import ReportPeriod

SECTION = "group_bookings"
SENT = (State.SENT.value, State.DELIVERED.value)
MEMBER_CANCELLED = "cancelled"  # the seat's own appointment was cancelled (shared.messaging.delivery)


def report_figures(store: Store, clinic_id: str, period: ReportPeriod) -> JourneyFigures:
    groups: set[str] = set()
    seats: set[str] = set()
    cancelled_seats: set[str] = set()
    cancelled_groups: set[str] = set()
    sent = organizer = 0
    docs = store.query(
        COLLECTION,
        where=[
            ("clinic_id", "==", clinic_id),
            ("kind", "==", GROUP),
            ("send_at", ">=", period.start),
            ("send_at", "<", period.end),
        ],
        fields=["state", "reason", "group_id", "appointment_id", "offset_hours"],
    )
    for doc in docs:
        state, reason, group, seat = doc.get("state"), doc.get("reason"), doc.get("group_id"), doc.get("appointment_id")
        if state in SENT:
            sent += 1
            organizer += doc.get("offset_hours") == ORGANIZER_HOURS
            groups.add(str(group))
            seats.add(str(seat))
        elif state == State.SKIPPED.value and reason == GROUP_CANCELLED:
            cancelled_groups.add(str(group))
        elif state == State.SKIPPED.value and reason == MEMBER_CANCELLED:
            cancelled_seats.add(str(seat))
    return JourneyFigures(
        key=SECTION,
        title="Group bookings",
        figures=(
            Figure("groups_messaged", "Groups with messages sent", len(groups)),
            Figure("seats_reminded", "Seats reminded", len(seats)),
            Figure("messages_sent", "Group messages sent", sent),
            Figure("organizer_reminders", "Organizer reminders (72 h)", organizer),
            Figure("member_cancellations", "Seats cancelled before their messages", len(cancelled_seats)),
            Figure("groups_cancelled", "Groups cancelled before their messages", len(cancelled_groups)),
        ),
    )
