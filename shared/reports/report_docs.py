"""reports/{clinic_id}_{period}_{start_date}: one document per clinic and period, its typed value (`Report`,
whose `metrics` are a `ReportMetrics`), and the only module that writes the collection. A re-run overwrites
the whole document with what it computed (the same numbers for the same data), so there is no state
machine: the email's once-only step is the ledger's.

The stored shape is the contract the console and `ops report` read (docs/reports.md, "Metrics" and
"Contracts"): each field's name is its key, and `to_doc` / `from_doc` below are the one place that shape is
written and read. Reading validates the whole document once; a field that breaks it is an InvalidDocument
naming its path (`metrics.providers[2].name`). A key a document lacks takes the field's default, so a
report stored before that field existed still reads (currency and locale: USD, "en").
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, is_dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from shared.platform.errors import InvalidDocument
from shared.platform.store import Doc, Store
from shared.reports.journeys import JourneyFigures
from shared.reports.money import DEFAULT_CURRENCY
from shared.reports.periods import Period, ReportPeriod

COLLECTION = "reports"


def report_id(clinic_id: str, kind: str, start_date: str) -> str:
    """The report's document id: clinic, period kind and the period's first local day (YYYY-MM-DD)."""
    return f"{clinic_id}_{kind}_{start_date}"


def path(doc_id: str) -> str:
    return f"{COLLECTION}/{doc_id}"


# ------------------------------------------------------------------------------------------ the figures


@dataclass(frozen=True)
class AppointmentCounts:
    """Readable appointments of the period by their status now, and their total."""

    total: int
    booked: int
    confirmed: int
    completed: int
    cancelled: int
    no_show: int


@dataclass(frozen=True)
class ProviderFigures:
    """One provider's row: appointments not cancelled, their booked hours, completed revenue."""

    provider_id: str | None  # None: grouped by name, unassigned, or a row folding several providers
    name: str
    appointments: int
    booked_hours: float
    revenue_cents: int


@dataclass(frozen=True)
class DayFigures:
    date: str  # the local day, YYYY-MM-DD
    appointments: int  # not cancelled


@dataclass(frozen=True)
class WaitlistFigures:
    offers_sent: int
    slots_filled: int
    median_minutes_to_fill: float | None


@dataclass(frozen=True)
class Deliveries:
    sent: int
    delivered: int
    failed: int


@dataclass(frozen=True)
class ChannelDeliveries:
    sms: Deliveries
    email: Deliveries


@dataclass(frozen=True)
class MessageFigures:
    reminders: ChannelDeliveries
    confirmations: ChannelDeliveries

    def rows(self) -> Iterator[tuple[str, str, Deliveries]]:
        """(section, channel, deliveries) in the order the email and the CSV list them."""
        for section, by_channel in (("reminders", self.reminders), ("confirmations", self.confirmations)):
            yield section, "sms", by_channel.sms
            yield section, "email", by_channel.email


@dataclass(frozen=True)
class InvalidRecord:
    """A document left out of every figure, by collection, id and field (never a value)."""

    collection: str
    doc_id: str
    field: str


@dataclass(frozen=True)
class Change:
    """A headline figure against the week before (rates in fractions; percent of the week before)."""

    current: float | None
    previous: float | None
    change: float | None
    percent: float | None


@dataclass(frozen=True)
class ReportMetrics:
    """Every figure of one report (definitions: docs/reports.md, "Metrics")."""

    appointments: AppointmentCounts
    revenue_cents: int
    cancellation_rate: float | None
    no_show_rate: float | None
    new_bookings: int
    providers: tuple[ProviderFigures, ...]
    days: tuple[DayFigures, ...]
    waitlist: WaitlistFigures
    messages: MessageFigures
    confirmation_rate: float | None
    reminder_delivery_rate: float | None
    open_failed_tasks: int
    invalid_documents: int = 0
    invalid_listed: tuple[InvalidRecord, ...] = ()
    # Weekly only: each headline figure (metrics.CHANGE_KEYS, in that order) against the week before.
    change: Mapping[str, Change] | None = None

    @property
    def empty(self) -> bool:
        return self.appointments.total == 0

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = _plain(self)
        doc["empty"] = self.empty  # stored for the readers of the doc; derived again on reading
        if self.change is None:
            del doc["change"]
        return doc


@dataclass(frozen=True)
class FigureLabel:
    """How a journey figure reads in the email and on the console: its key, label, and whether a percentage."""

    key: str
    label: str
    percent: bool = False


@dataclass(frozen=True)
class JourneySection:
    """One flow's section of the report (shared/reports/journeys.py): its key, title and figures in order."""

    key: str
    title: str
    figures: tuple[FigureLabel, ...]


JourneyValues = Mapping[str, Mapping[str, float | None]]  # section key → figure key → value


@dataclass(frozen=True)
class Report:
    """A stored report: the clinic, its period in local days and UTC instants, and the figures."""

    clinic_id: str
    period: Period
    start_date: date  # the period's first local day
    end_date: date  # its last, inclusive
    timezone: str
    start: datetime
    end: datetime
    hours: float
    metrics: ReportMetrics
    generated_at: datetime  # the tick's time; a partial report's figures are as of then
    emailed_to: tuple[str, ...] = ()  # masked manager addresses the email task was queued for
    currency: str | None = DEFAULT_CURRENCY  # how the email writes the amounts (the clinic's, as it was)
    locale: str = "en"
    partial: bool = False  # built before the period ended (asked for explicitly)
    # The patient-journey flows' figures (docs/reports.md, "Journeys"): `journeys` is the contract's
    # {section: {figure: value}}, `journey_sections` how each reads (titles, labels, order). None: a report
    # stored before the section existed.
    journeys: JourneyValues | None = None
    journey_sections: tuple[JourneySection, ...] = ()

    @property
    def id(self) -> str:
        return report_id(self.clinic_id, self.period.value, self.start_date.isoformat())

    def to_doc(self) -> dict[str, Any]:
        return {**_plain(self), "metrics": self.metrics.to_doc()}

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> Report:
        try:
            return _decode(cls, data, "")
        except _Broken as broken:
            raise InvalidDocument(COLLECTION, doc_id, broken.where or "(document)", broken.problem) from None


class Reports:
    def __init__(self, store: Store) -> None:
        self.store = store

    def save(
        self,
        clinic_id: str,
        period: ReportPeriod,
        metrics: ReportMetrics,
        *,
        generated_at: datetime,
        emailed_to: Sequence[str],
        currency: str | None,
        locale: str,
        partial: bool = False,
        journeys: Sequence[JourneyFigures] = (),
    ) -> str:
        """Write (or overwrite) the report; returns its document id."""
        report = Report(
            clinic_id=clinic_id,
            period=period.kind,
            start_date=period.start_date,
            end_date=period.end_date,
            timezone=period.zone.key,
            start=period.start,
            end=period.end,
            hours=period.hours,
            metrics=metrics,
            generated_at=generated_at,
            emailed_to=tuple(emailed_to),
            currency=currency,
            locale=locale,
            partial=partial,
            journeys={section.key: section.as_doc() for section in journeys},
            journey_sections=tuple(
                JourneySection(
                    section.key, section.title, tuple(FigureLabel(f.key, f.label, f.percent) for f in section.figures)
                )
                for section in journeys
            ),
        )
        self.store.put(path(report.id), report.to_doc())
        return report.id

    def read(self, doc_id: str) -> Doc | None:
        """The stored document as it is (ops prints it)."""
        return self.store.get(path(doc_id))

    def load(self, doc_id: str) -> Report | None:
        """The stored report as a typed value; None when there is none, InvalidDocument when it breaks its shape."""
        doc = self.read(doc_id)
        return None if doc is None else Report.from_doc(doc.id, doc.data)


# ------------------------------------------------------------------------- the stored form, both ways


T = TypeVar("T")


class _Broken(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)
        self.where, self.problem = where, problem


def _plain(value: Any) -> Any:
    """A typed value as the plain map Firestore stores: dataclass → map by field name, tuple → list,
    enum → its value, local day → YYYY-MM-DD; instants and numbers as they are."""
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


_HINTS: dict[type, dict[str, Any]] = {}  # each class's annotations, resolved once


def _decode(cls: type[T], data: Any, where: str) -> T:
    """A dataclass from its stored map: each field read by its annotation; a missing key takes the default."""
    if not isinstance(data, dict):
        raise _Broken(where, "must be a map")
    hints = _HINTS.get(cls) or _HINTS.setdefault(cls, get_type_hints(cls))
    values = {}
    for item in fields(cls):  # type: ignore[arg-type]
        at = f"{where}.{item.name}" if where else item.name
        if item.name in data:
            values[item.name] = _read(hints[item.name], data[item.name], at)
        elif item.default is MISSING:
            raise _Broken(at, "is required")
    return cls(**values)


def _read(hint: Any, value: Any, where: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [arg for arg in args if arg is not type(None)]
        return _read(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _Broken(where, "must be a list")
        return tuple(_read(args[0], item, f"{where}[{index}]") for index, item in enumerate(value))
    if origin is Mapping:
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise _Broken(where, "must be a map")
        return {key: _read(args[1], item, f"{where}.{key}") for key, item in value.items()}
    if is_dataclass(hint):
        return _decode(hint, value, where)  # type: ignore[arg-type]
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise _Broken(where, f"must be one of {', '.join(str(m.value) for m in hint)}") from None
    if hint is date:
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            raise _Broken(where, "must be a day, YYYY-MM-DD") from None
    # Kept as read: an int stored in a float field stays an int, so it is written as it was.
    checks: dict[Any, tuple[Any, str]] = {
        bool: (bool, "must be true or false"),
        int: (int, "must be an integer"),
        float: (int | float, "must be a number"),
        str: (str, "must be a string"),
        datetime: (datetime, "must be a timestamp"),
    }
    kind, problem = checks[hint]
    if not isinstance(value, kind) or (hint is not bool and isinstance(value, bool)):
        raise _Broken(where, problem)
    return value
