"""What report_builder reads and takes: reports/inventory ticks, products, the sandbox's attachments, and
the email parts rendered for edge cases (an empty period, a day's bars per provider)."""

from __future__ import annotations

import base64
from datetime import date, datetime, timezone

import pytest

from shared.contract.events import (
    EventRejected,
    InventoryTick,
    ReportTick,
    parse_inventory_tick,
    parse_report_tick,
)
from shared.contract.models import Product
from shared.platform.errors import InvalidDocument, PermanentError
from shared.reports import render
from shared.reports.report_docs import Report
from shared.reports.tasks import InventoryAlertTask, ReportEmailTask
from tests.bodies import parse_task


def rejected(raw: bytes, parse=parse_report_tick) -> str:
    with pytest.raises(EventRejected) as raised:
        parse(raw)
    return raised.value.code


def test_a_reports_tick_names_its_period_and_may_name_a_date_and_a_clinic():
    assert parse_report_tick(b'{"period": "daily"}') == ReportTick(period="daily")
    assert parse_report_tick(b'{"period": "weekly", "date": "2026-03-04", "clinic_id": "c-1"}') == ReportTick(
        "weekly", date(2026, 3, 4), "c-1"
    )
    assert parse_report_tick(b'{"period": "daily", "date": "2026-03-04", "partial": true}').partial is True


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "bad_period"),
        (b"{}", "bad_period"),
        (b'{"period": "monthly"}', "bad_period"),
        (b'{"period": ["daily"]}', "bad_period"),
        (b'{"period": "daily", "date": "2026-02-30"}', "bad_date"),
        (b'{"period": "daily", "date": "1999-12-31"}', "bad_date"),
        (b'{"period": "daily", "clinicId": "c1"}', "unknown_field"),
        (b'{"period": "daily", "partial": "yes"}', "bad_partial"),
        (b'{"period": "daily", "clinic_id": "a/b"}', "bad_clinic_id"),
        (b"not json", "malformed_json"),
        (b"[1]", "not_an_object"),
    ],
)
def test_a_malformed_reports_tick_is_rejected_with_a_code(raw, code):
    assert rejected(raw) == code


def test_an_inventory_tick_is_a_date_and_a_clinic_both_optional():
    assert parse_inventory_tick(b"") == InventoryTick()
    assert parse_inventory_tick(b'{"date": "2026-03-11", "clinic_id": "c1"}') == InventoryTick(date(2026, 3, 11), "c1")
    assert rejected(b'{"period": "daily"}', parse_inventory_tick) == "unknown_field"
    assert rejected(b'{"date": "11/03/2026"}', parse_inventory_tick) == "bad_date"


PRODUCT = {
    "clinic_id": "c1",
    "name": "Botox 100U",
    "sku": "BTX-100",
    "on_hand": 3,
    "reorder_point": 3,
    "reorder_qty": 5,
}


def test_a_product_at_its_point_needs_reordering_unless_inactive():
    product = Product.from_doc("p1", PRODUCT)
    assert (product.unit, product.active, product.needs_reorder) == ("unit", True, True)
    assert not Product.from_doc("p1", {**PRODUCT, "on_hand": 4}).needs_reorder
    assert not Product.from_doc("p1", {**PRODUCT, "active": False}).needs_reorder


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"on_hand": "3"}, "on_hand"),
        ({"on_hand": -1}, "on_hand"),
        ({"reorder_point": True}, "reorder_point"),
        ({"reorder_qty": 0}, "reorder_qty"),
        ({"active": "yes"}, "active"),
        ({"sku": None}, "sku"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_a_product_breaking_the_contract_names_its_id_and_field(change, field):
    with pytest.raises(InvalidDocument) as raised:
        Product.from_doc("p9", {**PRODUCT, **change})
    assert (raised.value.collection, raised.value.doc_id, raised.value.field) == ("products", "p9", field)


def test_inventory_alert_bodies_parse_strictly():
    task = InventoryAlertTask("c1", date(2026, 3, 11))
    assert parse_task(task.to_json(), InventoryAlertTask) == task
    assert task.order_id == "c1_2026-03-11"
    with pytest.raises(PermanentError):
        parse_task({**task.to_json(), "period": "daily"}, InventoryAlertTask)
    with pytest.raises(PermanentError) as wrong:
        parse_task(task.to_json(), ReportEmailTask)
    assert wrong.value.code == "unknown_type"
    with pytest.raises(PermanentError):
        parse_task({**task.to_json(), "type": "report_email"}, InventoryAlertTask)


# ------------------------------------------------------------------------------------------ rendering


def empty_doc(period: str = "daily") -> dict:
    """A stored report of an empty day, as a document written before currency, locale and partial existed."""
    counts = {"total": 0, "booked": 0, "confirmed": 0, "completed": 0, "cancelled": 0, "no_show": 0}
    zero = {"sent": 0, "delivered": 0, "failed": 0}
    return {
        "clinic_id": "c1",
        "period": period,
        "start_date": "2026-03-10",
        "end_date": "2026-03-10",
        "timezone": "America/New_York",
        "start": datetime(2026, 3, 10, 4, tzinfo=timezone.utc),
        "end": datetime(2026, 3, 11, 4, tzinfo=timezone.utc),
        "hours": 24.0,
        "generated_at": datetime(2026, 3, 11, 6, tzinfo=timezone.utc),
        "emailed_to": [],
        "metrics": {
            "appointments": counts,
            "revenue_cents": 0,
            "cancellation_rate": None,
            "no_show_rate": None,
            "new_bookings": 0,
            "providers": [],
            "days": [{"date": "2026-03-10", "appointments": 0}],
            "waitlist": {"offers_sent": 0, "slots_filled": 0, "median_minutes_to_fill": None},
            "messages": {s: {"sms": dict(zero), "email": dict(zero)} for s in ("reminders", "confirmations")},
            "confirmation_rate": None,
            "reminder_delivery_rate": None,
            "open_failed_tasks": 0,
            "invalid_documents": 0,
            "empty": True,
        },
    }


def test_an_empty_period_still_renders_and_says_so():
    email = render.report_email(Report.from_doc("c1_daily_2026-03-10", empty_doc()), "Glow")
    assert "No appointments in this period." in email.text and "No appointments in this period." in email.html
    assert "No appointments to chart." in email.html and "(none)" in email.text
    assert email.subject == "Glow: daily report, Tuesday 10 March 2026"
    assert f'bgcolor="{render.BAR_COLOUR}"' not in email.html


def test_a_days_bars_are_per_provider_scaled_to_the_busiest():
    doc = empty_doc()
    doc["metrics"]["providers"] = [
        {"provider_id": "a", "name": "Ann", "appointments": 4, "booked_hours": 2.5, "revenue_cents": 123456},
        {"provider_id": "b", "name": "Bo", "appointments": 1, "booked_hours": 0.5, "revenue_cents": 0},
    ]
    report = Report.from_doc("c1_daily_2026-03-10", doc)
    html, text = render.report_html(report, "Glow"), render.report_text(report, "Glow")
    assert 'width="100%" bgcolor="#2f6fde"' in html and 'width="25%" bgcolor="#2f6fde"' in html
    assert "#" * render.TEXT_BAR_WIDTH in text and "Ann: 4, 2:30, $1,234.56" in text


def test_formatting_helpers():
    report = Report.from_doc("c1_daily_2026-03-10", empty_doc())
    money = render.money_of(report)  # a report stored before the currency: US dollars, as the clinic default
    assert (money(-1234), money(None), render.percent(0.1234), render.number(2.50)) == ("-$12.34", "-", "12.3 %", "2.5")
    assert render.day_label("bad") == "bad" and render.period_label(report) == "Tuesday 10 March 2026"
    assert (report.currency, report.locale, report.partial, report.metrics.invalid_listed) == ("USD", "en", False, ())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"period": "monthly"}, "period"),
        ({"start_date": "10/03/2026"}, "start_date"),
        ({"generated_at": "2026-03-11"}, "generated_at"),
        ({"metrics": None}, "metrics"),
        ({"emailed_to": "m@x"}, "emailed_to"),
    ],
)
def test_a_stored_report_breaking_its_shape_is_refused_naming_the_field(change, field):
    with pytest.raises(InvalidDocument) as raised:
        Report.from_doc("r1", {**empty_doc(), **change})
    assert (raised.value.collection, raised.value.doc_id, raised.value.field) == ("reports", "r1", field)


def test_a_broken_figure_is_named_by_its_path_in_the_metrics():
    doc = empty_doc()
    doc["metrics"]["providers"] = [
        {"provider_id": None, "name": 5, "appointments": 1, "booked_hours": 1, "revenue_cents": 0}
    ]
    doc["metrics"]["messages"]["reminders"]["sms"]["sent"] = True
    with pytest.raises(InvalidDocument) as raised:
        Report.from_doc("r1", doc)
    assert raised.value.field == "metrics.providers[0].name"
    doc["metrics"]["providers"][0]["name"] = "Ann"
    with pytest.raises(InvalidDocument) as raised:
        Report.from_doc("r1", doc)
    assert raised.value.field == "metrics.messages.reminders.sms.sent"
    del doc["metrics"]["messages"]["reminders"]["sms"]["sent"]
    with pytest.raises(InvalidDocument) as raised:
        Report.from_doc("r1", doc)
    assert str(raised.value) == "reports/r1: field 'metrics.messages.reminders.sms.sent' is required"


def test_the_sandbox_keeps_attachments_and_checks_them_like_sendgrid():
    from local.sandbox.sendgrid_api import validate_mail

    base = {
        "personalizations": [{"to": [{"email": "a@example.com"}]}],
        "from": {"email": "b@example.com"},
        "subject": "s",
        "content": [{"type": "text/plain", "value": "x"}],
    }
    good = {"filename": "r.csv", "type": "text/csv", "content": base64.b64encode(b"a,b").decode()}
    assert validate_mail({**base, "attachments": [good]}) == []
    problems = validate_mail(
        {
            **base,
            "attachments": [
                {**good, "content": "not base64!"},
                {**good, "filename": ""},
                {**good, "disposition": "inline"},
                {**good, "disposition": "sideways"},
                "nope",
            ],
        }
    )
    assert [p["field"] for p in problems] == [
        "attachments.0.content",
        "attachments.1.filename",
        "attachments.2.content_id",
        "attachments.3.disposition",
        "attachments.4",
    ]
    assert validate_mail({**base, "attachments": {}})[0]["field"] == "attachments"


def test_amounts_follow_the_currencys_minor_units_and_the_locales_grouping():
    from shared.reports.money import format_money

    assert format_money(123456789, "USD", "en") == "$1,234,567.89"
    assert format_money(123450, "EUR", "es") == "1234,50\u00a0€"  # Spanish groups from five digits
    assert format_money(1234500, "USD", "es") == "12.345,00\u00a0US$"
    assert format_money(-5, "CHF", "en") == "-CHF 0.05"
    assert format_money(1500, "JPY", "es") == "1500\u00a0JPY"
    assert format_money(True, "USD") == "-" and format_money(100, None) == "1.00"
