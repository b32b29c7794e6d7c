"""Report periods in a clinic's local calendar, as UTC ranges: a day (23, 24 or 25 hours on a DST change)
or a Monday–Sunday week (167, 168 or 169 hours). Pure time math through zoneinfo (shared.contract.clinic_time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from shared.contract.clinic_time import local_date, local_day_range


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True)
class ReportPeriod:
    """One report's period: its first and last local days and the UTC instants [start, end) they cover."""

    kind: Period
    start_date: date
    end_date: date  # the last local day, inclusive
    start: datetime
    end: datetime
    zone: ZoneInfo

    @property
    def days(self) -> list[date]:
        return [self.start_date + timedelta(days=n) for n in range((self.end_date - self.start_date).days + 1)]

    @property
    def hours(self) -> float:
        return (self.end - self.start) / timedelta(hours=1)

    def previous(self) -> ReportPeriod:
        """The period just before this one (the week before, the day before)."""
        return period_of(self.kind, self.start_date - timedelta(days=1), self.zone)

    def day_of(self, instant: datetime) -> date:
        return local_date(instant, self.zone)


def period_of(kind: Period | str, day: date, zone: ZoneInfo) -> ReportPeriod:
    """The daily period of `day`, or the Monday–Sunday week that contains it."""
    kind = Period(kind)
    first = day if kind == Period.DAILY else day - timedelta(days=day.weekday())
    last = first if kind == Period.DAILY else first + timedelta(days=6)
    start, _ = local_day_range(first, zone)
    _, end = local_day_range(last, zone)
    return ReportPeriod(kind=kind, start_date=first, end_date=last, start=start, end=end, zone=zone)


def last_full_period(kind: Period | str, now: datetime, zone: ZoneInfo) -> ReportPeriod:
    """The clinic's local yesterday, or its last full Monday–Sunday week, as seen at `now`."""
    today = local_date(now, zone)
    if Period(kind) == Period.DAILY:
        return period_of(Period.DAILY, today - timedelta(days=1), zone)
    return period_of(Period.WEEKLY, today - timedelta(days=today.weekday() + 7), zone)
