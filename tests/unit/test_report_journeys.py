"""The report's patient-journey sections (docs/reports.md, "Journeys"): every provider's figures stored under
`journeys`, rendered in the email (text, HTML, CSV) and on the console, whatever providers are listed; and the
rebooking provider's own figures."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from local.sandbox.console.reports_page import _journeys
from shared.contract.models import Clinic
from shared.messaging.keys import message_key
from shared.rebooking.figures import report_figures
from shared.rebooking.tasks import NO_SHOW, REBOOK
from shared.reports.builder import ReportBuilder
from shared.reports.journeys import Figure, JourneyFigures, provider
from shared.reports.periods import Period, period_of
from shared.reports.render import csv_rows, journey_rows, report_html, report_text
from shared.reports.report_docs import Report, Reports
from tests.fakes import MemoryStore, RecordingQueue

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
DAY = date(2026, 3, 10)
PERIOD = period_of(Period.DAILY, DAY, NY)
NOW = datetime(2026, 3, 11, 12, tzinfo=UTC)
CLINIC = {"name": "Glow", "timezone": "America/New_York", "phone": "+12125550142", "email_from": "hi@glow.example.com"}


def fake_provider(store, clinic_id, period) -> JourneyFigures:
    """A second flow's section, as another flow's provider would return it."""
    return JourneyFigures(
        "surveys",
        "Feedback",
        (Figure("responses", "Survey responses", 3), Figure("response_rate", "Response rate", 0.25, percent=True)),
    )


def at(hour: int, days: int = 0) -> datetime:
    return datetime.combine(DAY + timedelta(days=days), datetime.min.time().replace(hour=hour), tzinfo=NY).astimezone(
        UTC
    )


def message(store: MemoryStore, kind: str, patient: str, when: datetime, state: str = "sent") -> None:
    key = message_key(kind, f"appt-{patient}", when - timedelta(days=90), None)
    doc = {"kind": kind, "clinic_id": "c1", "patient_id": patient, "send_at": when, "state": state}
    store.seed(f"notifications/{key}", {**doc, **({"sent_at": when} if state in ("sent", "delivered") else {})})


def booking(store: MemoryStore, patient: str, created: datetime, status: str = "booked", clinic: str = "c1") -> None:
    start = created + timedelta(days=30)
    doc = {"clinic_id": clinic, "patient_id": patient, "start": start, "status": status, "created_at": created}
    store.seed(f"appointments/b-{patient}-{created.timestamp()}-{status}", doc)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.seed("clinics/c1", CLINIC)
    message(s, REBOOK, "ana", at(11))
    message(s, REBOOK, "ben", at(12), state="delivered")
    message(s, REBOOK, "cy", at(13), state="skipped")  # not sent: not counted
    message(s, REBOOK, "dee", at(11, days=1))  # the next day: another report's
    message(s, NO_SHOW, "eve", at(10))
    booking(s, "ana", at(15, days=2))  # within 14 days of her nudge
    booking(s, "ben", at(15, days=20))  # too late to count
    booking(s, "ben", at(15, days=3), status="cancelled")  # cancelled: does not count
    booking(s, "eve", at(9, days=1), clinic="c-other")  # another clinic: does not count
    return s


def test_the_rebooking_figures_count_messages_that_went_and_bookings_within_14_days(store):
    figures = report_figures(store, "c1", PERIOD)
    assert figures.key == "rebooking"
    assert figures.as_doc() == {
        "rebook_nudges_sent": 2,
        "bookings_after_nudges": 1,
        "nudge_conversion": 0.5,
        "no_show_messages_sent": 1,
        "rebookings_after_no_show": 0,
    }
    assert report_figures(MemoryStore(), "c1", PERIOD).as_doc()["nudge_conversion"] is None


REBOOKING = provider("shared.rebooking.figures")  # this flow's section, whatever else PROVIDERS lists


def build(store: MemoryStore, providers=(REBOOKING,)) -> Report:
    builder = ReportBuilder(store=store, tasks=RecordingQueue(), queue="reports", journeys=providers)
    summary = builder.build(Clinic.from_doc("c1", CLINIC), PERIOD, now=NOW, email=False)
    report = Reports(store).load(summary.ids[0])
    assert report is not None
    return report


def test_every_provider_listed_gets_its_section_stored_and_rendered_in_order(store):
    report = build(store, (REBOOKING, fake_provider))
    stored = store.doc(f"reports/{report.id}")
    assert stored is not None and list(stored["journeys"]) == ["rebooking", "surveys"]
    assert stored["journeys"]["surveys"] == {"responses": 3, "response_rate": 0.25}
    assert stored["journeys"]["rebooking"]["rebook_nudges_sent"] == 2
    assert [section.title for section in journey_rows(report)] == ["Rebooking and no-shows", "Feedback"]
    text = report_text(report, "Glow")
    assert "Feedback\n  Survey responses: 3\n  Response rate: 25.0 %" in text
    assert "Rebooking nudges sent: 2" in text and "Nudges followed by a booking: 50.0 %" in text
    html = report_html(report, "Glow")
    assert "Rebooking and no-shows" in html and "Survey responses" in html and "25.0 %" in html
    rows = csv_rows(report)
    assert ("journeys", "surveys", "responses", 3) in rows and (
        "journeys",
        "rebooking",
        "rebook_nudges_sent",
        2,
    ) in rows


def test_without_providers_and_for_a_report_stored_before_the_section_nothing_is_shown(store):
    report = build(store, ())
    assert report.journeys == {} and journey_rows(report) == []
    doc = report.to_doc()
    del doc["journeys"], doc["journey_sections"]
    old = Report.from_doc(report.id, doc)
    assert old.journeys is None and journey_rows(old) == [] and "Rebooking" not in report_text(old, "Glow")


def test_a_section_stored_without_its_labels_reads_by_its_keys(store):
    doc = build(store).to_doc()
    doc["journeys"]["group_bookings"] = {"groups_booked": 4}
    (section,) = [s for s in journey_rows(Report.from_doc("r", doc)) if s.key == "group_bookings"]
    assert section.title == "Group bookings" and section.rows == (("groups_booked", "4"),)


def test_the_console_shows_the_sections_of_a_readable_report_and_none_of_a_broken_one(store):
    report = build(store, (REBOOKING, fake_provider))
    doc = store.doc(f"reports/{report.id}")
    assert [s.key for s in _journeys(report.id, doc)] == ["rebooking", "surveys"]
    assert _journeys(report.id, {**doc, "journeys": {"surveys": {"responses": "many"}}}) == []
    assert _journeys(report.id, None) == []
