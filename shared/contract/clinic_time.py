"""Clinic-local time: calendar days as UTC ranges and quiet hours (pure time math; the wording patients
read lives in shared.messaging.templates).

Time is stored in UTC and reasoned about in the clinic's IANA zone (docs/architecture.md). A local day can be
23, 24 or 25 hours long (or 23.5/24.5 on Lord Howe Island); every conversion here goes through zoneinfo.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from shared.contract.models import QuietHours

# A reminder pushed back out of the evening's quiet hours is sent this long before they begin,
# leaving the queue some slack (rate limits, retries) before the window closes.
EVENING_MARGIN = timedelta(minutes=15)


def _localize(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The instant a wall-clock time happens on a local day.

    A wall time inside a spring-forward gap does not exist; fold=0 maps it with the offset in force
    before the gap, which lands exactly on the transition instant for times at the gap's start, and a
    round trip through UTC normalises the rest. A repeated (autumn) wall time takes its first occurrence.
    """
    naive_local = datetime.combine(day, wall).replace(tzinfo=zone, fold=0)
    return naive_local.astimezone(timezone.utc)


def local_day_range(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a clinic's local calendar day, as UTC instants."""
    return _localize(day, time(0, 0), zone), _localize(day + timedelta(days=1), time(0, 0), zone)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def local_tomorrow(now: datetime, zone: ZoneInfo) -> date:
    """The clinic's next local calendar day as seen at `now`."""
    return local_date(now, zone) + timedelta(days=1)


def in_quiet_hours(instant: datetime, zone: ZoneInfo, quiet: QuietHours) -> bool:
    if quiet.start == quiet.end:
        return False
    wall = instant.astimezone(zone).time()
    if quiet.start < quiet.end:  # e.g. 13:00–14:00, same day
        return quiet.start <= wall < quiet.end
    return wall >= quiet.start or wall < quiet.end  # wraps midnight, e.g. 21:00–08:00


def shift_out_of_quiet_hours(
    send_at: datetime, zone: ZoneInfo, quiet: QuietHours, *, not_after: datetime | None = None
) -> datetime:
    """Move a send time out of the clinic's quiet hours; never drop it.

    It moves forward to the window's end (the next morning). If that would be later than `not_after`
    (say, the appointment itself), it moves back to just before the window began instead.
    """
    if not in_quiet_hours(send_at, zone, quiet):
        return send_at
    local = send_at.astimezone(zone)
    wraps = quiet.start > quiet.end
    end_day = local.date() + timedelta(days=1) if wraps and local.time() >= quiet.start else local.date()
    forward = _localize(end_day, quiet.end, zone)
    if not_after is None or forward <= not_after:
        return forward
    start_day = local.date() - timedelta(days=1) if wraps and local.time() < quiet.end else local.date()
    return _localize(start_day, quiet.start, zone) - EVENING_MARGIN
