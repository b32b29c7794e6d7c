"""report_email and inventory_alert through the task router: one email per recipient, never a second one,
rendered from the stored document (HTML with bars, text, CSV that parses back to the stored figures)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timezone
from html import escape
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest

from shared.contract.events import InventoryTick, ReportTick
from shared.messaging.ledger import Ledger
from shared.messaging.opt_outs import OptOuts
from shared.messaging.providers import RecipientRejected
from shared.messaging.report_tasks import InventoryAlertTask, ReportEmailTask, parse_report_email_task
from shared.messaging.sender import MessageSender
from shared.platform.errors import FailedEarlier, PermanentError, RetryableError
from shared.reports import render
from shared.reports.builder import ReportBuilder
from shared.reports.emails import StaffEmails
from shared.reports.inventory import InventoryCheck
from shared.reports.metrics import MetricsReader
from shared.reports.periods import period_of
from shared.tasks.failed_tasks import FailedTasks
from shared.tasks.router import Attempt, TaskRouter, TaskType
from tests.fakes import FixedClock, MemoryStore, RecordingEmail, RecordingQueue, RecordingSms

UTC = timezone.utc
NOW = datetime(2026, 3, 11, 12, 0, tzinfo=UTC)
FIRST = Attempt(task_name="t", retry_count=0, queue="reports")
LAST = Attempt(task_name="t", retry_count=7, queue="reports", last=True)
MANAGERS = ["a@glow.example.com", "b@glow.example.com"]


@pytest.fixture
def world():
    store, clock, email = MemoryStore(), FixedClock(NOW), RecordingEmail()
    store.seed(
        "clinics/c1",
        {
            "name": "Glow <Spa>",
            "timezone": "America/New_York",
            "phone": "+12125550142",
            "email_from": "hi@glow.example.com",
            "manager_emails": MANAGERS,
            "inventory_emails": ["stock@glow.example.com"],
        },
    )
    start = datetime(2026, 3, 4, 15, tzinfo=UTC)
    for n, provider in enumerate(["Dr. Chen", "=HYPERLINK(1)", "Dr. Chen"]):
        store.seed(
            f"appointments/a{n}",
            {
                "clinic_id": "c1",
                "start": start,
                "end": start.replace(hour=16),
                "status": "completed",
                "price_cents": 1000,
                "provider_id": provider,
                "provider_name": provider,
            },
        )
    ledger = Ledger(store, clock)
    sender = MessageSender(ledger=ledger, sms=RecordingSms(), email=email, clock=clock, opt_outs=OptOuts(store, clock))
    service = StaffEmails(store=store, ledger=ledger, sender=sender, clock=clock)
    return store, email, service


def weekly(store: MemoryStore) -> ReportEmailTask:
    ReportBuilder(store, RecordingQueue(), "reports").run_tick(ReportTick("weekly", clinic_id="c1"), now=NOW)
    return ReportEmailTask("c1", "weekly", date(2026, 3, 2))


def test_each_manager_gets_the_report_once_with_html_text_and_csv(world):
    store, email, service = world
    task = weekly(store)
    first = service.deliver_report(task, FIRST)
    again = service.deliver_report(task, FIRST)
    assert (first.status, again.status) == ("sent", "duplicate")
    assert sorted(m.to for m in email.sent) == MANAGERS
    message = email.sent[0]
    assert message.subject == "Glow <Spa>: weekly report, 2 Mar – 8 Mar 2026"
    assert "Glow &lt;Spa&gt;" in message.html and "<script" not in message.html and "src=" not in message.html
    assert render.BAR_COLOUR in message.html
    assert "Appointments: 3" in message.text
    ((name, mime, content),) = message.attachments
    assert (name, mime) == ("report_c1_weekly_2026-03-02.csv", "text/csv")
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    stored = store.docs("reports")["c1_weekly_2026-03-02"]["metrics"]
    value = {(r["section"], r["item"], r["metric"]): r["value"] for r in rows}
    assert value[("appointments", "", "completed")] == str(stored["appointments"]["completed"]) == "3"
    assert value[("revenue", "", "completed_revenue_cents")] == str(stored["revenue_cents"])
    assert value[("provider", "Dr. Chen", "appointments")] == "2"
    assert value[("provider", "'=HYPERLINK(1)", "revenue_cents")] == "1000"  # a formula is never a formula
    assert value[("change", "appointments", "previous")] == "0"
    assert value[("rates", "", "cancellation_rate")] == "0.0"
    ledger = store.docs("notifications")
    assert {doc["kind"] for doc in ledger.values()} == {"report_email"} and len(ledger) == 2
    assert set(ledger) == {task.recipient_key(address) for address in MANAGERS}


def test_a_failed_recipient_is_retried_without_mailing_the_others_again(world):
    store, email, service = world
    task = weekly(store)
    email.fail_with = [RetryableError("sendgrid 503", code="sendgrid_unavailable")]
    with pytest.raises(RetryableError):
        service.deliver_report(task, FIRST)
    assert [m.to for m in email.sent] == ["b@glow.example.com"]
    assert service.deliver_report(task, FIRST).status == "sent"
    assert sorted(m.to for m in email.sent) == MANAGERS
    assert service.reopen(service.report_keys(task)) == "already_done"


def test_a_rejected_address_is_permanent_and_the_other_still_gets_it(world):
    store, email, service = world
    task = weekly(store)
    email.fail_with = [RecipientRejected("email", "email_rejected", 400)]
    with pytest.raises(PermanentError):
        service.deliver_report(task, LAST)
    assert [m.to for m in email.sent] == ["b@glow.example.com"]
    # Delivered again (the first attempt may have died before recording it): the failure again, nothing sent.
    with pytest.raises(FailedEarlier) as again:
        service.deliver_report(task, FIRST)
    assert again.value.code == "email_rejected"
    assert [m.to for m in email.sent] == ["b@glow.example.com"]


def test_missing_report_clinic_or_sender_and_no_managers(world):
    store, _, service = world
    with pytest.raises(PermanentError) as missing:
        service.deliver_report(ReportEmailTask("c1", "daily", date(2026, 3, 1)), FIRST)
    assert missing.value.code == "report_missing"
    task = weekly(store)
    store.seed("clinics/c1", {**store.doc("clinics/c1"), "manager_emails": []})
    assert service.deliver_report(task, FIRST).reason == "no_managers"
    store.seed("clinics/c1", {**store.doc("clinics/c1"), "manager_emails": MANAGERS, "email_from": None})
    with pytest.raises(PermanentError) as sender:
        service.deliver_report(task, FIRST)
    assert sender.value.code == "no_sender"
    store.seed("reports/c1_weekly_2026-03-02", {**store.doc("reports/c1_weekly_2026-03-02"), "clinic_id": "c9"})
    with pytest.raises(PermanentError) as other:
        service.deliver_report(task, FIRST)
    assert other.value.code == "payload_mismatch"


def test_the_reorder_alert_lists_the_draft_and_the_broken_products_once(world):
    store, email, service = world
    for doc_id, on_hand in (("filler", 1), ("botox", 9), ("broken", None)):
        store.seed(
            f"products/{doc_id}",
            {
                "clinic_id": "c1",
                "name": doc_id.title(),
                "sku": doc_id.upper(),
                "on_hand": on_hand,
                "reorder_point": 3,
                "reorder_qty": 12,
            },
        )
    InventoryCheck(store, RecordingQueue(), "reports").run_tick(InventoryTick(clinic_id="c1"), now=NOW)
    task = InventoryAlertTask("c1", date(2026, 3, 11))
    assert service.deliver_inventory_alert(task, FIRST).status == "sent"
    assert service.deliver_inventory_alert(task, FIRST).status == "duplicate"
    (message,) = email.sent
    assert message.to == "stock@glow.example.com" and message.subject.startswith("Glow <Spa>: 1 product(s) to reorder")
    assert "Filler (FILLER): 1 unit on hand, reorder point 3, order 12 unit" in message.text
    assert "Broken (BROKEN), product id broken: on_hand" in message.text
    assert "<td" in message.html and ">12 unit</td>" in message.html  # the order column says what it counts
    assert ">Broken</td>" in message.html and ">BROKEN</td>" in message.html
    assert service.reopen(service.alert_keys(task)) == "already_done"
    with pytest.raises(PermanentError) as missing:
        service.deliver_inventory_alert(InventoryAlertTask("c1", date(2026, 3, 12)), FIRST)
    assert missing.value.code == "order_missing"


def test_reopen_says_in_flight_or_reopened(world):
    store, _, service = world
    store.seed("notifications/k1", {"state": "failed"})
    store.seed("notifications/k2", {"state": "sending", "lease_until": datetime(2030, 1, 1, tzinfo=UTC)})
    assert service.reopen(["k1"]) == "reopened"
    assert service.reopen(["k1", "k2"]) == "in_flight"


def test_task_bodies_carry_ids_period_and_date_only_and_parse_strictly():
    task = ReportEmailTask("c1", "weekly", date(2026, 3, 2))
    assert json.loads(json.dumps(task.to_json())) == {
        "type": "report_email",
        "v": 1,
        "clinic_id": "c1",
        "period": "weekly",
        "date": "2026-03-02",
    }
    assert parse_report_email_task(task.to_json()) == task
    for bad in (
        {"period": "monthly"},
        {"date": "2026-02-30"},
        {"date": 20260302},
        {"clinic_id": "a/b"},
        {"to": "x@y.z"},
    ):
        with pytest.raises(PermanentError) as raised:
            parse_report_email_task({**task.to_json(), **bad})
        assert raised.value.code == "bad_payload", bad
    assert task.recipient_key("A@x.example.com") == task.recipient_key(" a@x.example.com")
    assert task.recipient_key("a@x.example.com") != task.recipient_key("b@x.example.com")


def test_the_email_says_how_many_records_were_left_out_and_where_an_operator_finds_them(world):
    store, email, service = world
    start = datetime(2026, 3, 5, 15, tzinfo=UTC)
    broken = {"clinic_id": "c1", "start": start, "end": start.replace(hour=14), "status": "completed"}
    store.seed("appointments/broken-1", {**broken, "price_cents": 500})
    store.seed("appointments/broken-2", {**broken, "end": start.replace(hour=16), "price_cents": "5.00"})
    service.deliver_report(weekly(store), FIRST)
    message = email.sent[0]
    assert "Appointments: 3" in message.text  # the two broken ones are in no figure
    where = "reports/c1_weekly_2026-03-02"
    assert "2 records could not be read and are left out of every figure" in message.text and where in message.text
    assert "2 records could not be read" in message.html and where in message.html
    assert "broken-1" not in message.text  # the ids are on the report doc, for the operator
    listed = store.docs("reports")["c1_weekly_2026-03-02"]["metrics"]["invalid_listed"]
    assert sorted(item["doc_id"] for item in listed) == ["broken-1", "broken-2"]


def test_a_205_provider_day_fits_under_gmails_clipping_and_the_csv_keeps_every_provider():
    store = MemoryStore()
    start = datetime(2026, 3, 4, 15, tzinfo=UTC)
    for n in range(205):
        for k in range(1 + n % 3):
            store.seed(
                f"appointments/a{n}-{k}",
                {
                    "clinic_id": "c1",
                    "start": start,
                    "end": start.replace(minute=45),
                    "status": "completed",
                    "price_cents": 12345,
                    "provider_id": f"prov-{n:03d}",
                    "provider_name": f"Dr. Provider Number {n:03d}",
                },
            )
    period = period_of("daily", date(2026, 3, 4), ZoneInfo("America/New_York"))
    metrics = MetricsReader(store).build("c1", period)
    report = {"clinic_id": "c1", "period": "daily", "start_date": "2026-03-04", "end_date": "2026-03-04"}
    message = render.report_email({**report, "metrics": metrics}, "Glow")
    assert len(message.html.encode()) < 100_000
    assert "Dr. Provider Number 002" in message.html  # the busiest have 3 appointments: 002, 005, 008…
    assert "Dr. Provider Number 203" not in message.html and "Dr. Provider Number 203" not in message.text
    others = f"{205 - render.TOP_PROVIDERS} other providers"
    assert others in message.html and others in message.text
    assert "all are in the CSV" in message.html
    shown, _ = render.shown_providers(metrics["providers"])
    assert sum(p["appointments"] for p in shown) == metrics["appointments"]["total"]
    assert sum(p["revenue_cents"] for p in shown) == metrics["revenue_cents"]
    ((_, _, content),) = message.attachments
    rows = list(csv.DictReader(io.StringIO(content.decode())))
    assert len({r["item"] for r in rows if r["section"] == "provider"}) == 205


class _Trusting:
    def verify(self, headers: object) -> dict[str, str]:
        return {"email": "tasks@test"}


def test_a_malformed_manager_address_is_skipped_recorded_masked_in_failed_tasks_and_the_rest_get_the_report(
    world, capsys
):
    store, email, service = world
    clinic = store.doc("clinics/c1")
    store.seed("clinics/c1", {**clinic, "manager_emails": [MANAGERS[0], "jane.doe@glow", MANAGERS[1]]})
    queue = RecordingQueue()
    summary = ReportBuilder(store, queue, "reports").run_tick(ReportTick("weekly", clinic_id="c1"), now=NOW).summary()
    assert summary["reports"] == 1 and summary["emails_queued"] == 1
    assert summary["problems"] == {"invalid_recipient": 1}
    assert "manager_emails[1]" in (out := capsys.readouterr().out) and "***@glow" in out
    router = TaskRouter(
        authenticator=_Trusting(),  # type: ignore[arg-type]  # a stand-in: TaskRouter takes the concrete class
        failures=FailedTasks(store, FixedClock(NOW)),
        max_attempts=8,
        types={
            "report_email": TaskType(
                name="report_email",
                parse=parse_report_email_task,
                handle=service.deliver_report,
                queue="reports",
                fields=ReportEmailTask.FIELDS,
            )
        },
    )
    (spec,) = queue.created
    status = router.handle({}, json.dumps(spec.payload).encode())[1]
    assert status == 200  # permanent: recorded, not retried
    assert sorted(m.to for m in email.sent) == MANAGERS
    (record,) = store.docs("failed_tasks").values()
    assert (record["error_code"], record["clinic_id"], record["status"]) == ("invalid_recipient", "c1", "open")
    assert "manager_emails[1]" in record["error"] and "***@glow" in record["error"]
    assert "jane.doe" not in json.dumps(record, default=str) and "jane.doe" not in capsys.readouterr().out
    task = parse_report_email_task(spec.payload)
    assert service.reopen(service.report_keys(task)) == "reopened"  # a retry, still unfixed, records it again
    store.seed("clinics/c1", {**clinic, "manager_emails": [*MANAGERS, "jane.doe@glow.example.com"]})
    assert service.deliver_report(task, FIRST).status == "sent"  # fixed: the retry sends to that address alone
    assert sorted(m.to for m in email.sent) == sorted([*MANAGERS, "jane.doe@glow.example.com"])


def test_only_malformed_addresses_still_queue_the_task_so_the_failure_is_recorded(world):
    store, email, service = world
    store.seed("clinics/c1", {**store.doc("clinics/c1"), "manager_emails": "boss at glow"})
    queue = RecordingQueue()
    ReportBuilder(store, queue, "reports").run_tick(ReportTick("weekly", clinic_id="c1"), now=NOW)
    assert len(queue.created) == 1
    with pytest.raises(PermanentError) as raised:
        service.deliver_report(ReportEmailTask("c1", "weekly", date(2026, 3, 2)), FIRST)
    assert raised.value.code == "invalid_recipient" and email.sent == []


@pytest.mark.parametrize(
    ("settings", "revenue", "figure"),
    [
        ({}, "Completed revenue: $30.00", "$10.00"),
        ({"currency": "EUR", "locale": "es"}, "Completed revenue: 30,00\u00a0€", "10,00\u00a0€"),
        ({"currency": "JPY"}, "Completed revenue: ¥3,000", "¥1,000"),
        ({"currency": "KWD"}, "Completed revenue: KWD 3.000", "KWD 1.000"),
        ({"currency": "dollars"}, "Completed revenue: 30.00", "10.00"),  # not a code: no symbol, never refused
    ],
)
def test_revenue_is_written_in_the_clinics_currency_and_locale(world, settings, revenue, figure):
    store, email, service = world
    store.seed("clinics/c1", {**store.doc("clinics/c1"), **settings})
    service.deliver_report(weekly(store), FIRST)
    message = email.sent[0]
    assert revenue in message.text
    assert f">{escape(figure)}</td>" in message.html  # a provider's revenue
    stored = store.docs("reports")["c1_weekly_2026-03-02"]
    assert stored["currency"] == (settings.get("currency", "USD") if settings.get("currency") != "dollars" else None)


class _Tables(HTMLParser):
    """The HTML's tables as rows of cell texts (nested layout tables included)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.open: list[list[list[str]]] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "table":
            self.open.append([])
        elif tag == "tr" and self.open:
            self.open[-1].append([])
        elif tag == "td" and self.open and self.open[-1]:
            self.open[-1][-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.open:
            self.tables.append(self.open.pop())

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] and self.open[-1][-1]:
            self.open[-1][-1][-1] += data


def table_with(html: str, label: str) -> list[list[str]]:
    parser = _Tables()
    parser.feed(html)
    return next(t for t in parser.tables if any(row and row[0] == label for row in t[1:]))


def test_each_rate_sits_under_a_header_that_names_it_and_booked_time_is_one_format(world):
    store, email, service = world
    start = datetime(2026, 3, 4, 18, tzinfo=UTC)
    store.seed(
        "appointments/short",
        {"clinic_id": "c1", "start": start, "end": start.replace(minute=15), "status": "booked", "provider_id": "x"},
    )
    service.deliver_report(weekly(store), FIRST)
    html = email.sent[0].html
    rates = table_with(html, "Reminders delivered / sent")
    header, row = rates[0], next(r for r in rates if r[0] == "Reminders delivered / sent")
    assert len(header) == len(row) and header[row.index("-")] == "Share"
    providers = table_with(html, "Dr. Chen")
    booked = providers[0].index("Booked (h:mm)")
    assert {row[0]: row[booked] for row in providers[1:]} == {"Dr. Chen": "2:00", "=HYPERLINK(1)": "1:00", "x": "0:15"}
    assert "Dr. Chen: 2, 2:00," in email.sent[0].text and "x: 1, 0:15," in email.sent[0].text


def test_a_partial_report_says_so_and_the_next_mornings_complete_one_is_still_emailed(world):
    store, email, service = world
    queue = RecordingQueue()
    builder = ReportBuilder(store, queue, "reports")
    today = date(2026, 3, 4)
    afternoon = datetime(2026, 3, 4, 19, tzinfo=UTC)  # 14:00 in New York: the day is not over
    builder.run_tick(ReportTick("daily", date=today, clinic_id="c1", partial=True), now=afternoon)
    stored = store.docs("reports")["c1_daily_2026-03-04"]
    assert stored["partial"] is True and stored["generated_at"] == afternoon
    partial_task = parse_report_email_task(queue.created[0].payload)
    assert service.deliver_report(partial_task, FIRST).status == "sent"
    first = email.sent[0]
    as_of = "(PARTIAL, as of Wed 4 Mar, 14:00 (America/New_York))"
    assert first.subject == f"Glow <Spa>: daily report, Wednesday 4 March 2026 {as_of}"
    assert "Partial report: the period had not ended" in first.text and "Partial report" in first.html

    morning = datetime(2026, 3, 5, 11, tzinfo=UTC)  # the scheduled run: yesterday, complete now
    builder.run_tick(ReportTick("daily", clinic_id="c1"), now=morning)
    assert store.docs("reports")["c1_daily_2026-03-04"]["partial"] is False
    final_task = parse_report_email_task(queue.created[-1].payload)
    assert final_task.failure_key != partial_task.failure_key
    assert service.deliver_report(final_task, FIRST).status == "sent"
    finals = [m for m in email.sent if "PARTIAL" not in m.subject]
    assert sorted(m.to for m in finals) == MANAGERS and "Partial report" not in finals[0].text
    assert service.deliver_report(partial_task, FIRST).reason == "superseded"  # a late retry sends nothing old
    assert len(email.sent) == 2 * len(MANAGERS)
