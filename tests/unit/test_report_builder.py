"""The reports and inventory ticks over fakes: stored docs, queued tasks, rejections, one clinic at a time."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.contract.events import EventRejected, InventoryTick, ReportTick
from shared.contract.models import Clinic
from shared.reports.builder import ReportBuilder
from shared.reports.inventory import InventoryCheck
from shared.reports.periods import period_of
from shared.reports.tasks import InventoryAlertTask, ReportEmailTask
from tests.fakes import MemoryStore, RecordingQueue

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)  # Wednesday: yesterday is Tue 10 March, last week 2–8 March
CLINIC = {"name": "Glow", "timezone": "America/New_York", "phone": "+12125550142", "email_from": "hi@glow.example.com"}


def clinic(store: MemoryStore, clinic_id: str, **fields) -> None:
    store.seed(f"clinics/{clinic_id}", {**CLINIC, **fields})


def product(store: MemoryStore, doc_id: str, on_hand, point, **fields) -> None:
    doc = {"clinic_id": "c1", "name": doc_id.title(), "sku": doc_id.upper(), "unit": "vial", "on_hand": on_hand}
    doc.update({"reorder_point": point, "reorder_qty": 10, "active": True, **fields})
    store.seed(f"products/{doc_id}", doc)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    clinic(
        s,
        "c1",
        manager_emails=["boss@glow.example.com", "Boss@glow.example.com"],
        inventory_emails=["inv@g.example.com"],
    )
    clinic(s, "c2", timezone="Asia/Kolkata")
    s.seed("clinics/broken", {"name": "No zone"})
    start = datetime(2026, 3, 10, 10, tzinfo=NY).astimezone(UTC)
    s.seed(
        "appointments/a1",
        {
            "clinic_id": "c1",
            "start": start,
            "end": start + timedelta(hours=1),
            "status": "completed",
            "price_cents": 100,
        },
    )
    return s


def test_a_daily_tick_stores_each_clinics_yesterday_and_queues_one_email_where_there_are_managers(store):
    queue = RecordingQueue()
    report = ReportBuilder(store, queue, "reports").run_tick(ReportTick(period="daily"), now=NOW)
    docs = store.docs("reports")
    assert set(docs) == {"c1_daily_2026-03-10", "c2_daily_2026-03-10"}
    c1 = docs["c1_daily_2026-03-10"]
    assert (c1["start_date"], c1["end_date"], c1["hours"]) == ("2026-03-10", "2026-03-10", 24)
    assert c1["metrics"]["appointments"]["completed"] == 1 and c1["generated_at"] == NOW
    assert c1["emailed_to"] == ["b***@glow.example.com", "B***@glow.example.com"]
    assert docs["c2_daily_2026-03-10"]["metrics"]["empty"] is True
    task = ReportEmailTask("c1", "daily", date(2026, 3, 10))
    assert [(s.queue, s.business_key, s.payload) for s in queue.created] == [
        ("reports", task.failure_key, task.to_json())
    ]
    summary = report.summary()
    assert (summary["reports"], summary["emails_queued"], summary["no_managers"], summary["clinics"]) == (2, 1, 1, 2)
    assert summary["invalid"] == [{"collection": "clinics", "doc_id": "broken", "field": "timezone"}]


def test_a_rerun_overwrites_the_same_doc_and_queues_nothing_new(store):
    queue = RecordingQueue()
    builder = ReportBuilder(store, queue, "reports")
    builder.run_tick(ReportTick(period="weekly", clinic_id="c1"), now=NOW)
    first = store.docs("reports")
    again = builder.run_tick(ReportTick(period="weekly", clinic_id="c1"), now=NOW)
    assert store.docs("reports") == first and list(first) == ["c1_weekly_2026-03-02"]
    assert len(queue.created) == 1 and again.summary()["emails_already_queued"] == 1


def test_a_tick_for_one_clinic_touches_no_other(store):
    ReportBuilder(store, RecordingQueue(), "reports").run_tick(ReportTick("daily", clinic_id="c2"), now=NOW)
    assert list(store.docs("reports")) == ["c2_daily_2026-03-10"]


def test_a_named_date_picks_its_period_and_a_future_or_unknown_one_is_rejected(store):
    builder = ReportBuilder(store, RecordingQueue(), "reports")
    builder.run_tick(ReportTick("weekly", date=date(2026, 3, 4), clinic_id="c1"), now=NOW)
    assert "c1_weekly_2026-03-02" in store.docs("reports")
    with pytest.raises(EventRejected) as future:
        builder.run_tick(ReportTick("daily", date=date(2026, 3, 20)), now=NOW)
    assert future.value.code == "date_in_future"
    with pytest.raises(EventRejected) as unknown:
        builder.run_tick(ReportTick("daily", clinic_id="nowhere"), now=NOW)
    assert unknown.value.code == "unknown_clinic"
    report = builder.run_tick(ReportTick("daily", date=date(2026, 3, 12), clinic_id="c1"), now=NOW)
    assert report.summary()["problems"] == {"period_not_started": 1}


def test_a_transient_failure_is_counted_and_raised_after_the_other_clinics(store):
    queue = RecordingQueue(fail_with=[ConnectionError("tasks down")])
    report = ReportBuilder(store, queue, "reports").run_tick(ReportTick("daily"), now=NOW)
    assert report.failed == 1 and report.failures == ["c1: ConnectionError"]
    assert len(store.docs("reports")) == 2  # the report is stored; the rerun queues its email
    with pytest.raises(Exception) as raised:
        report.raise_if_failed()
    assert getattr(raised.value, "code", "") == "reports_incomplete"


# ------------------------------------------------------------------------------------------- inventory


def test_products_below_and_at_the_point_are_drafted_once_and_alerted_once(store):
    product(store, "below", 2, 5)
    product(store, "at", 5, 5)
    product(store, "above", 6, 5)
    product(store, "inactive", 0, 5, active=False)
    product(store, "elsewhere", 0, 5, clinic_id="c2")
    product(store, "broken", "many", 5)
    queue = RecordingQueue()
    check = InventoryCheck(store, queue, "reports")
    first = check.run_tick(InventoryTick(clinic_id="c1"), now=NOW)
    again = check.run_tick(InventoryTick(clinic_id="c1"), now=NOW)
    ((order_id, order),) = store.docs("purchase_orders").items()
    assert order_id == "c1_2026-03-11" and order["status"] == "draft" and order["date"] == "2026-03-11"
    assert [(line["product_id"], line["sku"], line["qty"]) for line in order["lines"]] == [
        ("at", "AT", 10),
        ("below", "BELOW", 10),
    ]
    # named as the inventory manager knows it (its name and sku still read), its id for the operator
    broken = {"product_id": "broken", "field": "on_hand", "name": "Broken", "sku": "BROKEN"}
    assert order["invalid_products"] == [broken]
    task = InventoryAlertTask("c1", date(2026, 3, 11))
    assert [spec.business_key for spec in queue.created] == [task.failure_key]
    assert first.summary()["drafts_created"] == 1 and again.summary()["drafts_already_there"] == 1
    assert again.summary()["alerts_already_queued"] == 1
    assert first.summary()["invalid"] == [{"collection": "products", "doc_id": "broken", "field": "on_hand"}]


def test_nothing_to_reorder_means_no_draft_and_no_contacts_means_no_alert(store):
    product(store, "above", 9, 5)
    product(store, "low", 1, 5, clinic_id="c2")
    queue = RecordingQueue()
    report = InventoryCheck(store, queue, "reports").run_tick(InventoryTick(), now=NOW)
    assert list(store.docs("purchase_orders")) == ["c2_2026-03-11"]  # Kolkata's today too
    assert queue.created == []
    assert report.summary()["nothing_to_reorder"] == 1 and report.summary()["no_inventory_contacts"] == 1


def test_an_inventory_date_far_from_today_is_rejected_and_failures_are_raised_after(store):
    check = InventoryCheck(store, RecordingQueue(fail_with=[ConnectionError("x")]), "reports")
    with pytest.raises(EventRejected) as raised:
        check.run_tick(InventoryTick(date=date(2026, 3, 1)), now=NOW)
    assert raised.value.code == "date_out_of_range"
    product(store, "low", 1, 5)
    report = check.run_tick(InventoryTick(date=date(2026, 3, 12), clinic_id="c1"), now=NOW)
    assert report.failed == 1 and list(store.docs("purchase_orders")) == ["c1_2026-03-12"]


def test_the_period_in_the_doc_is_the_clinics_own(store):
    period = period_of("weekly", date(2026, 3, 2), NY)
    ReportBuilder(store, RecordingQueue(), "reports").build(Clinic.from_doc("c1", CLINIC), period, now=NOW)
    doc = store.docs("reports")["c1_weekly_2026-03-02"]
    assert (doc["hours"], doc["timezone"], doc["start"], doc["end"]) == (
        167,
        "America/New_York",
        period.start,
        period.end,
    )


# ----------------------------------------------------------------------------------- unfinished periods


def test_a_dated_tick_for_a_day_that_has_not_ended_is_refused_with_a_code_and_builds_nothing(store):
    queue = RecordingQueue()
    builder = ReportBuilder(store, queue, "reports")
    for tick in (ReportTick("daily", date=date(2026, 3, 11), clinic_id="c1"), ReportTick("weekly", date(2026, 3, 9))):
        with pytest.raises(EventRejected) as refused:
            builder.run_tick(tick, now=NOW)
        assert refused.value.code == "period_not_ended"
    assert store.docs("reports") == {} and queue.created == []


def test_a_clinic_whose_day_has_not_ended_is_refused_while_one_whose_day_has_is_built(store):
    clinic(store, "c3", timezone="Pacific/Kiritimati")  # UTC+14: its 11 March ended at 10:00 UTC
    report = ReportBuilder(store, RecordingQueue(), "reports").run_tick(ReportTick("daily", date(2026, 3, 11)), now=NOW)
    assert list(store.docs("reports")) == ["c3_daily_2026-03-11"]
    assert report.summary()["problems"] == {"period_not_ended": 2, "invalid_clinics": 1}  # c1, c2; "broken"
