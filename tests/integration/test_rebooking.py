"""Rebooking nudges and "we missed you" through the real local stack (docs/rebooking.md): clinic, patients and
appointments on the Firestore emulator, the reminders tick run by `run_tick` (the units the reminder-fanout
functions run), its messages as named Cloud Tasks that the emulator dispatches to the task handler once the
stack's clock reaches them, every SMS through the Twilio sandbox, then the report built from what happened.

The visit day V is ~10 days ahead of the real clock, so every instant here is ahead of it: the stack's clock
is moved to the tick (V+89, 05:30 in New York: the tick for V+90), then to V+90 at noon, when the nudges
(V+90 at the visit's end, 11:00) and the "we missed you" (V+89 at 10:00, the day after a V+88 no-show) are due;
the emulator timed each task on the tick's clock, so the test then runs them (RunTask, as an operator can).
Ids carry a per-test suffix: Cloud Tasks queues are not wiped between tests.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from local.config import StackConfig
from local.processes import wait_until
from local.sandbox.server import make_app
from local.sandbox.settings import SandboxSettings
from local.sandbox.state import Sandbox
from shared.campaigns.wording import STOP_LINE
from shared.consent.consents import ConsentEvent, Consents, ConsentStatus, Purpose
from shared.contract.events import TickRequest
from shared.contract.models import Clinic
from shared.messaging.keys import message_key
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.emulator import set_local_clock
from shared.platform.settings import settings
from shared.rebooking.tasks import NO_SHOW, REBOOK
from shared.reminders.coordinator import run_tick
from shared.reminders.fanout import Fanout
from shared.reminders.scheduler import Queues
from shared.reports.builder import ReportBuilder
from shared.reports.periods import Period, period_of
from shared.reports.render import report_text
from shared.reports.report_docs import Reports
from shared.tasks.queue import CloudTasksQueue
from tests.builders import appointment_doc, patient_doc

pytestmark = pytest.mark.integration

NY = ZoneInfo("America/New_York")
VISIT_DAY = date.today() + timedelta(days=10)
WAIT = 45.0


def at(days: int, hour: int, minute: int = 0) -> datetime:
    """Wall time in New York `days` after the visit day, as a UTC instant."""
    return datetime.combine(VISIT_DAY + timedelta(days=days), time(hour, minute), tzinfo=NY).astimezone(timezone.utc)


TICK = at(89, 5, 30)  # the tick for V+90, run on V+89
DUE = at(90, 12)  # every message of this test is due


@pytest.fixture
def local_clock(stack: StackConfig) -> Iterator[Any]:
    path = stack.state_dir / "clock.json"
    yield lambda instant: set_local_clock(path, instant)
    set_local_clock(path, None)


class Scene:
    def __init__(self, db: Any) -> None:
        self.db, self.run = db, uuid.uuid4().hex[:8]
        self.clinic = f"clinic-rebook-{self.run}"
        self.phones: dict[str, str] = {}
        db.collection("clinics").document(self.clinic).set(
            {
                "name": "Glow Aesthetics",
                "timezone": "America/New_York",
                "phone": "+12125550142",
                "sms_from": f"+1212556{uuid.uuid4().int % 10000:04d}",
                "email_from": "hello@glow.example.com",
                "quiet_hours": {"start": "21:00", "end": "08:00"},
                "services": {"Botox": {"rebook_after_days": 90}, "HydraFacial": {}},
                "no_show_message": True,
            }
        )

    def patient(self, name: str, *, consent: bool = True) -> str:
        patient_id = f"pat-{name}-{self.run}"
        phone = f"+1212555{len(self.phones) + 2000 + uuid.uuid4().int % 7000:04d}"
        self.db.collection("patients").document(patient_id).set(
            patient_doc(patient_id, self.clinic, phone=phone, first_name=name.capitalize())
        )
        self.phones[patient_id] = phone
        if consent:
            Consents(clients.store(), system_clock).record(
                ConsentEvent(
                    patient_id,
                    self.clinic,
                    Purpose.MARKETING,
                    "sms",
                    ConsentStatus.GRANTED,
                    system_clock.now(),
                    "booking_form",
                    "v1",
                    f"ev-{patient_id}",
                )
            )
        return patient_id

    def visit(self, patient_id: str, start: datetime, status: str, service: str = "Botox", **fields: Any) -> str:
        appointment_id = f"appt-{uuid.uuid4().hex[:10]}"
        created = start - timedelta(days=7)
        doc = appointment_doc(
            self.clinic, patient_id, start, service_name=service, status=status, **{"created_at": created, **fields}
        )
        self.db.collection("appointments").document(appointment_id).set(doc)
        return appointment_id

    def key(self, kind: str, appointment_id: str) -> str:
        doc = self.db.collection("appointments").document(appointment_id).get().to_dict()
        return message_key(kind, appointment_id, doc["start"], None)

    def ledger(self, key: str) -> dict[str, Any]:
        snapshot = self.db.collection("notifications").document(key).get()
        return snapshot.to_dict() if snapshot.exists else {}

    def settled(self, key: str) -> dict[str, Any]:
        assert wait_until(lambda: self.ledger(key).get("state") in ("sent", "delivered", "skipped"), WAIT), self.ledger(
            key
        )
        return self.ledger(key)


def run_due(stack: StackConfig, clinic_id: str) -> int:
    """Dispatch now every queued message task of this clinic (Cloud Tasks' RunTask): the emulator fixed each one's
    wait when it was created, on the clock of the tick, and the stack's clock has jumped since."""
    config, client, ran = settings(), clients.tasks(), 0
    for queue in (config.queue_sms, config.queue_email):
        for task in client.list_tasks(parent=stack.queue_path(queue)):
            if json.loads(task.http_request.body).get("clinic_id") == clinic_id:
                client.run_task(name=task.name)
                ran += 1
    return ran


def fanout() -> Fanout:
    config = settings()
    return Fanout(
        store=clients.store(),
        tasks=CloudTasksQueue(clients.tasks(), config),
        queues=Queues(sms=config.queue_sms, email=config.queue_email),
        clock=system_clock,
    )


def test_nudges_and_we_missed_you_go_once_and_skip_who_rebooked(stack, firestore_client, local_clock, sandbox):
    scene = Scene(firestore_client)
    ana, ben, cleo = scene.patient("ana"), scene.patient("ben"), scene.patient("cleo", consent=False)
    dina, eli = scene.patient("dina"), scene.patient("eli")
    nudged = scene.visit(ana, at(0, 10), "completed")  # Botox, 90 days: nudged on V+90 at 11:00
    rebooked = scene.visit(ben, at(0, 10), "completed")
    scene.visit(ben, at(30, 10), "completed", service="HydraFacial")  # ben came back since
    no_consent = scene.visit(cleo, at(0, 14), "completed")
    facial = scene.visit(cleo, at(-5, 16), "completed", service="HydraFacial")  # no rebook_after_days
    missed = scene.visit(dina, at(88, 10), "no_show")
    missed_rebooked = scene.visit(eli, at(88, 11), "no_show")
    scene.visit(eli, at(95, 11), "booked", created_at=at(88, 15))  # eli booked again that afternoon

    local_clock(TICK)
    first = run_tick(TickRequest(clinic_id=scene.clinic), fanout(), now=TICK)
    assert first.created == 5 and not first.failed, first.summary()
    assert scene.ledger(scene.key(REBOOK, facial)) == {}
    replay = run_tick(TickRequest(clinic_id=scene.clinic), fanout(), now=TICK)
    assert replay.created == 0 and replay.already_present == 5, replay.summary()  # a replayed tick: nothing new
    nudge = scene.ledger(scene.key(REBOOK, nudged))
    assert nudge["state"] == "scheduled" and nudge["send_at"] == at(90, 11)  # the visit's end, 90 days on
    assert scene.ledger(scene.key(NO_SHOW, missed))["send_at"] == at(89, 10)  # the day after, same wall time

    local_clock(DUE)
    assert run_due(stack, scene.clinic) == 5
    assert scene.settled(scene.key(REBOOK, nudged))["state"] in ("sent", "delivered")
    assert scene.settled(scene.key(REBOOK, rebooked))["reason"] == "rebooked"
    assert scene.settled(scene.key(REBOOK, no_consent))["reason"] == "no_marketing_consent"
    assert scene.settled(scene.key(NO_SHOW, missed))["state"] in ("sent", "delivered")
    assert scene.settled(scene.key(NO_SHOW, missed_rebooked))["reason"] == "rebooked"

    texts = {p: [m for m in sandbox.messages(channel="sms") if m["to"] == phone] for p, phone in scene.phones.items()}
    assert {p: len(found) for p, found in texts.items()} == {ana: 1, ben: 0, cleo: 0, dina: 1, eli: 0}
    assert texts[ana][0]["body"].endswith(STOP_LINE) and "Botox" not in texts[ana][0]["body"]
    assert "missed you" in texts[dina][0]["body"] and "STOP" not in texts[dina][0]["body"]
    record = firestore_client.collection("send_records").document(scene.key(REBOOK, nudged)).get().to_dict()
    assert record["purpose"] == "marketing" and record["basis"] == f"consent:ev-{ana}"

    again = run_tick(TickRequest(clinic_id=scene.clinic), fanout(), now=TICK)  # replayed after the sends
    assert again.created == 0, again.summary()
    assert len([m for m in sandbox.messages(channel="sms") if m["to"] in scene.phones.values()]) == 2

    # Ana books two days after her nudge: the report's rebooking section counts it.
    scene.visit(ana, at(100, 10), "booked", created_at=at(92, 9))
    clinic_doc = firestore_client.collection("clinics").document(scene.clinic).get().to_dict()
    clinic = Clinic.from_doc(scene.clinic, clinic_doc)
    period = period_of(Period.DAILY, VISIT_DAY + timedelta(days=90), NY)
    builder = ReportBuilder(store=clients.store(), tasks=fanout().tasks, queue=settings().queue_reports)
    built = builder.build(clinic, period, now=at(93, 6), email=False)
    report = Reports(clients.store()).load(built.ids[0])
    assert report is not None and report.journeys is not None
    assert report.journeys["rebooking"] == {
        "rebook_nudges_sent": 1,
        "bookings_after_nudges": 1,
        "nudge_conversion": 1.0,
        "no_show_messages_sent": 0,  # dina's went on V+89, the day before this report's
        "rebookings_after_no_show": 0,
    }
    assert "Rebooking and no-shows" in report_text(report, "Glow Aesthetics")
    # the console's report page shows the section as the email does
    box = Sandbox(SandboxSettings(account_sid="AC" + "ef" * 16, auth_token="t", sendgrid_api_key="SG.x"))
    try:
        page = make_app(box).test_client().get(f"/reports/{report.id}").get_data(as_text=True)
    finally:
        box.close()
    section = page.split('<div id="journeys">', 1)[1].split("</div>", 1)[0]
    assert "Rebooking and no-shows" in section and '<td>Rebooking nudges sent</td><td class="mono">1</td>' in section
