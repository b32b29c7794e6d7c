"""A clinic's report metrics for one period (their definitions: docs/reports.md).

Reads are as small as each metric allows. The per-provider and per-day figures need each of the period's
appointments, so they come from one streamed query selecting only the six fields used, folded as it
streams; the period's counts by status and completed revenue are folded from that same stream rather
than asked again. Everything else is a Firestore aggregation query (count, sum), which reads no
document: new bookings, the ledger's messages by kind, channel and state, waitlist offers, open failed
tasks, and the whole week before for the weekly comparison. The median time to fill streams two
instants per filled offer. Memory grows with the number of providers, days and filled offers (8 bytes
each), not with the number of appointments (bench/report_benchmark.py).

Collections are named through their owners (the ledger, failed_tasks) and read only; nothing here writes.
The result is a `ReportMetrics` (shared.reports.report_docs, which owns its stored form).
"""

from __future__ import annotations

import statistics
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contract.models import APPOINTMENT_STATUSES, APPOINTMENTS, MAX_TEXT_CHARS
from shared.messaging import ledger
from shared.platform import log
from shared.platform.store import Filter, Store
from shared.reports.periods import Period, ReportPeriod
from shared.reports.report_docs import (
    AppointmentCounts,
    Change,
    ChannelDeliveries,
    DayFigures,
    Deliveries,
    InvalidRecord,
    MessageFigures,
    ProviderFigures,
    ReportMetrics,
    WaitlistFigures,
)
from shared.tasks import failed_tasks
from shared.waitlist import offers

# slot_offers is the waitlist's (docs/waitlist.md, "Contracts"); read here by its status and two instants.
SLOT_OFFERS = offers.COLLECTION
OFFER_CREATED, OFFER_FILLED, OFFER_STATUS_FILLED = "created_at", "filled_at", offers.State.FILLED.value
APPOINTMENT_FIELDS = ("status", "start", "end", "price_cents", "provider_id", "provider_name", "confirmed_at")
REMINDERS, CONFIRMATIONS = "appointment_reminder", "booking_confirmation"  # the ledger kinds counted
# Beyond this, further providers are folded into one "Other providers" row: a row is at most ~300 bytes,
# so the stored doc stays far inside Firestore's 1 MiB; the email shows the busiest (render.TOP_PROVIDERS).
MAX_PROVIDERS = 1000
OTHER_PROVIDERS = "Other providers"
UNASSIGNED = "Unassigned"
MAX_LOGGED_INVALID = 20  # invalid documents logged one by one (all are counted)
CHANGE_KEYS = (
    "appointments",
    "completed",
    "cancelled",
    "no_show",
    "revenue_cents",
    "new_bookings",
    "cancellation_rate",
    "no_show_rate",
    "offers_sent",
    "slots_filled",
)


def ratio(part: int, whole: int) -> float | None:
    """part ÷ whole to four decimals; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None


@dataclass
class _Provider:
    name: str
    appointments: int = 0
    seconds: int = 0
    revenue_cents: int = 0


@dataclass
class _Unreadable:
    """Documents of the period that break the contract: all counted, the first few logged and listed by
    collection, id and field (ids only, never a value) so an operator finds them from the report."""

    count: int = 0
    listed: list[InvalidRecord] = field(default_factory=list)

    def add(self, collection: str, doc_id: str, field_name: str) -> None:
        self.count += 1
        if self.count <= MAX_LOGGED_INVALID:
            self.listed.append(InvalidRecord(collection, doc_id, field_name))
            _log_invalid(collection, doc_id, field_name)


@dataclass(frozen=True)
class Headline:
    """The figures the weekly comparison names (CHANGE_KEYS); for the week before, by aggregation queries."""

    appointments: AppointmentCounts
    revenue_cents: int
    cancellation_rate: float | None
    no_show_rate: float | None
    new_bookings: int
    offers_sent: int
    slots_filled: int

    @classmethod
    def of(
        cls, by_status: Mapping[str, int], revenue_cents: int, *, new_bookings: int, offers_sent: int, slots_filled: int
    ) -> Headline:
        """From the counts by status and the completed revenue: the total and the two rates worked out."""
        total = sum(by_status.values())
        return cls(
            appointments=AppointmentCounts(
                total=total,
                booked=by_status["booked"],
                confirmed=by_status["confirmed"],
                completed=by_status["completed"],
                cancelled=by_status["cancelled"],
                no_show=by_status["no_show"],
            ),
            revenue_cents=revenue_cents,
            cancellation_rate=ratio(by_status["cancelled"], total),
            no_show_rate=ratio(by_status["no_show"], total - by_status["cancelled"]),
            new_bookings=new_bookings,
            offers_sent=offers_sent,
            slots_filled=slots_filled,
        )

    def figures(self) -> dict[str, float | None]:
        """Each figure by its CHANGE_KEYS name."""
        counts = self.appointments
        return {
            "appointments": counts.total,
            "completed": counts.completed,
            "cancelled": counts.cancelled,
            "no_show": counts.no_show,
            "revenue_cents": self.revenue_cents,
            "new_bookings": self.new_bookings,
            "cancellation_rate": self.cancellation_rate,
            "no_show_rate": self.no_show_rate,
            "offers_sent": self.offers_sent,
            "slots_filled": self.slots_filled,
        }


class _Invalid(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


class MetricsReader:
    """Computes one report's metrics from the store; read-only."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------------------------- the report

    def build(self, clinic_id: str, period: ReportPeriod) -> ReportMetrics:
        """Every metric of the period (stored in reports/{id}.metrics)."""
        by_status, revenue, providers, days, invalid, confirmed = self._appointment_details(clinic_id, period)
        median, filled = self._median_minutes_to_fill(clinic_id, period, invalid)
        head = Headline.of(
            by_status,
            revenue,
            new_bookings=self._new_bookings(clinic_id, period),
            offers_sent=self._offers_sent(clinic_id, period),
            slots_filled=filled,
        )
        messages = self._messages(clinic_id, period)
        reminders = (messages.reminders.sms, messages.reminders.email)
        change = None
        if period.kind == Period.WEEKLY:
            change = compare(head.figures(), self.headline(clinic_id, period.previous()).figures())
        return ReportMetrics(
            appointments=head.appointments,
            revenue_cents=head.revenue_cents,
            cancellation_rate=head.cancellation_rate,
            no_show_rate=head.no_show_rate,
            new_bookings=head.new_bookings,
            providers=providers,
            days=days,
            waitlist=WaitlistFigures(
                offers_sent=head.offers_sent, slots_filled=head.slots_filled, median_minutes_to_fill=median
            ),
            messages=messages,
            confirmation_rate=ratio(confirmed, sum(day.appointments for day in days)),
            reminder_delivery_rate=ratio(sum(c.delivered for c in reminders), sum(c.sent for c in reminders)),
            open_failed_tasks=self._open_failed_tasks(clinic_id),
            invalid_documents=invalid.count,
            invalid_listed=tuple(invalid.listed),
            change=change,
        )

    # ----------------------------------------------------------------------------- aggregation queries

    def headline(self, clinic_id: str, period: ReportPeriod) -> Headline:
        """The headline figures by aggregation queries only, no document read (the week before's)."""
        in_period = [("clinic_id", "==", clinic_id), ("start", ">=", period.start), ("start", "<", period.end)]
        by_status = {
            status: self.store.count(APPOINTMENTS, where=[*in_period, ("status", "==", status)])
            for status in APPOINTMENT_STATUSES
        }
        revenue = self.store.sum(APPOINTMENTS, "price_cents", where=[*in_period, ("status", "==", "completed")])
        return Headline.of(
            by_status,
            int(revenue),
            new_bookings=self._new_bookings(clinic_id, period),
            offers_sent=self._offers_sent(clinic_id, period),
            slots_filled=self.store.count(SLOT_OFFERS, where=_filled(clinic_id, period)),
        )

    def _new_bookings(self, clinic_id: str, period: ReportPeriod) -> int:
        return self.store.count(APPOINTMENTS, where=[("clinic_id", "==", clinic_id), *_between("created_at", period)])

    def _offers_sent(self, clinic_id: str, period: ReportPeriod) -> int:
        return self.store.count(SLOT_OFFERS, where=[("clinic_id", "==", clinic_id), *_between(OFFER_CREATED, period)])

    def _messages(self, clinic_id: str, period: ReportPeriod) -> MessageFigures:
        """Reminders and booking confirmations planned to send in the period, by channel and ledger state."""

        def deliveries(kind: str, channel: str) -> Deliveries:
            where: list[Filter] = [
                ("clinic_id", "==", clinic_id),
                ("kind", "==", kind),
                ("channel", "==", channel),
                *_between("send_at", period),
            ]
            counts = {
                state: self.store.count(ledger.COLLECTION, where=[*where, ("state", "==", state.value)])
                for state in (ledger.State.SENT, ledger.State.DELIVERED, ledger.State.FAILED)
            }
            delivered = counts[ledger.State.DELIVERED]
            return Deliveries(
                sent=counts[ledger.State.SENT] + delivered, delivered=delivered, failed=counts[ledger.State.FAILED]
            )

        def by_channel(kind: str) -> ChannelDeliveries:
            return ChannelDeliveries(sms=deliveries(kind, "sms"), email=deliveries(kind, "email"))

        return MessageFigures(reminders=by_channel(REMINDERS), confirmations=by_channel(CONFIRMATIONS))

    def _open_failed_tasks(self, clinic_id: str) -> int:
        """Open failed_tasks of the clinic as the report is built (a snapshot, not a count for the period)."""
        return self.store.count(
            failed_tasks.COLLECTION,
            where=[("status", "==", failed_tasks.Status.OPEN.value), ("clinic_id", "==", clinic_id)],
        )

    # ---------------------------------------------------------------------------------- streamed reads

    def _appointment_details(
        self, clinic_id: str, period: ReportPeriod
    ) -> tuple[dict[str, int], int, tuple[ProviderFigures, ...], tuple[DayFigures, ...], _Unreadable, int]:
        """Counts by status, completed revenue, per provider and per local day, the unreadable documents and
        the confirmed ones (of those kept in the details: not cancelled), from one streamed query.

        One rule for a document that breaks the contract (bad status, start, end or price): it is left out of
        every figure and counted once in `invalid`, so the totals are the sums of the details."""
        by_status = dict.fromkeys(APPOINTMENT_STATUSES, 0)
        revenue = 0
        providers: dict[str, _Provider] = {}
        per_day: Counter[str] = Counter()
        invalid = _Unreadable()
        confirmed = 0
        query = self.store.query(
            APPOINTMENTS,
            where=[("clinic_id", "==", clinic_id), ("start", ">=", period.start), ("start", "<", period.end)],
            fields=APPOINTMENT_FIELDS,
        )
        for doc in query:
            try:
                status, start, end, price = _appointment_row(doc.data)
            except _Invalid as problem:
                invalid.add(APPOINTMENTS, doc.id, problem.field)
                continue
            by_status[status] += 1
            if status == "completed":
                revenue += price
            if status == "cancelled":
                continue
            per_day[period.day_of(start).isoformat()] += 1
            if status == "confirmed" or isinstance(doc.get("confirmed_at"), datetime):
                confirmed += 1  # confirmed then, by text or at the desk, whatever became of it since
            key, name = _provider_key(doc.data)
            if key not in providers and len(providers) >= MAX_PROVIDERS:
                key, name = "\x00other", OTHER_PROVIDERS
            provider = providers.setdefault(key, _Provider(name))
            provider.appointments += 1
            provider.seconds += int((end - start).total_seconds())
            if status == "completed":
                provider.revenue_cents += price
        rows = [
            ProviderFigures(
                provider_id=None if key.startswith("\x00") else key,
                name=provider.name,
                appointments=provider.appointments,
                booked_hours=round(provider.seconds / 3600, 2),
                revenue_cents=provider.revenue_cents,
            )
            for key, provider in providers.items()
        ]
        rows.sort(key=lambda row: (row.name == OTHER_PROVIDERS, row.name.lower(), row.provider_id or ""))
        days = tuple(DayFigures(date=day.isoformat(), appointments=per_day[day.isoformat()]) for day in period.days)
        return by_status, revenue, tuple(rows), days, invalid, confirmed

    def _median_minutes_to_fill(
        self, clinic_id: str, period: ReportPeriod, invalid: _Unreadable
    ) -> tuple[float | None, int]:
        """(median minutes from created_at to filled_at, offers filled) over the period's readable fills; an
        offer whose instants cannot be read is added to `invalid` and left out of both."""
        seconds = array("d")
        filled = 0
        for doc in self.store.query(
            SLOT_OFFERS, where=_filled(clinic_id, period), fields=(OFFER_CREATED, OFFER_FILLED)
        ):
            created, done = doc.get(OFFER_CREATED), doc.get(OFFER_FILLED)
            if not isinstance(created, datetime) or not isinstance(done, datetime) or done < created:
                invalid.add(SLOT_OFFERS, doc.id, OFFER_FILLED if isinstance(created, datetime) else OFFER_CREATED)
                continue
            filled += 1
            seconds.append((done - created).total_seconds())
        if not seconds:
            return None, filled
        return round(statistics.median(seconds) / 60, 1), filled


def _between(field: str, period: ReportPeriod) -> list[Filter]:
    return [(field, ">=", period.start), (field, "<", period.end)]


def _filled(clinic_id: str, period: ReportPeriod) -> list[Filter]:
    return [("clinic_id", "==", clinic_id), ("status", "==", OFFER_STATUS_FILLED), *_between(OFFER_FILLED, period)]


def _appointment_row(data: dict[str, Any]) -> tuple[str, datetime, datetime, int]:
    status, start, end = data.get("status"), data.get("start"), data.get("end")
    if status not in APPOINTMENT_STATUSES:
        raise _Invalid("status")
    if not isinstance(start, datetime):
        raise _Invalid("start")
    if not isinstance(end, datetime) or end < start:
        raise _Invalid("end")
    price = data.get("price_cents", 0)
    if price is None:
        price = 0
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise _Invalid("price_cents")
    return str(status), start, end, price


def _provider_key(data: dict[str, Any]) -> tuple[str, str]:
    """(grouping key, display name): the provider id when there is one, else the name, else unassigned."""
    provider_id, name = data.get("provider_id"), data.get("provider_name")
    name = name.strip()[:MAX_TEXT_CHARS] if isinstance(name, str) and name.strip() else ""
    if isinstance(provider_id, str) and provider_id.strip():
        key = provider_id.strip()[:MAX_TEXT_CHARS]
        return key, name or key
    if name:
        return f"\x00name:{name}", name
    return "\x00unassigned", UNASSIGNED


def _log_invalid(collection: str, doc_id: str, field: str) -> None:
    log.warning(
        "document breaks the contract; left out of the report",
        collection=collection,
        doc_id=doc_id,
        field=field,
        error_code="invalid_document",
    )


def compare(current: Mapping[str, float | None], previous: Mapping[str, float | None]) -> dict[str, Change]:
    """Each headline figure (CHANGE_KEYS) against the week before: the change, and the change in percent of the
    week before."""
    out: dict[str, Change] = {}
    for key in CHANGE_KEYS:
        now, before = current[key], previous[key]
        if now is None or before is None:
            out[key] = Change(current=now, previous=before, change=None, percent=None)
            continue
        change = round(now - before, 4)
        percent = round(100 * change / before, 1) if before else None
        out[key] = Change(current=now, previous=before, change=change, percent=percent)
    return out
