"""Clinic-day windows and quiet hours across DST changes and non-hour offsets."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.contract.clinic_time import (
    EVENING_MARGIN,
    in_quiet_hours,
    local_day_range,
    local_tomorrow,
    shift_out_of_quiet_hours,
)
from shared.contract.models import QuietHours

UTC = timezone.utc
QUIET = QuietHours(start=time(21, 0), end=time(8, 0))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "start", "end", "hours"),
    [
        ("America/New_York", date(2026, 3, 8), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 23),
        ("America/New_York", date(2026, 11, 1), utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 25),
        ("America/New_York", date(2026, 11, 26), utc(2026, 11, 26, 5), utc(2026, 11, 27, 5), 24),
        ("Europe/London", date(2026, 3, 29), utc(2026, 3, 29, 0), utc(2026, 3, 29, 23), 23),
        ("Europe/London", date(2026, 10, 25), utc(2026, 10, 24, 23), utc(2026, 10, 26, 0), 25),
        ("Asia/Kolkata", date(2026, 11, 26), utc(2026, 11, 25, 18, 30), utc(2026, 11, 26, 18, 30), 24),
        ("Australia/Lord_Howe", date(2026, 10, 4), utc(2026, 10, 3, 13, 30), utc(2026, 10, 4, 13, 0), 23.5),
        ("Australia/Lord_Howe", date(2026, 4, 5), utc(2026, 4, 4, 13, 0), utc(2026, 4, 5, 13, 30), 24.5),
    ],
)
def test_local_day_range_is_the_clinics_calendar_day(zone, day, start, end, hours):
    got_start, got_end = local_day_range(day, ZoneInfo(zone))
    assert (got_start, got_end) == (start, end)
    assert (got_end - got_start) == timedelta(hours=hours)


def test_local_tomorrow_depends_on_the_clinics_zone():
    now = utc(2026, 11, 25, 20, 0)  # 15:00 in New York, already 01:30 on the 26th in Kolkata
    assert local_tomorrow(now, ZoneInfo("America/New_York")) == date(2026, 11, 26)
    assert local_tomorrow(now, ZoneInfo("Asia/Kolkata")) == date(2026, 11, 27)


@pytest.mark.parametrize(
    ("zone", "send_at", "expected"),
    [
        # 06:30 EDT on the spring-forward day → 08:00 EDT (UTC-4)
        ("America/New_York", utc(2026, 3, 8, 10, 30), utc(2026, 3, 8, 12, 0)),
        # 01:30 EDT, the first of the two 01:30s on the fall-back day → 08:00 EST (UTC-5)
        ("America/New_York", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 13, 0)),
        # 22:00 EST the evening before → next morning 08:00 EST
        ("America/New_York", utc(2026, 11, 2, 3, 0), utc(2026, 11, 2, 13, 0)),
        # 07:00 BST on the day British Summer Time starts → 08:00 BST (UTC+1)
        ("Europe/London", utc(2026, 3, 29, 6, 0), utc(2026, 3, 29, 7, 0)),
        # 22:00 IST → 08:00 IST next day (UTC+5:30)
        ("Asia/Kolkata", utc(2026, 11, 26, 16, 30), utc(2026, 11, 27, 2, 30)),
        # 03:00 LHDT just after the 30-minute jump → 08:00 LHDT (UTC+11)
        ("Australia/Lord_Howe", utc(2026, 10, 3, 16, 0), utc(2026, 10, 3, 21, 0)),
    ],
)
def test_quiet_hours_move_the_send_time_to_the_morning(zone, send_at, expected):
    tz = ZoneInfo(zone)
    assert in_quiet_hours(send_at, tz, QUIET)
    moved = shift_out_of_quiet_hours(send_at, tz, QUIET)
    assert moved == expected
    assert not in_quiet_hours(moved, tz, QUIET)


def test_a_send_time_outside_quiet_hours_is_untouched():
    tz = ZoneInfo("America/New_York")
    noon = utc(2026, 11, 26, 17, 0)
    assert shift_out_of_quiet_hours(noon, tz, QUIET) == noon


def test_moving_past_the_deadline_moves_back_to_the_evening_before():
    tz = ZoneInfo("America/New_York")
    send_at = utc(2026, 11, 26, 11, 0)  # 06:00 EST, 2 h before an 08:00 appointment
    deadline = utc(2026, 11, 26, 12, 30)  # 07:30 EST: no later than 30 min before it
    moved = shift_out_of_quiet_hours(send_at, tz, QUIET, not_after=deadline)
    assert moved == utc(2026, 11, 26, 2, 0) - EVENING_MARGIN  # 21:00 EST on the 25th, less the margin
    assert not in_quiet_hours(moved, tz, QUIET)


def test_quiet_hours_that_do_not_wrap_midnight():
    tz = ZoneInfo("Europe/London")
    lunch = QuietHours(start=time(12, 0), end=time(13, 0))
    assert shift_out_of_quiet_hours(utc(2026, 11, 26, 12, 30), tz, lunch) == utc(2026, 11, 26, 13, 0)
    assert not in_quiet_hours(utc(2026, 11, 26, 13, 0), tz, lunch)
