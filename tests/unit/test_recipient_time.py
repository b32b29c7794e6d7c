"""Recipient-time windows (shared/consent/recipient_time.py): the place from the number, the window there,
across DST, and next_allowed checked against an independent minute-by-minute computation."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.consent import recipient_time
from shared.consent.recipient_time import Place, allowed, daily_cap, next_allowed, next_allowed_before, place_of
from shared.platform.errors import PermanentError

DATA = Path(recipient_time.__file__).resolve().parent
RAW = tomllib.loads((DATA / "quiet_hours.toml").read_text("utf-8"))
NY, PHOENIX, CHICAGO = ZoneInfo("America/New_York"), ZoneInfo("America/Phoenix"), ZoneInfo("America/Chicago")
UTC = timezone.utc

FLORIDA = Place(zones=("America/New_York",), regions=("FL",), known=True)
NEW_YORK = Place(zones=("America/New_York",), regions=("NY",), known=True)
ARIZONA = Place(zones=("America/Phoenix",), regions=("AZ",), known=True)
TEXAS = Place(zones=("America/Chicago",), regions=("TX",), known=True)
RHODE_ISLAND = Place(zones=("America/New_York",), regions=("RI",), known=True)
UNKNOWN = Place(zones=("America/Los_Angeles",), regions=(), known=False)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


# ------------------------------------------------------------------------------------------ place


def test_a_florida_number_is_in_florida_on_eastern_time() -> None:
    assert place_of("+13055550123", "America/Los_Angeles") == FLORIDA


def test_an_arizona_number_is_on_phoenix_time() -> None:
    assert place_of("+16025550123", "America/New_York") == ARIZONA


def test_an_area_code_spanning_two_zones_names_both() -> None:
    place = place_of("+12085550123", "America/New_York")
    assert place.zones == ("America/Boise", "America/Los_Angeles") and place.regions == ("ID",)


def test_an_area_code_of_two_states_names_both() -> None:
    assert place_of("+12015550123", "America/Chicago").regions == ("NJ", "NY")


def test_a_territory_without_place_names_is_named_by_its_calling_plan() -> None:
    assert place_of("+17875550123", "America/New_York").regions == ("PR",)


@pytest.mark.parametrize("phone", ["garbage", "+1555", "", "+999123456789"])
def test_an_unplaceable_number_falls_back_to_the_clinic_zone_unknown(phone: str) -> None:
    assert place_of(phone, "America/Denver") == Place(zones=("America/Denver",), regions=(), known=False)


# States as the geocoding data spells them (the area-code level names are not uniform: "Washington State",
# "San Antonio, TX", "British Colombia"): the table must say what the data says, no more and no less.
NAMES = {
    **{
        name: code
        for code, name in (
            ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"), ("CA", "California"),
            ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"), ("FL", "Florida"), ("GA", "Georgia"),
            ("HI", "Hawaii"), ("ID", "Idaho"), ("IL", "Illinois"), ("IN", "Indiana"), ("IA", "Iowa"),
            ("KS", "Kansas"), ("KY", "Kentucky"), ("LA", "Louisiana"), ("ME", "Maine"), ("MD", "Maryland"),
            ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"), ("MS", "Mississippi"),
            ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"), ("NV", "Nevada"), ("NH", "New Hampshire"),
            ("NJ", "New Jersey"), ("NM", "New Mexico"), ("NY", "New York"), ("NC", "North Carolina"),
            ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"), ("OR", "Oregon"), ("PA", "Pennsylvania"),
            ("RI", "Rhode Island"), ("SC", "South Carolina"), ("SD", "South Dakota"), ("TN", "Tennessee"),
            ("TX", "Texas"), ("UT", "Utah"), ("VT", "Vermont"), ("VA", "Virginia"), ("WA", "Washington State"),
            ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"), ("DC", "Washington D.C."),
            ("AB", "Alberta"), ("BC", "British Columbia"), ("BC", "British Colombia"), ("MB", "Manitoba"),
            ("NB", "New Brunswick"), ("NL", "Newfoundland and Labrador"), ("NS", "Nova Scotia"),
            ("ON", "Ontario"), ("QC", "Quebec"), ("SK", "Saskatchewan"), ("YT", "Yukon"),
            ("PE", "Prince Edward Island"), ("NT", "Northwest Territories"), ("NU", "Nunavut"),
            ("VI", "US Virgin Islands"),
        )
    },
}  # fmt: skip
SEVERAL = {"Nova Scotia/Prince Edward Island": ("NS", "PE"), "Northwest Territories/Nunavut/Yukon": ("NT", "NU", "YT")}


def places_named(description: str) -> tuple[str, ...]:
    if description in SEVERAL:
        return SEVERAL[description]
    if description in NAMES:
        return (NAMES[description],)
    suffix = re.search(r", ([A-Z]{2})$", description)
    return (suffix.group(1),) if suffix and suffix.group(1) in NAMES.values() else ()


def test_the_area_code_table_says_what_the_geocoding_data_says() -> None:
    from phonenumbers.geodata import GEOCODE_DATA

    derived: dict[str, set[str]] = defaultdict(set)
    for prefix, names in GEOCODE_DATA.items():
        if prefix.startswith("1") and len(prefix) >= 4 and "en" in names:
            derived[prefix[1:4]].update(places_named(names["en"]))
    table = tomllib.loads((DATA / "area_codes.toml").read_text("utf-8"))["area_codes"]
    assert {code: set(regions) for code, regions in table.items()} == {c: r for c, r in derived.items() if r}


def test_every_region_of_the_table_is_one_the_rules_know() -> None:
    table = tomllib.loads((DATA / "area_codes.toml").read_text("utf-8"))["area_codes"]
    canada = {"AB", "BC", "MB", "NB", "NL", "NS", "ON", "QC", "SK", "YT", "PE", "NT", "NU"}
    assert {r for regions in table.values() for r in regions} <= set(RAW["us"]["regions"]) | canada


# ----------------------------------------------------------------------------------------- window


def test_florida_ends_at_eight_in_the_evening() -> None:
    assert allowed(local(NY, 2026, 12, 8, 19, 59), FLORIDA)
    assert not allowed(local(NY, 2026, 12, 8, 20, 0), FLORIDA)
    assert allowed(local(NY, 2026, 12, 8, 20, 30), NEW_YORK)


def test_the_window_is_the_recipients_not_the_callers() -> None:
    at = datetime(2026, 12, 8, 13, 30, tzinfo=UTC)  # 08:30 in New York, 06:30 in Phoenix
    assert allowed(at, FLORIDA) and not allowed(at, ARIZONA)


def test_texas_sunday_starts_at_noon() -> None:
    assert not allowed(local(CHICAGO, 2026, 12, 6, 11, 59), TEXAS)
    assert allowed(local(CHICAGO, 2026, 12, 6, 12, 0), TEXAS)
    assert next_allowed(local(CHICAGO, 2026, 12, 6, 9, 0), TEXAS) == local(CHICAGO, 2026, 12, 6, 12, 0)


def test_rhode_island_has_no_sunday_and_a_short_saturday() -> None:
    saturday_evening = local(NY, 2026, 12, 5, 17, 0)
    assert not allowed(saturday_evening, RHODE_ISLAND)
    assert next_allowed(saturday_evening, RHODE_ISLAND) == local(NY, 2026, 12, 7, 9, 0)


def test_two_states_get_the_window_both_allow() -> None:
    both = Place(zones=("America/New_York",), regions=("CT", "FL"), known=True)
    assert not allowed(local(NY, 2026, 12, 8, 8, 30), both)  # CT opens at 9
    assert not allowed(local(NY, 2026, 12, 8, 20, 30), both)  # FL closes at 8


def test_two_zones_get_the_window_both_allow() -> None:
    idaho = place_of("+12085550123", "America/New_York")  # Boise is an hour ahead of Los Angeles
    assert not allowed(local(ZoneInfo("America/Boise"), 2026, 12, 8, 8, 30), idaho)
    assert allowed(local(ZoneInfo("America/Boise"), 2026, 12, 8, 9, 0), idaho)
    assert not allowed(local(ZoneInfo("America/Boise"), 2026, 12, 8, 21, 0), idaho)


def test_an_unknown_place_gets_the_strictest_window_in_the_clinic_zone() -> None:
    la = ZoneInfo("America/Los_Angeles")
    assert not allowed(local(la, 2026, 12, 8, 8, 30), UNKNOWN)  # 9:00 at the earliest (CT, TX, RI)
    assert not allowed(local(la, 2026, 12, 8, 18, 0), UNKNOWN)  # RI closes at 6 on weekdays
    assert not allowed(local(la, 2026, 12, 6, 14, 0), UNKNOWN)  # no Sunday (RI, MS)
    assert next_allowed(local(la, 2026, 12, 5, 17, 30), UNKNOWN) == local(la, 2026, 12, 7, 9, 0)


def test_a_number_outside_the_us_gets_the_strictest_window_in_its_own_zone() -> None:
    london = place_of("+442071234567", "America/New_York")
    assert london.known and london.zones == ("Europe/London",)
    assert not allowed(local(ZoneInfo("Europe/London"), 2026, 12, 8, 18, 30), london)


def test_clinic_hours_narrow_the_window() -> None:
    hours = (time(10, 0), time(16, 0))
    assert not allowed(local(NY, 2026, 12, 8, 9, 30), NEW_YORK, hours)
    assert next_allowed(local(NY, 2026, 12, 8, 16, 0), NEW_YORK, hours) == local(NY, 2026, 12, 9, 10, 0)


def test_an_allowed_time_is_its_own_next_allowed() -> None:
    at = local(NY, 2026, 12, 8, 12, 34, 56)
    assert next_allowed(at, FLORIDA) == at


def test_zones_that_share_no_minute_are_refused_rather_than_sent_outside() -> None:
    far = Place(zones=("America/New_York", "Asia/Tokyo"), regions=("NY",), known=True)
    with pytest.raises(PermanentError) as refused:
        next_allowed(local(NY, 2026, 12, 8, 12, 0), far, (time(10, 0), time(12, 0)))
    assert refused.value.code == "no_recipient_window"
    # A campaign asks "before the window ends?": no allowed time at all is None, never a failed batch.
    until = local(NY, 2026, 12, 20, 0, 0)
    assert next_allowed_before(local(NY, 2026, 12, 8, 12, 0), far, (time(10, 0), time(12, 0)), until) is None


def test_next_allowed_before_says_none_past_the_deadline() -> None:
    friday_night = local(NY, 2026, 12, 11, 22, 0)  # the next allowed moment is Saturday 8:00 in New York
    saturday_eight = local(NY, 2026, 12, 12, 8, 0)
    new_york = Place(zones=("America/New_York",), regions=("NY",), known=True)
    assert next_allowed_before(friday_night, new_york, None, saturday_eight + timedelta(minutes=1)) == saturday_eight
    assert next_allowed_before(friday_night, new_york, None, saturday_eight) is None


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        allowed(datetime(2026, 12, 8, 12, 0), FLORIDA)


# -------------------------------------------------------------------------------------------- DST


def test_spring_forward_night_moves_to_eight_eastern_daylight() -> None:
    saturday_late = local(NY, 2026, 3, 7, 21, 30)  # EST; the clocks jump at 2:00 on Sunday 8 March
    assert next_allowed(saturday_late, NEW_YORK) == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT


def test_fall_back_night_moves_to_eight_eastern_standard() -> None:
    saturday_late = local(NY, 2026, 10, 31, 21, 30)  # EDT; the clocks fall back at 2:00 on Sunday 1 November
    assert next_allowed(saturday_late, NEW_YORK) == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_phoenix_keeps_its_hours_when_new_york_changes() -> None:
    assert next_allowed(datetime(2026, 3, 8, 5, 0, tzinfo=UTC), ARIZONA) == datetime(2026, 3, 8, 15, 0, tzinfo=UTC)
    assert next_allowed(datetime(2026, 11, 1, 5, 0, tzinfo=UTC), ARIZONA) == datetime(2026, 11, 1, 15, 0, tzinfo=UTC)


def test_clinic_hours_opening_in_the_night_open_with_the_law_on_spring_forward_day() -> None:
    hours = (time(2, 30), time(23, 0))  # 02:30 does not exist on 8 March 2026 in New York
    assert next_allowed(local(NY, 2026, 3, 8, 0, 30), NEW_YORK, hours) == local(NY, 2026, 3, 8, 8, 0)


# ------------------------------------------------------------------------------------------- caps


def test_florida_oklahoma_and_maryland_cap_at_three_under_a_larger_clinic_cap() -> None:
    for state in ("FL", "OK", "MD"):
        assert daily_cap(Place(zones=("America/New_York",), regions=(state,), known=True), 5) == 3


def test_elsewhere_the_clinic_cap_holds() -> None:
    assert daily_cap(NEW_YORK, 5) == 5
    assert daily_cap(FLORIDA, 1) == 1


def test_an_unknown_place_gets_the_strictest_cap() -> None:
    assert daily_cap(UNKNOWN, 5) == 3


# ------------------------------------------------------------------------ against a brute force


def rule_names(place: Place) -> list[str]:
    """The rules that may apply, read straight from the data (not through recipient_time)."""
    us = set(RAW["us"]["regions"])
    if not place.known or not place.regions or any(region not in us for region in place.regions):
        return list(RAW["rules"])
    return ["federal", *(region for region in place.regions if region in RAW["rules"])]


def day_window(rule: dict[str, Any], weekday: int) -> str:
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[weekday]
    if day in rule:
        return str(rule[day])
    if weekday < 5 and "weekdays" in rule:
        return str(rule["weekdays"])
    return str(rule.get("all", "closed"))


def brute_allowed(at: datetime, place: Place, hours: tuple[time, time] | None) -> bool:
    for zone in place.zones:
        here = at.astimezone(ZoneInfo(zone))
        clock = here.time().replace(tzinfo=None)
        if hours is not None and not hours[0] <= clock < (hours[1] if hours[1] != time(0) else time.max):
            return False
        for name in rule_names(place):
            text = day_window(RAW["rules"][name], here.weekday())
            if text == "closed":
                return False
            start, end = (time.fromisoformat(part) for part in text.split("-"))
            if not start <= clock < end:
                return False
    return True


def brute_next(at: datetime, place: Place, hours: tuple[time, time] | None) -> datetime | None:
    if brute_allowed(at, place, hours):
        return at
    minute = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(8 * 24 * 60):
        if brute_allowed(minute, place, hours):
            return minute
        minute += timedelta(minutes=1)
    return None


PLACES = st.sampled_from(
    [
        FLORIDA,
        NEW_YORK,
        ARIZONA,
        TEXAS,
        RHODE_ISLAND,
        UNKNOWN,
        Place(zones=("America/Chicago",), regions=("MS",), known=True),
        Place(zones=("America/New_York",), regions=("CT", "NJ"), known=True),
        Place(zones=("America/Boise", "America/Los_Angeles"), regions=("ID",), known=True),
        Place(zones=("America/Denver", "America/Phoenix"), regions=("TX", "AZ"), known=True),
        Place(zones=("America/Toronto",), regions=("ON",), known=True),
        Place(zones=("Pacific/Honolulu", "America/Anchorage"), regions=("HI",), known=True),
    ]
)
# Instants around 2026's and 2027's changes of clock in North America, and anywhere in between.
INSTANTS = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(
        [datetime(2026, 3, 7), datetime(2026, 10, 31), datetime(2027, 3, 13), datetime(2027, 11, 6)]
    ).flatmap(lambda day: st.integers(0, 3 * 24 * 60).map(lambda m: (day + timedelta(minutes=m)).replace(tzinfo=UTC))),
)
HOURS = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 23), st.integers(0, 3), st.integers(1, 23), st.integers(0, 3)).map(
        lambda t: (time(t[0], t[1] * 15), time(t[2], t[3] * 15))
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(at=INSTANTS, place=PLACES, hours=HOURS)
def test_next_allowed_is_the_first_minute_a_brute_force_finds(
    at: datetime, place: Place, hours: tuple[time, time] | None
) -> None:
    expected = brute_next(at, place, hours)
    if expected is None:  # no minute in 8 days: the window may be empty (clinic hours outside the law's)
        with pytest.raises(PermanentError):
            next_allowed(at, place, hours)
        return
    found = next_allowed(at, place, hours)
    assert found == expected
    assert allowed(found, place, hours) and brute_allowed(found, place, hours)
