"""Report metrics over a MemoryStore: every figure against numbers worked out by hand for the seeded docs."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.reports.metrics import CHANGE_KEYS, MAX_PROVIDERS, MetricsReader, compare, ratio
from shared.reports.periods import period_of
from shared.reports.report_docs import Change, DayFigures, ProviderFigures, Reports, WaitlistFigures
from tests.fakes import MemoryStore

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
WEEK = period_of("weekly", date(2026, 3, 2), NY)  # Mon 2 – Sun 8 March 2026: 167 hours (spring forward)


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=NY).astimezone(UTC)


def appointment(store: MemoryStore, doc_id: str, start: datetime, status: str, **fields) -> None:
    doc = {
        "clinic_id": "c1",
        "patient_id": "p1",
        "provider_id": "prov-a",
        "provider_name": "Dr. A",
        "service_name": "Botox",
        "start": start,
        "end": start + timedelta(minutes=30),
        "status": status,
        "price_cents": 10000,
        "created_at": ny(1, 9),
    }
    doc.update(fields)
    store.seed(f"appointments/{doc_id}", doc)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    appointment(s, "a1", ny(2, 9), "completed", price_cents=12000, created_at=ny(2, 8), confirmed_at=ny(1, 18))
    appointment(s, "a2", ny(2, 10), "no_show")
    appointment(s, "a3", ny(8, 1, 30), "completed", provider_id="prov-b", provider_name="Bo Lee", price_cents=5000)
    appointment(s, "a4", ny(8, 3, 30), "cancelled", created_at=ny(7, 12))  # 03:30 EDT, after the gap
    appointment(s, "a5", ny(8, 23, 30), "booked", end=ny(8, 23, 30) + timedelta(hours=2))
    appointment(s, "a6", ny(5, 12), "confirmed", provider_id=None, provider_name=None)
    appointment(s, "bad-end", ny(4, 12), "completed", end=ny(4, 11))  # ends before it starts
    appointment(s, "outside", ny(9, 0, 0), "completed")  # Monday after: another week
    appointment(s, "other-clinic", ny(3, 9), "completed", clinic_id="c2")
    # the week before: 2 appointments, one completed
    appointment(s, "prev1", ny(1, 10) - timedelta(days=4), "completed", price_cents=7000)
    appointment(s, "prev2", ny(1, 11) - timedelta(days=4), "cancelled")
    for n, (kind, channel, state) in enumerate(
        [
            ("appointment_reminder", "sms", "sent"),
            ("appointment_reminder", "sms", "delivered"),
            ("appointment_reminder", "sms", "delivered"),
            ("appointment_reminder", "email", "failed"),
            ("appointment_reminder", "email", "skipped"),
            ("booking_confirmation", "email", "delivered"),
            ("followup", "sms", "delivered"),
        ]
    ):
        s.seed(
            f"notifications/k{n}",
            {"clinic_id": "c1", "kind": kind, "channel": channel, "state": state, "send_at": ny(3, 9)},
        )
    s.seed(
        "notifications/late",
        {"clinic_id": "c1", "kind": "appointment_reminder", "channel": "sms", "state": "sent", "send_at": ny(9, 9)},
    )
    s.seed("failed_tasks/f1", {"clinic_id": "c1", "status": "open"})
    s.seed("failed_tasks/f2", {"clinic_id": "c1", "status": "resolved"})
    s.seed("failed_tasks/f3", {"clinic_id": "c2", "status": "open"})
    offers = [
        ("o1", ny(3, 9), ny(3, 9, 20), "filled"),
        ("o2", ny(4, 9), ny(4, 10), "filled"),
        ("o3", ny(5, 9), ny(5, 9, 10), "filled"),
        ("o4", ny(6, 9), None, "expired"),
    ]
    for doc_id, created, filled, status in offers:
        s.seed(
            f"slot_offers/{doc_id}", {"clinic_id": "c1", "status": status, "created_at": created, "filled_at": filled}
        )
    return s


def test_every_weekly_figure_as_stored(store):
    built = MetricsReader(store).build("c1", WEEK)
    m = built.to_doc()  # the shape reports/{id}.metrics keeps for the console and ops
    # a1..a6 are in the week; bad-end (it ends before it starts) is left out of every figure, counted once
    assert m["appointments"] == {"total": 6, "booked": 1, "confirmed": 1, "completed": 2, "cancelled": 1, "no_show": 1}
    assert m["revenue_cents"] == 12000 + 5000
    assert m["cancellation_rate"] == round(1 / 6, 4)
    assert m["no_show_rate"] == round(1 / 5, 4)
    assert m["new_bookings"] == 2  # a1 (2 March) and a4 (7 March); the rest were booked on 1 March
    assert m["providers"] == [
        {"provider_id": "prov-b", "name": "Bo Lee", "appointments": 1, "booked_hours": 0.5, "revenue_cents": 5000},
        {"provider_id": "prov-a", "name": "Dr. A", "appointments": 3, "booked_hours": 3.0, "revenue_cents": 12000},
        {"provider_id": None, "name": "Unassigned", "appointments": 1, "booked_hours": 0.5, "revenue_cents": 0},
    ]
    assert [d["appointments"] for d in m["days"]] == [2, 0, 0, 1, 0, 0, 2]  # cancelled and invalid left out
    assert m["days"][6]["date"] == "2026-03-08"
    assert m["messages"]["reminders"] == {
        "sms": {"sent": 3, "delivered": 2, "failed": 0},
        "email": {"sent": 0, "delivered": 0, "failed": 1},
    }
    assert m["messages"]["confirmations"]["email"] == {"sent": 1, "delivered": 1, "failed": 0}
    assert m["reminder_delivery_rate"] == round(2 / 3, 4)
    assert m["confirmation_rate"] == round(2 / 5, 4)  # a6 confirmed, a1 confirmed by text then completed
    assert m["waitlist"] == {"offers_sent": 4, "slots_filled": 3, "median_minutes_to_fill": 20.0}
    assert m["open_failed_tasks"] == 1
    assert m["invalid_documents"] == 1
    assert m["invalid_listed"] == [{"collection": "appointments", "doc_id": "bad-end", "field": "end"}]
    assert m["empty"] is False
    assert m["change"]["appointments"] == {"current": 6, "previous": 2, "change": 4, "percent": 200.0}
    assert m["change"]["revenue_cents"]["previous"] == 7000
    assert m["change"]["cancellation_rate"] == {
        "current": round(1 / 6, 4),
        "previous": 0.5,
        "change": round(round(1 / 6, 4) - 0.5, 4),
        "percent": round(100 * round(round(1 / 6, 4) - 0.5, 4) / 0.5, 1),
    }
    assert m["change"]["no_show_rate"]["previous"] == 0.0
    assert list(m["change"]) == list(CHANGE_KEYS)


def test_the_figures_are_a_typed_value_that_reads_back_from_its_stored_form(store):
    m = MetricsReader(store).build("c1", WEEK)
    assert m.appointments.total == 6 and m.appointments.no_show == 1 and not m.empty
    assert m.providers[0] == ProviderFigures("prov-b", "Bo Lee", appointments=1, booked_hours=0.5, revenue_cents=5000)
    assert [(section, channel, c.sent) for section, channel, c in m.messages.rows()] == [
        ("reminders", "sms", 3),
        ("reminders", "email", 0),
        ("confirmations", "sms", 0),
        ("confirmations", "email", 1),
    ]
    assert m.change is not None and m.change["appointments"] == Change(current=6, previous=2, change=4, percent=200.0)
    assert m.invalid_listed[0].doc_id == "bad-end"
    reports = Reports(store)
    doc_id = reports.save("c1", WEEK, m, generated_at=ny(9, 6), emailed_to=["m***@glow"], currency=None, locale="es")
    loaded = reports.load(doc_id)
    assert loaded is not None and loaded.metrics == m and loaded.id == doc_id == "c1_weekly_2026-03-02"
    assert (loaded.currency, loaded.locale, loaded.emailed_to, loaded.partial) == (None, "es", ("m***@glow",), False)


def test_a_daily_period_has_no_comparison_and_one_day():
    s = MemoryStore()
    appointment(s, "a", ny(8, 12), "completed")
    m = MetricsReader(s).build("c1", period_of("daily", date(2026, 3, 8), NY))
    assert m.change is None and "change" not in m.to_doc()
    assert m.days == (DayFigures(date="2026-03-08", appointments=1),)
    assert m.waitlist == WaitlistFigures(offers_sent=0, slots_filled=0, median_minutes_to_fill=None)


def test_an_empty_period_says_so_and_divides_by_nothing():
    m = MetricsReader(MemoryStore()).build("c1", WEEK).to_doc()
    assert m["empty"] is True and m["appointments"]["total"] == 0
    rates = ("cancellation_rate", "no_show_rate", "confirmation_rate", "reminder_delivery_rate")
    assert [m[name] for name in rates] == [None] * 4
    assert m["providers"] == [] and len(m["days"]) == 7
    assert m["change"]["appointments"]["percent"] is None


def test_documents_breaking_the_contract_are_counted_never_raised():
    s = MemoryStore()
    appointment(s, "status", ny(3, 9), "lost")
    appointment(s, "price", ny(3, 10), "completed", price_cents="12")
    appointment(s, "neg", ny(3, 11), "completed", price_cents=-5)
    appointment(s, "no-end", ny(3, 12), "booked", end=None)
    appointment(s, "none-price", ny(3, 13), "completed", price_cents=None, provider_id=None, provider_name="Ann")
    s.seed("slot_offers/x", {"clinic_id": "c1", "status": "filled", "filled_at": ny(3, 9)})  # no created_at
    m = MetricsReader(s).build("c1", WEEK).to_doc()
    assert m["invalid_documents"] == 5
    assert m["providers"] == [
        {"provider_id": None, "name": "Ann", "appointments": 1, "booked_hours": 0.5, "revenue_cents": 0}
    ]
    # the offer's instants cannot be read: left out of the slots filled and the median like an appointment
    assert m["waitlist"]["slots_filled"] == 0 and m["waitlist"]["median_minutes_to_fill"] is None


def test_providers_beyond_the_cap_fold_into_one_row():
    s = MemoryStore()
    for n in range(MAX_PROVIDERS + 3):
        appointment(s, f"a{n:04d}", ny(3, 9), "completed", provider_id=f"p{n:04d}", provider_name=f"P {n:04d}")
    providers = MetricsReader(s).build("c1", WEEK).providers
    assert len(providers) == MAX_PROVIDERS + 1
    assert providers[-1].name == "Other providers" and providers[-1].appointments == 3
    assert sum(p.appointments for p in providers) == MAX_PROVIDERS + 3


def test_ratio_and_compare_edges():
    assert ratio(1, 0) is None and ratio(1, 3) == 0.3333
    current: dict[str, float | None] = dict.fromkeys(CHANGE_KEYS, 1)
    previous = {**current, "no_show_rate": None, "appointments": 0}
    out = compare(current, previous)
    assert out["no_show_rate"].change is None and out["appointments"].percent is None
    assert out["completed"] == Change(current=1, previous=1, change=0, percent=0.0)


def test_an_unreadable_appointment_is_left_out_of_every_figure_so_the_totals_are_the_sums_of_the_details():
    s = MemoryStore()
    for n in range(14):
        appointment(s, f"ok{n}", ny(3 + n % 5, 9 + n % 3), "completed" if n % 2 else "booked")
    appointment(s, "gone", ny(3, 15), "cancelled")
    appointment(s, "end-first", ny(4, 12), "completed", end=ny(4, 11))
    appointment(s, "text-price", ny(4, 13), "completed", price_cents="120.00")
    appointment(s, "lost", ny(5, 13), "lost")
    m = MetricsReader(s).build("c1", WEEK).to_doc()
    counts = m["appointments"]
    assert counts["total"] == 15 and m["invalid_documents"] == 3
    not_cancelled = counts["total"] - counts["cancelled"]
    assert sum(day["appointments"] for day in m["days"]) == not_cancelled
    assert sum(p["appointments"] for p in m["providers"]) == not_cancelled
    assert sum(p["revenue_cents"] for p in m["providers"]) == m["revenue_cents"] == 7 * 10000
    assert m["cancellation_rate"] == round(1 / 15, 4)
    assert {(item["doc_id"], item["field"]) for item in m["invalid_listed"]} == {
        ("end-first", "end"),
        ("text-price", "price_cents"),
        ("lost", "status"),
    }
