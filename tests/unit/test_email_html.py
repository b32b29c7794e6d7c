"""Every HTML template escapes every value it writes: a hostile text (markup, both quotes, an ampersand) put in
each field a template shows comes out escaped, in text and in attributes alike, and adds no element or
attribute to what the same page holds with a plain text in those fields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import pytest

from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.templates import render
from shared.reports import render as report_render
from shared.reports.report_docs import Report
from shared.waitlist.claim_link import Page
from shared.waitlist.templates import offer_email, result_message

HOSTILE = "<script>alert(\"x\")</script> & 'q'"
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;q&#39;"
PLAIN = "Plain text"
UTC = timezone.utc
START = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


class _Shape(HTMLParser):
    """The elements of a page in order, each with its attribute names: what a value must never change."""

    def __init__(self) -> None:
        super().__init__()
        self.shape: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.shape.append((tag, tuple(name for name, _ in attrs)))


def shape(html: str) -> list[tuple[str, tuple[str, ...]]]:
    parser = _Shape()
    parser.feed(html)
    return parser.shape


def report_doc(text: str) -> dict:
    """A stored daily report whose clinic id and provider name are `text`, with one unreadable record."""
    deliveries = {"sent": 1, "delivered": 1, "failed": 0}
    return {
        "clinic_id": text,
        "period": "daily",
        "start_date": "2026-03-10",
        "end_date": "2026-03-10",
        "timezone": "America/New_York",
        "start": datetime(2026, 3, 10, 4, tzinfo=UTC),
        "end": datetime(2026, 3, 11, 4, tzinfo=UTC),
        "hours": 24.0,
        "generated_at": datetime(2026, 3, 10, 19, tzinfo=UTC),
        "partial": True,
        "metrics": {
            "appointments": {"total": 1, "booked": 0, "confirmed": 0, "completed": 1, "cancelled": 0, "no_show": 0},
            "revenue_cents": 100,
            "cancellation_rate": 0.0,
            "no_show_rate": 0.0,
            "new_bookings": 1,
            "providers": [
                {"provider_id": "p1", "name": text, "appointments": 1, "booked_hours": 1.0, "revenue_cents": 100}
            ],
            "days": [{"date": "2026-03-10", "appointments": 1}],
            "waitlist": {"offers_sent": 0, "slots_filled": 0, "median_minutes_to_fill": None},
            "messages": {s: {"sms": deliveries, "email": deliveries} for s in ("reminders", "confirmations")},
            "confirmation_rate": None,
            "reminder_delivery_rate": 1.0,
            "open_failed_tasks": 0,
            "invalid_documents": 1,
        },
    }


def order(text: str) -> dict:
    """A purchase order draft whose every text (not the quantities) is `text`."""
    line = {"product_id": "p1", "sku": text, "name": text, "unit": text, "on_hand": 1, "reorder_point": 3, "qty": 6}
    return {
        "clinic_id": "c1",
        "date": text,
        "lines": [line],
        "invalid_products": [{"product_id": text, "field": text, "name": text, "sku": text}],
    }


def people(text: str) -> tuple[Clinic, Patient, Appointment]:
    clinic = Clinic.from_doc("c1", {"name": text, "timezone": "America/New_York", "phone": text})
    patient = Patient.from_doc("p1", {"clinic_id": "c1", "first_name": text})
    appointment = Appointment.from_doc(
        "a1",
        {
            "clinic_id": "c1",
            "patient_id": "p1",
            "service_name": "Peel",
            "status": "booked",
            "start": START,
            "end": START + timedelta(hours=1),
            "requires_prep": True,
            "prep_instructions": text,
        },
    )
    return clinic, patient, appointment


def prep_email(text: str) -> str:
    clinic, patient, appointment = people(text)
    return render("prep_instructions", clinic=clinic, patient=patient, appointment=appointment).html


def offer(text: str) -> str:
    clinic, patient, _ = people(text)
    link = "https://claim.example.test/?t=" + text
    return offer_email(clinic=clinic, patient=patient, start=START, deadline=START - timedelta(hours=1), link=link).html


def result(text: str) -> str:
    clinic, patient, _ = people(text)
    return result_message("won", clinic=clinic, patient=patient, start=START).html


# (the page with `text` in every field it shows, how many times those fields are shown)
PAGES: dict[str, tuple[Callable[[str], str], int]] = {
    # the title and heading (clinic), the bar's label and the provider's row, the unreadable notice's doc id
    "report": (lambda text: report_render.report_html(Report.from_doc("r1", report_doc(text)), text), 5),
    # title, heading, subtitle's date; the line's name, sku and 3 units; the broken product's 4 fields
    "reorder alert": (lambda text: report_render.inventory_email(order(text), text).html, 12),
    # first name, clinic twice, the prep, the phone; the signing clinic
    "patient email": (prep_email, 5),
    # first name, clinic, the link (an attribute), the phone; the signing clinic
    "waitlist offer": (offer, 5),
    # first name, clinic, phone; the signing clinic
    "waitlist result": (result, 4),
    # the title twice, the outcome and the token (attributes), the message
    "claim page": (lambda text: Page(200, text, text, token=text).html(text), 5),
}


@pytest.mark.parametrize("name", PAGES)
def test_a_hostile_value_in_every_field_comes_out_escaped_and_adds_no_markup(name):
    page, fields = PAGES[name]
    hostile, plain = page(HOSTILE), page(PLAIN)
    assert plain.count(PLAIN) == fields  # the fields counted below are every place a value is shown
    assert hostile.count(ESCAPED) == fields
    assert "<script" not in hostile and HOSTILE not in hostile
    assert shape(hostile) == shape(plain)


def test_the_templates_keep_the_pages_compact():
    html = PAGES["report"][0](PLAIN)
    assert "> <" not in html and ">\n" not in html  # laid out for the reader, sent without the layout's whitespace
