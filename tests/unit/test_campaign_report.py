"""The campaign report on the in-memory store: every figure from a constructed ledger, consent history,
clicks and appointments, with the boundaries (72 h, 14 days, other campaigns, other clinics) on both sides;
and the campaign_report task: built, stored, emailed once per manager and edition, numbers only."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.campaigns.report import CampaignReports
from shared.campaigns.report_email import CampaignReportEmails
from shared.campaigns.tasks import CampaignReportTask
from shared.messaging.ledger import Ledger
from shared.messaging.opt_outs import OptOuts
from shared.messaging.sender import MessageSender
from shared.platform.errors import PermanentError
from shared.reports.emails import StaffEmails
from shared.tasks.router import Attempt
from tests.bodies import parse_task
from tests.campaign_report_cases import (
    CAMPAIGN,
    MANAGERS,
    NOW,
    PATIENT_NAME,
    PATIENT_PHONE,
    SENT,
    booked,
    revoked,
    seed_campaign,
)
from tests.fakes import FixedClock, MemoryStore, RecordingEmail, RecordingSms

FIRST = Attempt(task_name="t", retry_count=0, queue="reports")


@pytest.fixture
def store() -> MemoryStore:
    return seed_campaign(MemoryStore())


def build(store: MemoryStore):
    return CampaignReports(store).build(CAMPAIGN, now=NOW)


def test_ledger_figures_come_from_this_campaigns_entries(store):
    report = build(store)
    assert (report.planned, report.sent, report.delivered, report.failed, report.pending) == (7, 4, 2, 2, 1)
    assert report.failed_by_code == {"30007": 1, "invalid_phone": 1}
    assert report.skipped == {"at_cap": 1}


def test_audience_and_exclusions_come_from_the_planning_counts(store):
    report = build(store)
    assert (report.audience, report.excluded) == (9, {"no_consent": 2, "opted_out": 1})


def test_cost_is_segments_sent_times_the_clinics_price(store):
    report = build(store)
    # p1, p3, p4 at the estimate's 2 segments each, p2's own 3
    assert (report.segments, report.price_per_segment_cents, report.cost_cents) == (9, 0.79, 7)


def test_without_a_price_the_cost_is_unknown(store):
    store.put("clinics/c1", {"name": "Glow Spa", "timezone": "America/New_York"})
    assert build(store).cost_cents is None


def test_opt_outs_count_sms_revocations_within_72_hours_of_the_message(store):
    revoked(store, "p1", SENT + timedelta(hours=71, minutes=59))
    revoked(store, "p2", SENT + timedelta(hours=72))  # too late
    revoked(store, "p3", SENT - timedelta(minutes=1))  # before the message
    revoked(store, "p4", SENT + timedelta(hours=1), channel="email")  # not SMS
    revoked(store, "p6", SENT + timedelta(hours=1))  # never sent to
    assert build(store).opted_out_72h == 1


def test_clicks_are_every_get_and_the_recipients_who_clicked(store):
    store.put(f"campaign_clicks/{CAMPAIGN}~k1", {"campaign_id": CAMPAIGN, "count": 3})
    store.put(f"campaign_clicks/{CAMPAIGN}~k2", {"campaign_id": CAMPAIGN, "count": 1})
    store.put("campaign_clicks/camp-other~k3", {"campaign_id": "camp-other", "count": 5})
    report = build(store)
    assert (report.clicks, report.clickers) == (4, 2)


def test_bookings_are_recipients_appointments_within_14_days_of_their_message(store):
    booked(store, "a1", "p1", SENT + timedelta(days=1))
    booked(store, "a2", "p1", SENT + timedelta(days=13, hours=23))
    booked(store, "a3", "p2", SENT + timedelta(days=14))  # too late
    booked(store, "a4", "p3", SENT - timedelta(hours=1))  # before the message
    booked(store, "a5", "p6", SENT + timedelta(days=1))  # never sent to
    booked(store, "a6", "p3", SENT + timedelta(days=1), clinic="c2")  # another clinic
    booked(store, "a7", "stranger", SENT + timedelta(days=1))  # not a recipient
    report = build(store)
    assert (report.bookings, report.booked_recipients) == (2, 1)


def test_the_report_is_stored_and_reads_back(store):
    built = build(store)
    assert CampaignReports(store).load(CAMPAIGN) == built


def test_a_missing_campaign_is_a_permanent_error(store):
    with pytest.raises(PermanentError):
        CampaignReports(store).build("camp-none", now=NOW)


def service(store: MemoryStore) -> tuple[CampaignReportEmails, RecordingEmail]:
    clock, email = FixedClock(NOW), RecordingEmail()
    book = Ledger(store, clock)
    sender = MessageSender(ledger=book, sms=RecordingSms(), email=email, clock=clock, opt_outs=OptOuts(store, clock))
    emails = StaffEmails(store=store, ledger=book, sender=sender, clock=clock)
    return CampaignReportEmails(reports=CampaignReports(store), emails=emails, clock=clock), email


def task() -> CampaignReportTask:
    body = {"type": "campaign_report", "v": 1, "campaign_id": CAMPAIGN, "clinic_id": "c1", "date": "2026-03-22"}
    return parse_task(body, CampaignReportTask)


def test_the_task_builds_the_report_and_emails_each_manager_once(store):
    emails, outbox = service(store)
    emails.deliver(task(), FIRST)
    emails.deliver(task(), FIRST)  # redelivered
    assert sorted(message.to for message in outbox.sent) == MANAGERS
    assert CampaignReports(store).load(CAMPAIGN) is not None
    message = outbox.sent[0]
    assert "Spring glow" in message.subject and "Delivered: 2" in message.text and "30007" in message.html


def test_the_email_names_no_patient(store):
    emails, outbox = service(store)
    emails.deliver(task(), FIRST)
    for message in outbox.sent:
        for secret in (PATIENT_NAME, PATIENT_PHONE, "p1"):
            assert secret not in message.text and secret not in message.html


def test_the_next_days_edition_is_a_new_email(store):
    emails, outbox = service(store)
    emails.deliver(task(), FIRST)
    emails.deliver(CampaignReportTask(CAMPAIGN, "c1", date(2026, 3, 23)), FIRST)
    assert len(outbox.sent) == 2 * len(MANAGERS)


def test_a_task_naming_another_clinic_is_refused(store):
    emails, outbox = service(store)
    with pytest.raises(PermanentError):
        emails.deliver(CampaignReportTask(CAMPAIGN, "c2", date(2026, 3, 22)), FIRST)
    assert outbox.sent == []
