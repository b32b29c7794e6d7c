"""Report periods: a clinic's local day and Monday–Sunday week as UTC ranges, DST included."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.reports.periods import Period, last_full_period, period_of

UTC = timezone.utc
NY, LHI, KOL = ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")


@pytest.mark.parametrize(
    ("day", "zone", "hours"),
    [
        (date(2026, 3, 8), NY, 23),  # spring forward
        (date(2026, 11, 1), NY, 25),  # fall back
        (date(2026, 3, 9), NY, 24),
        (date(2026, 4, 5), LHI, 24.5),  # Lord Howe turns back half an hour
        (date(2026, 3, 8), KOL, 24),
    ],
)
def test_a_local_day_is_as_long_as_the_clinic_lives_it(day, zone, hours):
    period = period_of(Period.DAILY, day, zone)
    assert period.hours == hours
    assert (period.start_date, period.end_date, period.days) == (day, day, [day])
    assert period.start.astimezone(zone).replace(tzinfo=None) == datetime(day.year, day.month, day.day)


@pytest.mark.parametrize(
    ("day", "monday", "hours"),
    [
        (date(2026, 3, 4), date(2026, 3, 2), 167),  # the week ending on the spring-forward Sunday
        (date(2026, 11, 1), date(2026, 10, 26), 169),  # the Sunday itself names its week
        (date(2026, 3, 9), date(2026, 3, 9), 168),
    ],
)
def test_a_week_runs_monday_to_sunday_local_time(day, monday, hours):
    period = period_of("weekly", day, NY)
    assert period.start_date == monday and period.end_date.weekday() == 6
    assert len(period.days) == 7 and period.days[0] == monday
    assert period.hours == hours
    assert period.start == datetime(monday.year, monday.month, monday.day, tzinfo=NY).astimezone(UTC)


def test_the_last_full_period_is_yesterday_or_last_week_in_the_clinics_calendar():
    now = datetime(2026, 3, 11, 3, 0, tzinfo=UTC)  # Tuesday 23:00 in New York, Wednesday 08:30 in Kolkata
    assert last_full_period("daily", now, NY).start_date == date(2026, 3, 9)
    assert last_full_period("daily", now, KOL).start_date == date(2026, 3, 10)
    assert last_full_period("weekly", now, NY).start_date == date(2026, 3, 2)
    monday_morning = datetime(2026, 3, 9, 5, 0, tzinfo=UTC)  # 01:00 on Monday in New York
    assert last_full_period("weekly", monday_morning, NY).start_date == date(2026, 3, 2)


def test_the_previous_period_is_the_one_just_before():
    week = period_of("weekly", date(2026, 3, 9), NY)
    assert week.previous().start_date == date(2026, 3, 2) and week.previous().end == week.start
    day = period_of("daily", date(2026, 3, 9), NY)
    assert day.previous().start_date == date(2026, 3, 8) and day.previous().hours == 23


def test_an_unknown_period_kind_is_refused():
    with pytest.raises(ValueError):
        period_of("monthly", date(2026, 3, 9), NY)
