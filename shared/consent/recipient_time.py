"""When a marketing message may reach its recipient: the recipient's place and its allowed window.

A minimal implementation of the contract's API: the place is the clinic's zone,
unknown, and the window the federal 8:00-21:00 narrowed to 9:00-20:00 because the place is unknown, then
to the clinic's own hours. The recipient-time module proper (zones and states from the number, the state
table) replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

UNKNOWN_WINDOW = (time(9, 0), time(20, 0))  # the strictest common window when the state is unknown
STEP = timedelta(minutes=1)
CAPPED_REGIONS = frozenset({"FL", "MD", "OK"})  # 3 solicitations per 24 hours
STATE_CAP = 3


@dataclass(frozen=True)
class Place:
    zones: tuple[str, ...]
    regions: tuple[str, ...]
    known: bool


def place_of(phone: str, fallback_zone: str) -> Place:
    """The recipient's place; without the number's geography, the clinic's zone, unknown."""
    return Place(zones=(fallback_zone,), regions=(), known=False)


def _local_window(place: Place, clinic_hours: tuple[time, time] | None) -> tuple[time, time]:
    start, end = UNKNOWN_WINDOW
    if clinic_hours is not None:
        start, end = max(start, clinic_hours[0]), min(end, clinic_hours[1])
    return start, end


def allowed(at: datetime, place: Place, clinic_hours: tuple[time, time] | None = None) -> bool:
    """True when `at` lies inside the window in every zone the recipient may be in."""
    start, end = _local_window(place, clinic_hours)
    return all(start <= at.astimezone(ZoneInfo(zone)).time() < end for zone in place.zones)


def next_allowed(at: datetime, place: Place, clinic_hours: tuple[time, time] | None = None) -> datetime:
    """The first allowed instant at or after `at` (== at when allowed)."""
    if allowed(at, place, clinic_hours):
        return at
    moment = at.replace(second=0, microsecond=0) + STEP
    for _ in range(8 * 24 * 60):
        if allowed(moment, place, clinic_hours):
            return moment
        moment += STEP
    raise ValueError("no allowed time within a week")


def daily_cap(place: Place, clinic_cap: int) -> int:
    """Marketing messages one recipient may get per 24 hours."""
    return min(clinic_cap, STATE_CAP) if CAPPED_REGIONS & set(place.regions) else clinic_cap
