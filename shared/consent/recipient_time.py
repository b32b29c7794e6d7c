"""When a marketing text may reach its recipient: the recipient's place from the phone number, and the
allowed window there (shared/consent/quiet_hours.toml, sources in docs/compliance.md).

- the zones come from `phonenumbers` (its timezone data, by number prefix); the US state or Canadian
  province from the area code (shared/consent/area_codes.toml, derived from its geocoding data, whose
  own module costs ~100 MB and ~0.25 s to import: docs/compliance.md);
- several candidate zones or places → the intersection of all their windows: never outside any;
- unknown (unparsable, no zone, a NANP area code the table does not name) → the clinic's zone with the
  strictest window, the intersection of every rule in the table; so is a place no rule names (outside
  the US);
- a clinic's own hours narrow the window further, in the recipient's local time.

`phonenumbers` is imported on the first `place_of` only: a reminder never pays for it.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.platform.errors import PermanentError

DATA = Path(__file__).resolve().parent
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON_DAYS = 15  # the longest closed stretch of any rule combined with clinic hours is far shorter
MINUTES_PER_DAY = 24 * 60

Span = tuple[int, int] | None  # minutes of the local day [start, end), or closed
Week = tuple[Span, ...]  # Monday first


@dataclass(frozen=True)
class Place:
    """Where a recipient may be: every candidate zone and US state / Canadian province ("FL", "ON")."""

    zones: tuple[str, ...]
    regions: tuple[str, ...]
    known: bool


@dataclass(frozen=True)
class Rules:
    """quiet_hours.toml as values: each rule's week and cap, the regions the federal rule covers."""

    weeks: Mapping[str, Week]
    caps: Mapping[str, int]
    us_regions: frozenset[str]
    territories: frozenset[str]
    area_codes: Mapping[str, tuple[str, ...]]

    @functools.cached_property
    def strictest(self) -> Week:
        return intersect(self.weeks.values())

    @functools.cached_property
    def strictest_cap(self) -> int | None:
        return min(self.caps.values(), default=None)

    def week_of(self, place: Place) -> Week:
        """The window every rule that may apply to `place` allows."""
        if not place.known or not place.regions:
            return self.strictest
        weeks: list[Week] = []
        for region in place.regions:
            if region not in self.us_regions:
                return self.strictest
            weeks.append(self.weeks["federal"])
            if region in self.weeks:
                weeks.append(self.weeks[region])
        return intersect(weeks)

    def cap_of(self, place: Place) -> int | None:
        if not place.known or not place.regions or any(r not in self.us_regions for r in place.regions):
            return self.strictest_cap
        return min((self.caps[r] for r in place.regions if r in self.caps), default=None)


def parse_span(text: str) -> Span:
    """ "09:00-21:00" → minutes (540, 1260); "closed" → None."""
    if text == "closed":
        return None
    start, _, end = text.partition("-")
    first, last = _minutes(start), _minutes(end)
    if not 0 <= first < last <= MINUTES_PER_DAY:
        raise ValueError(f"bad window {text!r}")
    return first, last


def _minutes(hhmm: str) -> int:
    hours, _, minutes = hhmm.strip().partition(":")
    return int(hours) * 60 + int(minutes)


def week_of_rule(rule: Mapping[str, Any]) -> Week:
    """A rule's window for each day: `all`, then `weekdays`, then the day's own key."""
    week: list[Span] = []
    for index, day in enumerate(DAYS):
        text = rule.get("all", "closed")
        if index < 5:
            text = rule.get("weekdays", text)
        week.append(parse_span(rule.get(day, text)))
    return tuple(week)


def intersect(weeks: Iterable[Week]) -> Week:
    """The window every one of `weeks` allows, day by day."""
    result: list[Span] = [(0, MINUTES_PER_DAY)] * 7
    for week in weeks:
        for day, span in enumerate(week):
            here = result[day]
            if here is None or span is None:
                result[day] = None
                continue
            start, end = max(here[0], span[0]), min(here[1], span[1])
            result[day] = (start, end) if start < end else None
    return tuple(result)


@functools.cache
def rules() -> Rules:
    """The rules as shipped beside this module (read once per instance)."""
    quiet = tomllib.loads((DATA / "quiet_hours.toml").read_text("utf-8"))
    codes = tomllib.loads((DATA / "area_codes.toml").read_text("utf-8"))["area_codes"]
    table = quiet["rules"]
    return Rules(
        weeks={name: week_of_rule(rule) for name, rule in table.items()},
        caps={name: int(rule["cap"]) for name, rule in table.items() if "cap" in rule},
        us_regions=frozenset(quiet["us"]["regions"]),
        territories=frozenset(quiet["us"]["territories"]),
        area_codes={code: tuple(regions) for code, regions in codes.items()},
    )


def place_of(phone: str, fallback_zone: str) -> Place:
    """Where the holder of `phone` (E.164) may be; unknown → the clinic's zone (`fallback_zone`)."""
    import phonenumbers
    from phonenumbers import timezone as number_zones

    unknown = Place(zones=(fallback_zone,), regions=(), known=False)
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return unknown
    if not phonenumbers.is_possible_number(number):
        return unknown
    zones = tuple(sorted(z for z in number_zones.time_zones_for_number(number) if _is_zone(z)))
    if not zones:
        return unknown
    if number.country_code != 1:
        return Place(zones=zones, regions=(), known=True)  # outside the NANP: the strictest window, its zones
    table = rules()
    area_code = phonenumbers.national_significant_number(number)[:3]
    regions = table.area_codes.get(area_code, ())
    if not regions:
        territory = phonenumbers.region_code_for_number(number)
        regions = (territory,) if territory in table.territories else ()
    return Place(zones=zones, regions=regions, known=bool(regions))


@functools.cache
def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError; "Etc/Unknown" is not a zone
        return False
    return True


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _week(place: Place, clinic_hours: tuple[time, time] | None) -> Week:
    week = rules().week_of(place)
    if clinic_hours is None:
        return week
    start, end = clinic_hours
    first, last = start.hour * 60 + start.minute, (end.hour * 60 + end.minute) or MINUTES_PER_DAY
    clinic: Span = (first, last) if first < last else None
    return intersect([week, (clinic,) * 7])


def _inside(at: datetime, zone: ZoneInfo, week: Week) -> bool:
    local = at.astimezone(zone)
    span = week[local.weekday()]
    if span is None:
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return span[0] * 60 <= seconds < span[1] * 60


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a recipient's time needs an aware datetime")
    return at


def allowed(at: datetime, place: Place, clinic_hours: tuple[time, time] | None = None) -> bool:
    """May a marketing message reach this recipient at `at`? (Inside the window in every candidate zone.)"""
    week = _week(place, clinic_hours)
    return all(_inside(_aware(at), _zone(zone), week) for zone in place.zones)


def next_allowed(at: datetime, place: Place, clinic_hours: tuple[time, time] | None = None) -> datetime:
    """The first instant at or after `at` when the message may go (`at` itself when allowed). Raises a
    PermanentError when the candidate zones share no allowed minute within HORIZON_DAYS."""
    week = _week(place, clinic_hours)
    zones = [_zone(zone) for zone in place.zones]
    start = _aware(at).astimezone(timezone.utc)
    for candidate in sorted(c for c in _openings(start, zones, week) if c >= start):
        if all(_inside(candidate, zone, week) for zone in zones):
            return candidate.astimezone(at.tzinfo)
    raise PermanentError("the recipient's candidate zones share no allowed time", code="no_recipient_window")


def next_allowed_before(
    at: datetime, place: Place, clinic_hours: tuple[time, time] | None, until: datetime
) -> datetime | None:
    """`next_allowed` when it comes before `until`; None when it does not, or when the recipient has no
    allowed time at all (a campaign skips that recipient rather than fail the rest of its batch)."""
    try:
        moment = next_allowed(at, place, clinic_hours)
    except PermanentError as exc:
        if exc.code == "no_recipient_window":
            return None
        raise
    return moment if moment < until else None


def _openings(start: datetime, zones: list[ZoneInfo], week: Week) -> Iterator[datetime]:
    """`start` and each day's local opening in every zone. Every window opens at 08:00 or later (the law's
    earliest; clinic hours only narrow it), never in an hour a change of clock skips or repeats, so each
    opening is one instant: the brute-force property test in tests/unit/test_recipient_time.py checks it."""
    yield start
    for zone in zones:
        local_day = start.astimezone(zone).date()
        for offset in range(-1, HORIZON_DAYS + 1):
            day = local_day + timedelta(days=offset)
            span = week[day.weekday()]
            if span is not None:
                opening = datetime(day.year, day.month, day.day, span[0] // 60, span[0] % 60, tzinfo=zone)
                yield opening.astimezone(timezone.utc)


def daily_cap(place: Place, clinic_cap: int) -> int:
    """Marketing messages this recipient may get in 24 hours: the clinic's cap, lowered by a state's."""
    cap = rules().cap_of(place)
    return clinic_cap if cap is None else min(cap, clinic_cap)
