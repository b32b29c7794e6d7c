"""report_builder through the real local stack: Pub/Sub → bridge → staged function → Firestore emulator →
Cloud Tasks → task handler → SendGrid sandbox.

Every figure of a stored report is checked against an independent computation over the documents this
test seeded (plain Python over the raw dicts, local days by zoneinfo date membership, not the report
code's UTC ranges or helpers), for a weekly and a daily period around New York's fall-back (Sunday
1 November 2026: a 25-hour day, a 169-hour week). The email is read back from the sandbox: its HTML,
text and CSV parts, the CSV against the stored metrics, and the HTML as headless Chromium draws it.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import shutil
import statistics
import struct
import subprocess
import sys
import uuid
import zlib
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from local.config import StackConfig
from local.processes import wait_until
from shared.reports.tasks import ReportEmailTask
from tests.handler_support import post
from tests.stack_logs import FunctionLogs, publish

pytestmark = pytest.mark.integration

UTC = timezone.utc
NY, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")
WEEK = (date(2026, 10, 26), date(2026, 11, 1))  # Monday–Sunday; the Sunday is 25 hours long in New York
BEFORE = (date(2026, 10, 19), date(2026, 10, 25))
FALL_BACK = date(2026, 11, 1)
WAIT = 90.0
STATUSES = ("booked", "confirmed", "completed", "cancelled", "no_show")
BAR_RGB = (0x2F, 0x6F, 0xDE)  # shared.reports.render.BAR_COLOUR


# --------------------------------------------------------------------------------------------- seed


def at(day: date, hour: int, minute: int, zone: ZoneInfo, fold: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=zone).replace(fold=fold).astimezone(UTC)


class Seed:
    """Two clinics' documents, drawn from a fixed random sequence, with the period edges placed on purpose."""

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:6]
        self.a, self.b = f"clinic-a-{run}", f"clinic-b-{run}"
        self.managers = [f"owner-{run}@glow.example.com", f"frontdesk-{run}@glow.example.com"]
        self.b_manager = f"boss-{run}@mayfair.example.co.uk"
        self.inventory = f"stock-{run}@glow.example.com"
        self.docs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.rng = random.Random(20261101)
        self.docs["clinics"][self.a] = {
            "name": "Glow Aesthetics",
            "timezone": "America/New_York",
            "phone": "+12125550142",
            "email_from": "reports@glow.example.com",
            "manager_emails": self.managers,
            "inventory_emails": [self.inventory],
        }
        self.docs["clinics"][self.b] = {
            "name": "Mayfair Skin",
            "timezone": "Europe/London",
            "phone": "+442079460100",
            "email_from": "reports@mayfair.example.co.uk",
            "manager_emails": [self.b_manager],
        }
        self.n = 0
        for clinic, zone in ((self.a, NY), (self.b, LONDON)):
            day = BEFORE[0] - timedelta(days=1)
            while day <= WEEK[1] + timedelta(days=1):
                for _ in range(self.rng.randint(0, 6)):
                    self.appointment(clinic, at(day, self.rng.randint(0, 23), self.rng.choice((0, 15, 30, 45)), zone))
                day += timedelta(days=1)
        # the edges: local midnight opening the week (in), the last minute of its Sunday (in), the next
        # Monday's midnight (out), and both 01:30s of the fall-back night (the repeated hour: both in)
        for instant in (
            at(WEEK[0], 0, 0, NY),
            at(WEEK[1], 23, 59, NY),
            at(WEEK[1] + timedelta(days=1), 0, 0, NY),
            at(FALL_BACK, 1, 30, NY, fold=0),
            at(FALL_BACK, 1, 30, NY, fold=1),
        ):
            self.appointment(self.a, instant, status="completed")
        for clinic, zone in ((self.a, NY), (self.b, LONDON)):
            for n in range(60):
                day = BEFORE[0] + timedelta(days=self.rng.randint(-1, 15))
                self.docs["notifications"][f"{clinic}-n{n}"] = {
                    "clinic_id": clinic,
                    "kind": self.rng.choice(("appointment_reminder", "booking_confirmation", "followup")),
                    "channel": self.rng.choice(("sms", "email")),
                    "state": self.rng.choice(("scheduled", "sent", "delivered", "failed", "skipped")),
                    "send_at": at(day, self.rng.randint(0, 23), 0, zone),
                    "appointment_id": f"appt-{n}",
                }
            for n in range(12):
                created = at(BEFORE[0] + timedelta(days=self.rng.randint(0, 14)), self.rng.randint(8, 18), 0, zone)
                status = self.rng.choice(("open", "filled", "filled", "expired"))
                filled = created + timedelta(minutes=self.rng.randint(3, 400)) if status == "filled" else None
                self.docs["slot_offers"][f"{clinic}-o{n}"] = {
                    "clinic_id": clinic,
                    "status": status,
                    "created_at": created,
                    "filled_at": filled,
                }
            for n, status in enumerate(("open", "open", "resolved", "retry")):
                self.docs["failed_tasks"][f"{clinic}-f{n}"] = {"clinic_id": clinic, "status": status}

    def appointment(self, clinic: str, start: datetime, status: str | None = None) -> None:
        self.n += 1
        provider = self.rng.choice((("prov-1", "Dr. Maya Chen"), ("prov-2", "Jordan Ellis"), ("prov-3", "Sam Rivera")))
        self.docs["appointments"][f"{clinic}-appt-{self.n:04d}"] = {
            "clinic_id": clinic,
            "patient_id": f"pat-{self.n}",
            "provider_id": provider[0],
            "provider_name": provider[1],
            "service_name": "Botox",
            "requires_prep": False,
            "prep_instructions": "",
            "start": start,
            "end": start + timedelta(minutes=self.rng.choice((30, 45, 60, 90))),
            "status": status or self.rng.choice(STATUSES),
            "price_cents": self.rng.randint(50, 900) * 100,
            "created_at": start - timedelta(days=self.rng.randint(0, 12), minutes=self.rng.randint(0, 1439)),
        }
        if self.rng.random() < 0.3:  # confirmed by text before the visit, whatever its status is now
            self.docs["appointments"][f"{clinic}-appt-{self.n:04d}"]["confirmed_at"] = start - timedelta(hours=20)

    def write(self, db: Any) -> None:
        writes = [(name, doc_id, fields) for name, docs in self.docs.items() for doc_id, fields in docs.items()]
        for index in range(0, len(writes), 400):
            batch = db.batch()
            for name, doc_id, fields in writes[index : index + 400]:
                batch.set(db.collection(name).document(doc_id), fields)
            batch.commit()


# ----------------------------------------------------------------------------------- the independent oracle


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def expected(seed: Seed, clinic: str, zone: ZoneInfo, first: date, last: date, weekly: bool) -> dict[str, Any]:
    """The report's metrics worked out from the raw seeded dicts by local-date membership."""

    def inside(instant: Any) -> bool:
        return isinstance(instant, datetime) and first <= instant.astimezone(zone).date() <= last

    mine = [a for a in seed.docs["appointments"].values() if a["clinic_id"] == clinic]
    appts = [a for a in mine if inside(a["start"])]
    counts = Counter(a["status"] for a in appts)
    kept = [a for a in appts if a["status"] != "cancelled"]
    providers: dict[str, dict[str, Any]] = {}
    for a in kept:
        p = providers.setdefault(a["provider_id"], {"name": a["provider_name"], "n": 0, "seconds": 0, "revenue": 0})
        p["n"] += 1
        p["seconds"] += (a["end"] - a["start"]).total_seconds()
        p["revenue"] += a["price_cents"] if a["status"] == "completed" else 0
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    ledger = [d for d in seed.docs["notifications"].values() if d["clinic_id"] == clinic and inside(d["send_at"])]

    def messages(kind: str, channel: str) -> dict[str, int]:
        states = Counter(d["state"] for d in ledger if d["kind"] == kind and d["channel"] == channel)
        return {
            "sent": states["sent"] + states["delivered"],
            "delivered": states["delivered"],
            "failed": states["failed"],
        }

    reminders = {c: messages("appointment_reminder", c) for c in ("sms", "email")}
    offers = [o for o in seed.docs["slot_offers"].values() if o["clinic_id"] == clinic]
    filled = [o for o in offers if o["status"] == "filled" and inside(o["filled_at"])]
    total = len(appts)
    out: dict[str, Any] = {
        "appointments": {"total": total, **{s: counts[s] for s in STATUSES}},
        "revenue_cents": sum(a["price_cents"] for a in appts if a["status"] == "completed"),
        "cancellation_rate": rate(counts["cancelled"], total),
        "no_show_rate": rate(counts["no_show"], total - counts["cancelled"]),
        "new_bookings": sum(inside(a["created_at"]) for a in mine),
        "providers": sorted(
            (
                {
                    "provider_id": pid,
                    "name": p["name"],
                    "appointments": p["n"],
                    "booked_hours": round(p["seconds"] / 3600, 2),
                    "revenue_cents": p["revenue"],
                }
                for pid, p in providers.items()
            ),
            key=lambda row: row["name"].lower(),
        ),
        "days": [
            {"date": d.isoformat(), "appointments": sum(a["start"].astimezone(zone).date() == d for a in kept)}
            for d in days
        ],
        "waitlist": {
            "offers_sent": sum(inside(o["created_at"]) for o in offers),
            "slots_filled": len(filled),
            "median_minutes_to_fill": (
                round(statistics.median((o["filled_at"] - o["created_at"]).total_seconds() for o in filled) / 60, 1)
                if filled
                else None
            ),
        },
        "messages": {
            "reminders": reminders,
            "confirmations": {c: messages("booking_confirmation", c) for c in ("sms", "email")},
        },
        "confirmation_rate": rate(sum(a["status"] == "confirmed" or "confirmed_at" in a for a in kept), len(kept)),
        "reminder_delivery_rate": rate(
            sum(r["delivered"] for r in reminders.values()), sum(r["sent"] for r in reminders.values())
        ),
        "open_failed_tasks": sum(
            1 for f in seed.docs["failed_tasks"].values() if f["clinic_id"] == clinic and f["status"] == "open"
        ),
        "invalid_documents": 0,
        "invalid_listed": [],
        "empty": total == 0,
    }
    if weekly:
        before = expected(seed, clinic, zone, first - timedelta(days=7), last - timedelta(days=7), weekly=False)
        change = {}
        for key, now, then in (
            ("appointments", out["appointments"]["total"], before["appointments"]["total"]),
            *((s, out["appointments"][s], before["appointments"][s]) for s in ("completed", "cancelled", "no_show")),
            ("revenue_cents", out["revenue_cents"], before["revenue_cents"]),
            ("new_bookings", out["new_bookings"], before["new_bookings"]),
            ("cancellation_rate", out["cancellation_rate"], before["cancellation_rate"]),
            ("no_show_rate", out["no_show_rate"], before["no_show_rate"]),
            ("offers_sent", out["waitlist"]["offers_sent"], before["waitlist"]["offers_sent"]),
            ("slots_filled", out["waitlist"]["slots_filled"], before["waitlist"]["slots_filled"]),
        ):
            diff = None if now is None or then is None else round(now - then, 4)
            change[key] = {
                "current": now,
                "previous": then,
                "change": diff,
                "percent": round(100 * diff / then, 1) if diff is not None and then else None,
            }
        out["change"] = change
    return out


# ------------------------------------------------------------------------------------------- plumbing


def tick(stack: StackConfig, topic: str, body: dict[str, Any], logs: FunctionLogs, done: str) -> dict[str, Any]:
    """Publish one tick and return its function's summary line."""
    (message_id,) = publish(stack, topic, [json.dumps(body).encode()])
    (line,) = logs.wait_for(lambda line: line.get("event_id") == message_id and line.get("message") == done)
    return line


def report_doc(db: Any, doc_id: str) -> dict[str, Any]:
    snapshot = db.collection("reports").document(doc_id).get()
    assert snapshot.exists, doc_id
    return snapshot.to_dict()


def emails_to(sandbox: Any, address: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        found[:] = sandbox.messages(to=address, channel="email")
        return len(found) >= count

    assert wait_until(arrived, WAIT), f"{count} email(s) to {address} not in the sandbox: {found}"
    return found


# ---------------------------------------------------------------------------------------------- tests


def test_weekly_and_daily_reports_over_a_dst_change_match_an_independent_count(stack, firestore_client, sandbox):
    seed = Seed()
    seed.write(firestore_client)
    logs = FunctionLogs(stack, "report-builder", WAIT)

    summary = tick(
        stack,
        "reports-tick",
        {"period": "weekly", "date": "2026-10-28", "clinic_id": seed.a},
        logs,
        "reports tick done",
    )
    assert summary["reports"] == 1 and summary["emails_queued"] == 1 and summary["failed"] == 0
    weekly = report_doc(firestore_client, f"{seed.a}_weekly_2026-10-26")
    assert (weekly["start_date"], weekly["end_date"], weekly["hours"]) == ("2026-10-26", "2026-11-01", 169)
    assert weekly["metrics"] == expected(seed, seed.a, NY, *WEEK, weekly=True)
    assert weekly["metrics"]["appointments"]["total"] > 20  # the data really exercises the figures

    tick(
        stack, "reports-tick", {"period": "daily", "date": "2026-11-01", "clinic_id": seed.a}, logs, "reports tick done"
    )
    daily = report_doc(firestore_client, f"{seed.a}_daily_2026-11-01")
    assert daily["hours"] == 25
    assert daily["metrics"] == expected(seed, seed.a, NY, FALL_BACK, FALL_BACK, weekly=False)

    # London's week has no DST change: 168 hours, and its own figures
    tick(
        stack,
        "reports-tick",
        {"period": "weekly", "date": "2026-10-26", "clinic_id": seed.b},
        logs,
        "reports tick done",
    )
    london = report_doc(firestore_client, f"{seed.b}_weekly_2026-10-26")
    assert london["hours"] == 168 and london["metrics"] == expected(seed, seed.b, LONDON, *WEEK, weekly=True)


def test_the_email_has_html_text_and_a_csv_matching_the_report_and_a_rerun_sends_none(stack, firestore_client, sandbox):
    seed = Seed()
    seed.write(firestore_client)
    logs, handler = FunctionLogs(stack, "report-builder", WAIT), FunctionLogs(stack, "task-handler", WAIT)
    body = {"period": "weekly", "date": "2026-10-26", "clinic_id": seed.a}
    tick(stack, "reports-tick", body, logs, "reports tick done")
    doc_id = f"{seed.a}_weekly_2026-10-26"
    stored = report_doc(firestore_client, doc_id)
    messages = [emails_to(sandbox, address, 1)[0] for address in seed.managers]

    for message in messages:
        assert message["subject"] == "Glow Aesthetics: weekly report, 26 Oct – 1 Nov 2026"
        assert message["from"] == "reports@glow.example.com"
        assert "<table" in message["html"] and "<script" not in message["html"].lower()
        assert "http://" not in message["html"] and "https://" not in message["html"]  # nothing to fetch
        assert f"Appointments: {stored['metrics']['appointments']['total']}" in message["text"]
        (attachment,) = message["attachments"]
        assert (attachment["filename"], attachment["type"]) == (f"report_{doc_id}.csv", "text/csv")
        rows = list(csv.DictReader(io.StringIO(base64.b64decode(attachment["content"]).decode("utf-8"))))
        values = {(r["section"], r["item"], r["metric"]): r["value"] for r in rows}
        m = stored["metrics"]
        for status in STATUSES:
            assert values[("appointments", "", status)] == str(m["appointments"][status])
        assert values[("revenue", "", "completed_revenue_cents")] == str(m["revenue_cents"])
        assert values[("bookings", "", "new_bookings")] == str(m["new_bookings"])
        assert values[("rates", "", "no_show_rate")] == ("" if m["no_show_rate"] is None else str(m["no_show_rate"]))
        for day in m["days"]:
            assert values[("day", day["date"], "appointments")] == str(day["appointments"])
        for provider in m["providers"]:
            assert values[("provider", provider["name"], "booked_hours")] == str(provider["booked_hours"])
            assert values[("provider", provider["name"], "revenue_cents")] == str(provider["revenue_cents"])
        for channel in ("sms", "email"):
            for state in ("sent", "delivered", "failed"):
                assert values[("reminders", channel, state)] == str(m["messages"]["reminders"][channel][state])
        assert values[("failed_tasks", "", "open")] == str(m["open_failed_tasks"])
        assert values[("change", "revenue_cents", "previous")] == str(m["change"]["revenue_cents"]["previous"])
        assert len(rows) == len(values)  # no figure twice

    # the same tick again: the same document, no second task, no second email
    again = tick(stack, "reports-tick", body, logs, "reports tick done")
    # The task's name is refused while it exists (and for an hour after, in the cloud); the emulator may
    # accept it again once dispatched, so a second task can exist: the ledger keys still send nothing.
    requeued = again.get("emails_queued", 0)
    assert again.get("emails_already_queued", 0) + requeued == 1
    assert report_doc(firestore_client, doc_id)["metrics"] == stored["metrics"]
    assert [d.id for d in firestore_client.collection("reports").stream()] == [doc_id]
    # and the email task delivered again (a redelivery, or an operator's retry): a duplicate, nothing sent
    task = ReportEmailTask(seed.a, "weekly", date(2026, 10, 26))
    response = post(stack, task.to_json())
    assert response.status_code == 200 and response.json()["outcome"] == "duplicate"
    handler.wait_for(
        lambda line: line.get("task_type") == "report_email" and line.get("outcome") == "duplicate", 1 + requeued
    )
    for address in seed.managers:
        assert len(sandbox.messages(to=address, channel="email")) == 1
    # (earlier tests' email tasks may still land in this wiped database: count this report's only)
    ledger = [d.to_dict() for d in firestore_client.collection("notifications").stream()]
    ledger = [d for d in ledger if d.get("kind") == "report_email" and d.get("report_id") == doc_id]
    assert len(ledger) == 2 and {d["state"] for d in ledger} <= {"sent", "delivered"}
    # the tick for clinic A touched nothing of clinic B's
    assert sandbox.messages(to=seed.b_manager) == []
    assert not firestore_client.collection("reports").document(f"{seed.b}_weekly_2026-10-26").get().exists


def test_a_tick_for_every_clinic_builds_each_once_and_an_empty_period_says_so(stack, firestore_client, sandbox):
    seed = Seed()
    seed.write(firestore_client)
    logs = FunctionLogs(stack, "report-builder", WAIT)
    summary = tick(stack, "reports-tick", {"period": "daily", "date": "2026-11-20"}, logs, "reports tick done")
    assert summary["clinics"] == 2 and summary["reports"] == 2 and summary["empty_reports"] == 2
    for clinic in (seed.a, seed.b):
        doc = report_doc(firestore_client, f"{clinic}_daily_2026-11-20")
        assert doc["metrics"]["empty"] is True and doc["metrics"]["appointments"]["total"] == 0
    (message,) = emails_to(sandbox, seed.b_manager, 1)
    assert "No appointments in this period." in message["text"] and "No appointments in this period." in message["html"]


def test_malformed_ticks_are_rejected_clearly_and_acknowledged(stack, firestore_client):
    seed = Seed()
    seed.write(firestore_client)
    logs, bridge = FunctionLogs(stack, "report-builder", WAIT), FunctionLogs(stack, "pubsub_bridge", WAIT)
    inventory_logs = FunctionLogs(stack, "inventory-check", WAIT)
    bad = publish(
        stack,
        "reports-tick",
        [
            b"not json",
            b"{}",
            b'{"period": "monthly"}',
            b'{"period": "daily", "date": "2026-02-30"}',
            b'{"period": "daily", "clinicId": "x"}',
            json.dumps({"period": "daily", "clinic_id": "nowhere-" + seed.a}).encode(),
            b'{"period": "daily", "date": "2199-01-01"}',
        ],
    )
    rejected = logs.wait_for(lambda line: bool(line.get("event_id") in bad and line.get("error_code")), count=len(bad))
    assert sorted(line["error_code"] for line in rejected) == sorted(
        ["malformed_json", "bad_period", "bad_period", "bad_date", "unknown_field", "unknown_clinic", "date_in_future"]
    )
    assert all(line["message"] == "reports tick rejected; acknowledged" for line in rejected)
    bad_inventory = publish(stack, "inventory-tick", [b'{"period": "daily"}', b'{"date": "2020-01-01"}'])
    codes = inventory_logs.wait_for(
        lambda line: bool(line.get("event_id") in bad_inventory and line.get("error_code")), 2
    )
    assert sorted(line["error_code"] for line in codes) == ["date_out_of_range", "unknown_field"]
    every = {*bad, *bad_inventory}
    bridge.wait_for(lambda line: line.get("message") == "delivered" and line.get("messageId") in every, len(every))
    assert not [line for line in bridge.lines() if line.get("messageId") in every and line.get("status") != 200]
    assert list(firestore_client.collection("reports").stream()) == []


def test_inventory_check_drafts_once_and_alerts_once_and_names_a_broken_product(stack, firestore_client, sandbox):
    seed = Seed()
    products = {
        "below": (2, 5, True),
        "at": (5, 5, True),
        "above": (6, 5, True),
        "inactive": (0, 5, False),
    }
    for name, (on_hand, point, active) in products.items():
        seed.docs["products"][f"{seed.a}-{name}"] = {
            "clinic_id": seed.a,
            "name": f"Product {name}",
            "sku": f"SKU-{name.upper()}",
            "unit": "vial",
            "on_hand": on_hand,
            "reorder_point": point,
            "reorder_qty": 12,
            "active": active,
        }
    seed.docs["products"][f"{seed.a}-broken"] = {"clinic_id": seed.a, "name": "Broken", "sku": "X", "on_hand": "3"}
    seed.docs["products"][f"{seed.b}-low"] = {
        "clinic_id": seed.b,
        "name": "B low",
        "sku": "B",
        "on_hand": 0,
        "reorder_point": 1,
        "reorder_qty": 1,
    }
    seed.write(firestore_client)
    logs, handler = FunctionLogs(stack, "inventory-check", WAIT), FunctionLogs(stack, "task-handler", WAIT)
    today = datetime.now(UTC).astimezone(NY).date()
    first = tick(stack, "inventory-tick", {"clinic_id": seed.a}, logs, "inventory tick done")
    second = tick(stack, "inventory-tick", {"clinic_id": seed.a}, logs, "inventory tick done")
    assert (first["drafts_created"], first["alerts_queued"], first["to_reorder"]) == (1, 1, 2)
    assert second["drafts_already_there"] == 1 and "drafts_created" not in second
    assert first["invalid"] == [{"collection": "products", "doc_id": f"{seed.a}-broken", "field": "on_hand"}]
    warnings = logs.wait_for(
        lambda line: line.get("doc_id") == f"{seed.a}-broken" and line.get("field") == "on_hand", 2
    )
    assert all(line["severity"] == "WARNING" for line in warnings)
    orders = {d.id: d.to_dict() for d in firestore_client.collection("purchase_orders").stream()}
    assert list(orders) == [f"{seed.a}_{today.isoformat()}"]
    order = orders[f"{seed.a}_{today.isoformat()}"]
    assert order["status"] == "draft" and order["date"] == today.isoformat()
    assert [(line["product_id"], line["qty"]) for line in order["lines"]] == [
        (f"{seed.a}-at", 12),
        (f"{seed.a}-below", 12),
    ]
    (alert,) = emails_to(sandbox, seed.inventory, 1)
    assert "Product below (SKU-BELOW): 2 vial on hand, reorder point 5, order 12" in alert["text"]
    assert "Product above" not in alert["text"] and "Product inactive" not in alert["text"]
    assert f"{seed.a}-broken: on_hand" in alert["text"]
    third = tick(stack, "inventory-tick", {"clinic_id": seed.a}, logs, "inventory tick done")
    assert third["drafts_already_there"] == 1
    response = post(stack, {"type": "inventory_alert", "v": 1, "clinic_id": seed.a, "date": today.isoformat()})
    assert response.json()["outcome"] == "duplicate"
    # a re-run's task, if the emulator took its name again once the first was dispatched, is a duplicate too
    requeued = second.get("alerts_queued", 0) + third.get("alerts_queued", 0)
    handler.wait_for(
        lambda line: line.get("task_type") == "inventory_alert" and line.get("outcome") == "duplicate", 1 + requeued
    )
    assert len(sandbox.messages(to=seed.inventory)) == 1


def test_ops_builds_one_report_on_demand(stack, firestore_client):
    seed = Seed()
    seed.write(firestore_client)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops",
            "report",
            "--clinic",
            seed.a,
            "--period",
            "weekly",
            "--date",
            "2026-10-29",
            "--no-email",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["report"] == f"{seed.a}_weekly_2026-10-26"
    assert report_doc(firestore_client, printed["report"])["metrics"] == expected(seed, seed.a, NY, *WEEK, weekly=True)
    assert printed["metrics"]["appointments"] == expected(seed, seed.a, NY, *WEEK, weekly=True)["appointments"]


# ------------------------------------------------------------------------------------- the screenshot


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(line)
        previous = line
    pixels = [tuple(row[x : x + 3]) for row in rows for x in range(0, stride, channels)]
    return width, height, pixels  # type: ignore[return-value]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_the_report_html_renders_with_visible_bars_in_headless_chromium(stack, firestore_client, sandbox, tmp_path):
    browser = chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): the screenshot check needs it")
    seed = Seed()
    seed.write(firestore_client)
    logs = FunctionLogs(stack, "report-builder", WAIT)
    tick(
        stack,
        "reports-tick",
        {"period": "weekly", "date": "2026-10-26", "clinic_id": seed.a},
        logs,
        "reports tick done",
    )
    (message,) = emails_to(sandbox, seed.managers[0], 1)
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    page.write_text(message["html"], encoding="utf-8")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=700,1600",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    keep = Path(stack.state_dir) / "report-screenshot.png"
    keep.write_bytes(shot.read_bytes())  # for a person to look at
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (700, 1600)
    colours = Counter(pixels)
    assert len(colours) > 50, "a blank page has a handful of colours"
    background = colours.most_common(1)[0][1]
    assert background < 0.9 * len(pixels), "the page is nearly all one colour"
    bar = sum(n for rgb, n in colours.items() if all(abs(a - b) <= 6 for a, b in zip(rgb, BAR_RGB, strict=True)))
    busiest = max(
        day["appointments"] for day in report_doc(firestore_client, f"{seed.a}_weekly_2026-10-26")["metrics"]["days"]
    )
    assert busiest > 0
    assert bar > 2000, f"only {bar} pixels in the bars' colour: the bars are not visible"


def failed_task(db: Any, clinic_id: str, code: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def recorded() -> bool:
        docs = db.collection("failed_tasks").where(filter=FieldFilter("clinic_id", "==", clinic_id)).stream()
        found[:] = [d.to_dict() for d in docs if d.to_dict().get("error_code") == code]
        return bool(found)

    assert wait_until(recorded, WAIT), f"no failed_tasks record {code} for {clinic_id}"
    return found[0]


def test_a_malformed_manager_address_costs_nobody_else_the_report_and_is_recorded_masked(
    stack, firestore_client, sandbox
):
    seed = Seed()
    typo = f"owner-{seed.a[-6:]}.glow.example.com"  # the @ forgotten
    seed.docs["clinics"][seed.a]["manager_emails"] = [seed.managers[0], typo, seed.managers[1]]
    seed.write(firestore_client)
    logs = FunctionLogs(stack, "report-builder", WAIT)
    body = {"period": "weekly", "date": "2026-10-26", "clinic_id": seed.a}
    summary = tick(stack, "reports-tick", body, logs, "reports tick done")
    assert summary["reports"] == 1 and summary["emails_queued"] == 1
    assert summary["problems"] == {"invalid_recipient": 1}
    for address in seed.managers:
        (message,) = emails_to(sandbox, address, 1)
        assert message["subject"] == "Glow Aesthetics: weekly report, 26 Oct – 1 Nov 2026"
    record = failed_task(firestore_client, seed.a, "invalid_recipient")
    assert record["task_type"] == "report_email" and record["status"] == "open"
    assert "manager_emails[1]" in record["error"] and typo not in json.dumps(record, default=str)


def test_a_day_not_over_is_refused_unless_asked_partial_and_then_the_email_says_so(stack, firestore_client, sandbox):
    seed = Seed()
    seed.write(firestore_client)
    logs = FunctionLogs(stack, "report-builder", WAIT)
    today = datetime.now(UTC).astimezone(NY).date()
    body = {"period": "daily", "date": today.isoformat(), "clinic_id": seed.a}
    (refused,) = publish(stack, "reports-tick", [json.dumps(body).encode()])
    (line,) = logs.wait_for(lambda line: bool(line.get("event_id") == refused and line.get("error_code")))
    assert (line["message"], line["error_code"]) == ("reports tick rejected; acknowledged", "period_not_ended")
    doc_id = f"{seed.a}_daily_{today.isoformat()}"
    assert not firestore_client.collection("reports").document(doc_id).get().exists

    summary = tick(stack, "reports-tick", {**body, "partial": True}, logs, "reports tick done")
    assert summary["reports"] == 1 and summary["emails_queued"] == 1
    assert report_doc(firestore_client, doc_id)["partial"] is True
    for address in seed.managers:
        (message,) = emails_to(sandbox, address, 1)
        assert "(PARTIAL, as of " in message["subject"] and "Partial report:" in message["text"]


def test_ops_refuses_a_day_that_has_not_ended_unless_told_partial(stack, firestore_client):
    from datetime import datetime

    seed = Seed()
    seed.write(firestore_client)
    today = datetime.now(NY).date().isoformat()
    command = [sys.executable, "-m", "ops", "report", "--clinic", seed.a, "--period", "daily", "--date", today]
    refused = subprocess.run([*command, "--no-email"], capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and "period_not_ended" in refused.stdout + refused.stderr
    built = subprocess.run(
        [*command, "--no-email", "--partial"], capture_output=True, text=True, timeout=120, check=False
    )
    assert built.returncode == 0, built.stderr
    assert report_doc(firestore_client, json.loads(built.stdout)["report"])["partial"] is True
