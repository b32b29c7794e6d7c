"""Follow-ups that act (docs/feedback.md) through the real local stack: completed visits in Firestore, the
reminders tick published on Pub/Sub and run by the fan-out functions, the check-in and the survey sent by
the task handler through the provider sandbox at the visit's local time, patients' replies as signed
inbound webhooks, the emailed survey's page served by feedback-page, and the routing's tasks (the review
link, the managers' alert) run by the task handler.

Every instant is in the future of the machine's clock, on a Tuesday in New York: the Cloud Tasks emulator
dispatches a task only once the stack's clock (moved with set_local_clock) passes its schedule time, so
"sent at the right local time" is "not sent before the clock reached it, sent once it did". The clinic has
its own id and sender number (the functions cache clinics for a minute).
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
from google.cloud.firestore_v1.base_query import FieldFilter
from twilio.request_validator import RequestValidator

from local.config import StackConfig
from local.processes import wait_until
from local.sandbox.settings import DEFAULT_AUTH_TOKEN
from shared.feedback.surveys import low_request_id
from shared.feedback.tasks import review_key
from shared.messaging.appointment_tasks import CHECKIN, FOLLOWUP
from shared.messaging.keys import message_key
from shared.platform.emulator import set_local_clock
from tests.builders import appointment_doc, patient_doc
from tests.handler_support import Sandbox
from tests.stack_logs import FunctionLogs, publish

pytestmark = pytest.mark.integration

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
WAIT = 60.0
REVIEW_URL = "https://g.page/r/glow-feedback/review"
MANAGER = "manager@glow-feedback.example.com"
LEAD = timedelta(seconds=15)  # a tick runs this long before the messages it plans are due
SENT = ("sent", "delivered")
_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)
_SENDERS = itertools.count(uuid.uuid4().int % 10_000)


def visit_day() -> date:
    """A Tuesday at least 10 days ahead: its check-in on Thursday, its survey the next Tuesday, no DST between."""
    day = date.today() + timedelta(days=10)
    while day.weekday() != 1 or (day + timedelta(days=8)).month in (3, 11):
        day += timedelta(days=1)
    return day


DAY = visit_day()


def ny(days: int, hour: int, minute: int = 0) -> datetime:
    """Wall time in New York, `days` after the visits' day, as a UTC instant."""
    return datetime.combine(DAY + timedelta(days=days), time(hour, minute), tzinfo=NY).astimezone(UTC)


def reply_of(twiml: str) -> str:
    found = _MESSAGE.search(twiml)
    return found.group(1) if found else ""


class Clinic:
    """One clinic's documents on the emulator and the requests its patients make."""

    def __init__(self, stack: StackConfig, sandbox: Sandbox, db: Any) -> None:
        self.stack, self.sandbox, self.db = stack, sandbox, db
        self.id = f"clinic-fb-{uuid.uuid4().hex[:8]}"
        self.sms_from = f"+1646556{next(_SENDERS) % 10_000:04d}"
        self.inbound_url = stack.url("waitlist-inbound-sms")
        db.collection("clinics").document(self.id).set(
            {
                "name": "Glow Feedback",
                "timezone": "America/New_York",
                "phone": "+12125550142",
                "sms_from": self.sms_from,
                "email_from": "hello@glow-feedback.example.com",
                "manager_emails": [MANAGER],
                "feedback": {"checkin_days": 2, "review_url": REVIEW_URL},
            }
        )
        self.patients: dict[str, dict[str, Any]] = {}

    def visit(self, name: str, **patient: Any) -> str:
        """A patient and their completed visit, 10:00-11:00 New York time on DAY: the appointment id."""
        patient_id = f"pat-{name}-{uuid.uuid4().hex[:6]}"
        doc = patient_doc(
            patient_id, self.id, first_name=name, phone=f"+1718555{uuid.uuid4().int % 10_000:04d}", **patient
        )
        self.db.collection("patients").document(patient_id).set(doc)
        self.patients[name] = {"id": patient_id, **doc}
        appointment_id = f"appt-{name}-{uuid.uuid4().hex[:6]}"
        self.db.collection("appointments").document(appointment_id).set(
            appointment_doc(self.id, patient_id, ny(0, 10), status="completed")
        )
        return appointment_id

    def tick(self, day: date) -> None:
        """The reminders tick for this clinic's `day`, as Cloud Scheduler publishes it (with a date: a replay)."""
        payload = json.dumps({"clinic_id": self.id, "date": day.isoformat()}).encode()
        units = FunctionLogs(self.stack, "reminder-fanout-unit", timeout=WAIT)
        publish(self.stack, "reminders-tick", [payload])
        (done,) = units.wait_for(
            lambda line: line.get("message") == "fan-out unit done" and line.get("clinic_id") == self.id
        )
        assert done["failed"] == 0

    def ledger(self, key: str) -> dict[str, Any]:
        snapshot = self.db.collection("notifications").document(key).get()
        return snapshot.to_dict() or {} if snapshot.exists else {}

    def doc(self, path: str) -> dict[str, Any]:
        snapshot = self.db.document(path).get()
        return (snapshot.to_dict() or {}) if snapshot.exists else {}

    def outbound(self, name: str, channel: str = "sms") -> list[dict[str, Any]]:
        to = self.patients[name]["phone" if channel == "sms" else "email"]
        return [m for m in self.sandbox.messages(to=to, channel=channel) if m["direction"] == "outbound"]

    def wait_outbound(self, name: str, count: int, channel: str = "sms") -> list[dict[str, Any]]:
        assert wait_until(lambda: len(self.outbound(name, channel)) >= count, WAIT), self.outbound(name, channel)
        return self.outbound(name, channel)

    def text(self, name: str, body: str, sid: str | None = None) -> tuple[int, str]:
        """The patient texts the clinic: Twilio's signed inbound webhook. (status, the reply's text)"""
        form = {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": self.patients[name]["phone"],
            "To": self.sms_from,
            "Body": body,
            "NumMedia": "0",
        }
        signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(self.inbound_url, form)
        response = requests.post(self.inbound_url, data=form, headers={"X-Twilio-Signature": signature}, timeout=30)
        return response.status_code, reply_of(response.text)

    def requests_of(self, name: str) -> list[dict[str, Any]]:
        query = self.db.collection("patient_requests").where(
            filter=FieldFilter("patient_id", "==", self.patients[name]["id"])
        )
        return [snapshot.to_dict() or {} for snapshot in query.stream()]


@pytest.fixture
def clinic(stack: StackConfig, sandbox: Sandbox, firestore_client: Any) -> Iterator[Clinic]:
    yield Clinic(stack, sandbox, firestore_client)
    set_local_clock(stack.clock_file, None)


def test_a_visit_gets_its_check_in_and_survey_on_time_once_and_every_answer_acts_once(clinic, stack):
    ann, bob, cat = clinic.visit("Ann"), clinic.visit("Bob"), clinic.visit("Cat", preferred_channel="email")
    start = ny(0, 10)
    checkin = {a: message_key(CHECKIN, a, start, None) for a in (ann, bob, cat)}
    survey = {a: message_key(FOLLOWUP, a, start, None) for a in (ann, bob, cat)}

    # The tick for Thursday plans the check-ins of Tuesday's visits, due Thursday 11:00 in New York; a
    # redelivered tick plans nothing twice. (The emulator's dispatch waits on the stack's clock as it stood
    # when a task was created: the ticks run shortly before the send time, so the test waits seconds, not days.)
    set_local_clock(stack.clock_file, ny(2, 11) - LEAD)
    clinic.tick(DAY + timedelta(days=2))
    clinic.tick(DAY + timedelta(days=2))
    for key in checkin.values():
        entry = clinic.ledger(key)
        assert entry["state"] == "scheduled" and entry["send_at"] == ny(2, 11)
    (ann_checkin,) = clinic.wait_outbound("Ann", 1)
    assert "checking in" in ann_checkin["body"] and "HydraFacial" not in ann_checkin["body"]
    assert wait_until(lambda: all(clinic.ledger(k).get("state") in SENT for k in checkin.values()), WAIT)
    assert all(clinic.ledger(k)["sent_at"] >= ny(2, 11) for k in checkin.values())  # never before its time

    # The tick for the next Tuesday plans the surveys, due at 11:00 that day.
    set_local_clock(stack.clock_file, ny(7, 11) - LEAD)
    clinic.tick(DAY + timedelta(days=7))
    assert {clinic.ledger(k)["send_at"] for k in survey.values()} == {ny(7, 11)}
    ann_survey = clinic.wait_outbound("Ann", 2)[-1]
    assert "Reply with a number from 1 to 5" in ann_survey["body"]
    clinic.wait_outbound("Bob", 2)
    (cat_email,) = [m for m in clinic.wait_outbound("Cat", 2, "email") if "How was your visit" in m["subject"]]
    assert wait_until(lambda: all(clinic.doc(f"feedback/{a}").get("asked_at") for a in (ann, bob, cat)), WAIT)
    assert all(clinic.ledger(k)["sent_at"] >= ny(7, 11) for k in survey.values())

    # Ann answers 5: thanked, and the review link follows once, as its own message; Twilio's retry of her
    # text (the same MessageSid) answers the same and changes nothing.
    sid = "SM" + uuid.uuid4().hex
    status, thanks = clinic.text("Ann", "5", sid)
    assert status == 200 and "Thank you" in thanks
    assert clinic.text("Ann", "5", sid) == (200, thanks)
    assert clinic.doc(f"feedback/{ann}")["refs"] == [sid]
    review = clinic.wait_outbound("Ann", 3)[-1]
    assert REVIEW_URL in review["body"]
    assert clinic.ledger(review_key(ann))["state"] in SENT

    # Bob answers 1: the managers are emailed and the front desk has a request; no review link ever.
    status, sorry = clinic.text("Bob", "1")
    assert status == 200 and "will contact you" in sorry
    alerts = clinic.sandbox.messages(to=MANAGER, channel="email")
    assert wait_until(lambda: len(clinic.sandbox.messages(to=MANAGER, channel="email")) == 1, WAIT), alerts
    (alert,) = clinic.sandbox.messages(to=MANAGER, channel="email")
    assert "1/5" in alert["subject"] and "Bob" in alert["text"]
    request = clinic.doc(f"patient_requests/{low_request_id(bob)}")
    assert (request["kind"], request["appointment_id"], request["status"]) == ("feedback_low_score", bob, "open")
    # "7" and "five" are no score: Bob is asked for a number, the score stays 1; free text reaches the desk.
    for body in ("7", "five"):
        status, again = clinic.text("Bob", body)
        assert status == 200 and "number from 1 to 5" in again
    status, _ = clinic.text("Bob", "The room was cold")
    assert status == 200 and {r["kind"] for r in clinic.requests_of("Bob")} == {
        "feedback_low_score",
        "feedback_comment",
    }
    bob_doc = clinic.doc(f"feedback/{bob}")
    assert (bob_doc["score"], bob_doc["invalid"], bob_doc["low"]) == (1, 2, True)

    # Cat answers on the emailed page: GET shows the question and records nothing, POST records 4, once.
    link = next(word for word in cat_email["text"].split() if word.startswith(stack.url("feedback-page")))
    token = parse_qs(urlsplit(link).query)["t"][0]
    page = requests.get(link, timeout=30)
    assert page.status_code == 200 and 'value="5"' in page.text
    assert clinic.doc(f"feedback/{cat}")["score"] is None
    for _ in range(2):
        answered = requests.post(link.split("?")[0], data={"t": token, "score": "4"}, timeout=30)
        assert answered.status_code == 200 and "Thank you" in answered.text
    assert (clinic.doc(f"feedback/{cat}")["score"], clinic.doc(f"feedback/{cat}")["source"]) == (4, "link")
    cat_review = [m for m in clinic.wait_outbound("Cat", 3, "email") if REVIEW_URL in (m["text"] or "")]
    assert len(cat_review) == 1
    assert (
        requests.post(link.split("?")[0], data={"t": token[:-3] + "xyz", "score": "4"}, timeout=30).status_code == 403
    )

    # Once each: two check-ins' and three surveys' worth of ticks and retries sent nothing twice.
    assert [len(clinic.outbound(n)) for n in ("Ann", "Bob")] == [3, 2]
    assert not [m for m in clinic.outbound("Bob") if REVIEW_URL in m["body"]]
    assert len(clinic.sandbox.messages(to=MANAGER, channel="email")) == 1
