"""reminder_fanout through the real local stack: Firestore, Cloud Tasks, Pub/Sub → bridge → staged function.

Every instant is around the next US spring-forward day at least a week away (New York's clocks jump
from 02:00 to 03:00 on the second Sunday of March), written as clinic-local wall times. So it is after
the machine's real clock: the Cloud Tasks emulator dispatches a task only once its schedule_time has
passed on the stack's clock, so every task created here stays listed in its queue and can be counted
with the official client's list_tasks. The functions' "now" is moved with the stack's local clock file
(shared.platform.emulator.set_local_clock); tests calling the service directly pass "now". Ids carry a
per-test suffix, because Cloud Tasks queues are not wiped between tests.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from local.config import StackConfig
from local.processes import wait_until
from shared.contract.clinic_time import in_quiet_hours
from shared.contract.events import AppointmentEvent, EventRejected, TickRequest
from shared.contract.models import Appointment, QuietHours
from shared.messaging.keys import message_key
from shared.messaging.ledger import Ledger, Planned
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.emulator import set_local_clock
from shared.platform.errors import RetryableError
from shared.platform.settings import settings
from shared.reminders.coordinator import AUDIT_SLICES, run_tick
from shared.reminders.fanout import Fanout, UnitQueue, handle_appointment_event, run_unit
from shared.reminders.fanout_summary import FanoutSummary
from shared.reminders.scheduler import Queues
from shared.reminders.units import ClinicDayTask
from shared.tasks.queue import CloudTasksQueue, TaskSpec, task_id
from shared.wiring.services import Services
from tests.fakes import FixedClock
from tests.stack_logs import FunctionLogs, publish

pytestmark = pytest.mark.integration

UTC = timezone.utc
NY, KOLKATA = ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")
DELIVERY_TIMEOUT = 60.0


def spring_forward_day(after: date) -> date:
    """The first second-Sunday-of-March after `after`: New York's spring-forward day."""
    year = after.year
    while True:
        first = date(year, 3, 1)
        day = first + timedelta(days=(6 - first.weekday()) % 7 + 7)
        if day > after:
            return day
        year += 1


DST = spring_forward_day(date.today() + timedelta(days=7))  # a Sunday: 23 hours long in New York


def ny(days: int, hour: int, minute: int = 0) -> datetime:
    """Wall time hour:minute in New York, `days` after the spring-forward day, as a UTC instant."""
    return datetime.combine(DST + timedelta(days=days), time(hour, minute), tzinfo=NY).astimezone(UTC)


def kol(days: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DST + timedelta(days=days), time(hour, minute), tzinfo=KOLKATA).astimezone(UTC)


# Tick 1 stands at 00:30 EST on the Friday in New York (11:00 IST in Kolkata): both clinics' tomorrow is
# Saturday. Tick 2 stands a day later: tomorrow is Sunday, the spring-forward day.
TICK_1 = ny(-2, 0, 30)
TICK_2 = ny(-1, 0, 30)


# --------------------------------------------------------------------------------------------- data


class Seed:
    """Documents of one test, ids suffixed so the shared task queues never mix tests."""

    def __init__(self) -> None:
        self.run = uuid.uuid4().hex[:8]
        self.docs: dict[str, dict[str, dict[str, Any]]] = {"clinics": {}, "patients": {}, "appointments": {}}

    def id(self, name: str) -> str:
        return f"{name}-{self.run}"

    def clinic(self, name: str, zone: str, offsets: tuple[int, ...] = (24, 2)) -> str:
        self.docs["clinics"][self.id(name)] = {
            "name": f"Clinic {name}",
            "timezone": zone,
            "phone": "+12125550100",
            "sms_from": "+12125550199",
            "email_from": "reminders@clinic.example.com",
            "reminder_offsets_hours": list(offsets),
            "quiet_hours": {"start": "21:00", "end": "08:00"},
        }
        return self.id(name)

    def appointment(
        self, name: str, clinic: str, start: datetime, *, status: str = "booked", prep: bool = False, **patient: Any
    ) -> str:
        patient_id = self.id(f"pat-{name}")
        self.docs["patients"][patient_id] = {
            "clinic_id": clinic,
            "first_name": "Harper",
            "last_name": "Okafor",
            "phone": "+12125550142",
            "email": f"harper.{name}@example.com",
            "preferred_channel": "sms",
            **patient,
        }
        self.docs["appointments"][self.id(name)] = {
            "clinic_id": clinic,
            "patient_id": patient_id,
            "provider_id": "prov-1",
            "provider_name": "Dr. Chen",
            "service_name": "Chemical peel" if prep else "Botox",
            "requires_prep": prep,
            "prep_instructions": "Avoid retinoids for 3 days." if prep else "",
            "start": start,
            "end": start + timedelta(hours=1),
            "status": status,
            "price_cents": 42000,
        }
        return self.id(name)

    def write(self, db: Any) -> None:
        batch = db.batch()
        for collection, docs in self.docs.items():
            for doc_id, fields in docs.items():
                batch.set(db.collection(collection).document(doc_id), fields)
        batch.commit()


def service(tasks: Any = None) -> Fanout:
    config = settings()
    return Fanout(
        store=clients.store(),
        tasks=tasks or CloudTasksQueue(clients.tasks(), config),
        queues=Queues(sms=config.queue_sms, email=config.queue_email),
        clock=system_clock,
    )


def ledger(db: Any, appointment_ids: set[str]) -> list[dict[str, Any]]:
    return [
        snap.to_dict() | {"key": snap.id}
        for snap in db.collection("notifications").stream()
        if (snap.to_dict() or {}).get("appointment_id") in appointment_ids
    ]


@functools.cache
def listing_client(address: str) -> Any:
    """The official client, allowed big answers: the emulator lists a whole queue in one message (no pages),
    over gRPC's default 4 MiB once a long-lived demo stack holds some thousands of tasks."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def queued(stack: StackConfig, appointment_ids: set[str]) -> list[dict[str, Any]]:
    """Every task in the reminder queues whose payload names one of these appointments."""
    config, client, found = settings(), listing_client(f"{stack.host}:{stack.tasks_port}"), []
    for queue in (config.queue_sms, config.queue_email):
        for task in client.list_tasks(parent=stack.queue_path(queue)):
            body = json.loads(task.http_request.body)
            if body.get("appointment_id") in appointment_ids:
                found.append({"queue": queue, "name": task.name, "body": body, "at": task.schedule_time})
    return found


def slots(tasks: list[dict[str, Any]]) -> dict[tuple[str, str, int | None], datetime]:
    return {(t["body"]["appointment_id"], t["body"]["type"], t["body"].get("offset_hours")): t["at"] for t in tasks}


@pytest.fixture
def local_clock(stack: StackConfig) -> Iterator[Callable[[datetime], None]]:
    """Moves the clock of the stack's function processes (and of system_clock here); reset afterwards."""
    path = stack.state_dir / "clock.json"
    yield lambda instant: set_local_clock(path, instant)
    set_local_clock(path, None)


def two_clinics(seed: Seed) -> dict[tuple[str, str, int | None], datetime]:
    """New York (spring forward on Sunday) and Kolkata; what each (appointment, kind, offset) is due at."""
    new_york, kolkata = seed.clinic("ny", "America/New_York"), seed.clinic("kol", "Asia/Kolkata")
    a = seed.appointment("a", new_york, ny(0, 7, 30))  # 07:30 EDT, both reminders in quiet hours
    b = seed.appointment("b", new_york, ny(0, 10))
    c = seed.appointment("c", new_york, ny(0, 20, 30))
    seed.appointment("cancelled", new_york, ny(0, 11), status="cancelled")
    seed.appointment("opted-out", new_york, ny(0, 12), sms_opt_out=True, email_opt_out=True)
    d = seed.appointment("d", kolkata, kol(0, 7, 30))
    e = seed.appointment("e", kolkata, kol(0, 12), preferred_channel="email")
    r = "appointment_reminder"
    return {
        (a, r, 24): ny(-1, 8),  # 24 real hours before is 06:30 EST (quiet) → 08:00 EST
        (a, r, 2): ny(-1, 20, 45),  # 05:30 EDT (quiet); 08:00 is too late → 20:45 EST the evening before
        (b, r, 24): ny(-1, 9),  # 10:00 EDT - 24 real hours = 09:00 EST: the lost hour counts
        (b, r, 2): ny(0, 8),  # 08:00 EDT, the end of the quiet hours
        (c, r, 24): ny(-1, 19, 30),
        (c, r, 2): ny(0, 18, 30),
        (d, r, 24): kol(-1, 8),  # 07:30 IST (quiet) → 08:00 IST
        (d, r, 2): kol(-1, 20, 45),  # 05:30 IST (quiet) → 20:45 IST the evening before
        (e, r, 24): kol(-1, 12),
        (e, r, 2): kol(0, 10),
    }


# -------------------------------------------------------------------------------------------- tests


def test_two_days_of_ticks_schedule_each_reminder_once_at_its_local_time(stack, firestore_client):
    seed = Seed()
    expected = two_clinics(seed)
    seed.write(firestore_client)
    ids = set(seed.docs["appointments"])

    first = run_tick(TickRequest(), service(), now=TICK_1)
    second = run_tick(TickRequest(), service(), now=TICK_2)

    # Tick 1 (tomorrow = Saturday) owns what sends before the end of Saturday, local; tick 2 the rest.
    assert (first.created, first.failed) == (7, 0)
    # Kolkata's 24 h reminder for 07:30 (08:00 on Saturday) is overdue at tick 2: re-planned, already there.
    assert (second.created, second.already_present, second.failed) == (3, 7, 0)
    assert sum(second.skipped.values()) == 2  # the patient who opted out of everything, planned again
    tasks = queued(stack, ids)
    assert len(tasks) == len({t["name"] for t in tasks}) == len(expected)
    assert slots(tasks) == expected
    zones = {seed.id("ny"): NY, seed.id("kol"): KOLKATA}
    for task in tasks:
        assert not in_quiet_hours(task["at"], zones[task["body"]["clinic_id"]], QuietHours())
    assert {t["body"]["appointment_id"] for t in tasks if t["queue"] == settings().queue_email} == {seed.id("e")}

    docs = ledger(firestore_client, ids)
    scheduled = [doc for doc in docs if doc["state"] == "scheduled"]
    assert {(d["appointment_id"], d["kind"], d["offset_hours"]): d["send_at"] for d in scheduled} == expected
    assert {t["name"].rsplit("/", 1)[-1] for t in tasks} == {task_id(d["key"]) for d in scheduled}
    skipped = [doc for doc in docs if doc["state"] != "scheduled"]
    assert sorted((d["appointment_id"], d["offset_hours"], d["state"], d["reason"]) for d in skipped) == [
        (seed.id("opted-out"), 2, "skipped", "opted_out"),
        (seed.id("opted-out"), 24, "skipped", "opted_out"),
    ]


def test_same_tick_published_three_times_at_once_creates_each_message_once(stack, firestore_client, local_clock):
    seed = Seed()
    # Tick 1's share: what sends before the end of Saturday, local time in each clinic.
    horizon = {seed.id("ny"): ny(0, 0), seed.id("kol"): kol(0, 0)}
    expected = {
        key: at for key, at in two_clinics(seed).items() if at < horizon[seed.docs["appointments"][key[0]]["clinic_id"]]
    }
    assert len(expected) == 7
    seed.write(firestore_client)
    ids = set(seed.docs["appointments"])
    clinics = set(seed.docs["clinics"])
    local_clock(TICK_1)
    function_log, unit_log = FunctionLogs(stack, "reminder-fanout"), FunctionLogs(stack, "reminder-fanout-unit")

    message_ids = publish(stack, "reminders-tick", [b"{}", b"{}", b"{}"])

    # The coordinator only enqueues: one unit per clinic (and the audit's slices) for each of the three ticks.
    summaries = function_log.wait_for(
        lambda line: line.get("message") == "reminders tick done" and line.get("event_id") in message_ids, count=3
    )
    per_tick = len(clinics) + AUDIT_SLICES
    assert len(summaries) == 3 and all(s["failed"] == 0 and s["created"] == 0 for s in summaries)
    assert all(s["units"] + s["units_present"] == per_tick for s in summaries)
    # Ticks published at the same instant share their units (the same names); each distinct instant has its own.
    instants = sum(s["units"] for s in summaries) // per_tick
    assert 1 <= instants <= 3
    # Cloud Tasks runs each unit in the unit function; every message is created once, whatever ran twice.
    units = unit_log.wait_for(
        lambda line: line.get("message") == "fan-out unit done" and line.get("clinic_id") in clinics,
        count=len(clinics) * instants,
    )
    assert all(u["failed"] == 0 for u in units)
    assert sum(u["created"] + u["recovered"] for u in units) == len(expected)
    for clinic in clinics:
        mine = [u for u in units if u["clinic_id"] == clinic]
        assert len({u["created"] + u["recovered"] + u["already_present"] for u in mine}) == 1
    tasks = queued(stack, ids)
    assert len(tasks) == len({t["name"] for t in tasks}) == len(expected)
    assert slots(tasks) == expected
    keys = [d["key"] for d in ledger(firestore_client, ids) if d["state"] == "scheduled"]
    assert len(keys) == len(set(keys)) == len(expected)


def test_three_concurrent_runs_in_one_process_create_each_message_once(stack, firestore_client):
    seed = Seed()
    expected = {key: at for key, at in two_clinics(seed).items() if at > TICK_2}
    expected[(seed.id("d"), "appointment_reminder", 24)] = TICK_2  # overdue at tick 2, still useful: sent now
    seed.write(firestore_client)
    ids = set(seed.docs["appointments"])
    start = threading.Barrier(3)

    def run() -> FanoutSummary:
        start.wait()
        return run_tick(TickRequest(), service(), now=TICK_2)

    with ThreadPoolExecutor(max_workers=3) as pool:
        reports = list(pool.map(lambda _: run(), range(3)))

    assert [r.failed for r in reports] == [0, 0, 0]
    assert sum(r.created + r.recovered for r in reports) == len(expected) == 10
    tasks = queued(stack, ids)
    assert len(tasks) == len({t["name"] for t in tasks}) == len(expected)
    assert slots(tasks) == expected


def test_malformed_ticks_are_acknowledged_and_the_next_good_tick_runs(stack, firestore_client, local_clock):
    seed = Seed()
    clinic = seed.clinic("ny", "America/New_York")
    appointment = seed.appointment("b", clinic, ny(0, 10))
    seed.write(firestore_client)
    local_clock(TICK_2)
    function_log, bridge_log = FunctionLogs(stack, "reminder-fanout"), FunctionLogs(stack, "pubsub_bridge")

    bad = publish(
        stack,
        "reminders-tick",
        [b"not json", b'{"date": "2027-02-29"}', json.dumps({"clinic_id": seed.id("nowhere")}).encode()],
    )

    rejected = function_log.wait_for(lambda line: line.get("event_id") in bad and bool(line.get("error_code")), count=3)
    assert sorted(line["error_code"] for line in rejected) == ["bad_date", "malformed_json", "unknown_clinic"]
    bridge_log.wait_for(lambda line: line.get("message") == "delivered" and line.get("messageId") in bad, count=3)
    good = publish(stack, "reminders-tick", [json.dumps({"clinic_id": clinic}).encode()])
    function_log.wait_for(lambda line: line.get("message") == "reminders tick done" and line.get("event_id") in good)
    assert not [line for line in bridge_log.lines() if line.get("messageId") in bad and line.get("status") != 200]
    assert len(function_log.wait_for(lambda line: line.get("event_id") in bad)) == 3  # each handled exactly once
    assert wait_until(lambda: len(queued(stack, {appointment})) == 2, DELIVERY_TIMEOUT)  # created by its unit


def test_rescheduled_appointment_is_reminded_at_its_new_time(stack, firestore_client, local_clock):
    seed = Seed()
    clinic = seed.clinic("ny", "America/New_York")
    appointment = seed.appointment("b", clinic, ny(0, 10))
    seed.write(firestore_client)
    local_clock(TICK_2)
    run_tick(TickRequest(clinic_id=clinic), service(), now=TICK_2)
    new_start = ny(0, 16)
    firestore_client.collection("appointments").document(appointment).update(
        {"start": new_start, "end": new_start + timedelta(hours=1)}
    )

    function_log = FunctionLogs(stack, "appointment-events")

    event = publish(
        stack,
        "appointment-events",
        [json.dumps({"event": "appointment.rescheduled", "appointment_id": appointment}).encode()],
    )

    done = function_log.wait_for(
        lambda line: line.get("message") == "appointment event done" and line.get("event_id") in event
    )
    assert (done[0]["created"], done[0]["failed"]) == (2, 0)
    tasks = queued(stack, {appointment})
    by_start: dict[str, dict[int, datetime]] = {}  # appointment_start → offset_hours → when its task is due
    for task in tasks:
        by_start.setdefault(task["body"]["appointment_start"], {})[task["body"]["offset_hours"]] = task["at"]
    assert by_start == {  # the old tasks stay; the handler skips them as "moved" at send time
        ny(0, 10).isoformat(): {24: ny(-1, 9), 2: ny(0, 8)},
        new_start.isoformat(): {24: ny(-1, 15), 2: ny(0, 14)},
    }
    assert len(ledger(firestore_client, {appointment})) == 4
    assert not [t for t in tasks if t["body"]["type"] == "booking_confirmation"]


def test_new_booking_gets_a_confirmation_and_the_reminders_the_ticks_already_passed(stack, firestore_client):
    seed = Seed()
    clinic = seed.clinic("ny", "America/New_York")
    tomorrow = seed.appointment("tomorrow", clinic, ny(0, 10), prep=True)
    later = seed.appointment("later", clinic, ny(10, 10))
    seed.write(firestore_client)
    now = ny(-1, 8)

    for appointment in (tomorrow, later):
        report = handle_appointment_event(AppointmentEvent("appointment.created", appointment), service(), now=now)
        assert report.failed == 0

    got = slots(queued(stack, {tomorrow, later}))
    assert got == {
        (tomorrow, "booking_confirmation", None): now + timedelta(hours=1),
        (tomorrow, "appointment_reminder", 24): ny(-1, 9),  # its tick (for Saturday) ran before the booking
        (tomorrow, "appointment_reminder", 2): ny(0, 8),
        (later, "booking_confirmation", None): now + timedelta(hours=1),  # its reminders: the ticks' job
        # The prep message was due 48 h before (Friday): overdue, still useful a day ahead, so it goes now.
        (tomorrow, "prep_instructions", 48): now,
    }


def test_unknown_clinic_and_missing_appointment_are_rejected(stack, firestore_client):
    with pytest.raises(EventRejected) as unknown:
        run_tick(TickRequest(clinic_id="clinic-nowhere"), service(), now=TICK_2)
    assert unknown.value.code == "unknown_clinic"
    with pytest.raises(EventRejected) as missing:
        handle_appointment_event(AppointmentEvent("appointment.created", "appt-nowhere"), service(), now=TICK_2)
    assert missing.value.code == "appointment_missing"


class FailingFor:
    """A TaskQueue around the real one that fails the creation of some messages (a flaky network)."""

    def __init__(self, real: CloudTasksQueue, failing: Callable[[TaskSpec], bool]) -> None:
        self.real, self.failing = real, failing

    def create(self, spec: TaskSpec) -> bool:
        if self.failing(spec):
            raise RetryableError("deadline exceeded", code="timeout")
        return self.real.create(spec)


def test_failed_creations_raise_after_the_rest_and_the_retry_fills_exactly_the_gap(stack, firestore_client):
    seed = Seed()
    expected = two_clinics(seed)
    seed.write(firestore_client)
    ids = set(seed.docs["appointments"])
    real = CloudTasksQueue(clients.tasks(), settings())
    kolkata = seed.id("kol")

    flaky = FailingFor(real, lambda spec: spec.payload["clinic_id"] == kolkata)
    first = run_tick(TickRequest(), service(flaky), now=TICK_2)
    with pytest.raises(RetryableError):
        first.raise_if_failed()
    # Kolkata's 24 h reminder for 07:30 (08:00 Saturday) is overdue at tick 2 and sent now: 4 of its messages.
    assert (first.failed, first.created) == (4, 6)
    assert len(queued(stack, ids)) == 6

    retry = run_tick(TickRequest(), service(), now=TICK_2)

    assert (retry.recovered, retry.created, retry.already_present, retry.failed) == (4, 0, 6, 0)
    tasks = queued(stack, ids)
    assert len(tasks) == len({t["name"] for t in tasks}) == 10
    overdue: dict[tuple[str, str, int | None], datetime] = {(seed.id("d"), "appointment_reminder", 24): TICK_2}
    assert slots(tasks) == {**{key: at for key, at in expected.items() if at > TICK_2}, **overdue}


def test_a_crashed_runs_doc_without_its_task_gets_the_task_and_a_present_task_is_not_doubled(stack, firestore_client):
    seed = Seed()
    clinic = seed.clinic("ny", "America/New_York")
    crashed = seed.appointment("crashed", clinic, ny(0, 10))
    seed.write(firestore_client)
    start = Appointment.from_doc(
        crashed, firestore_client.collection("appointments").document(crashed).get().to_dict()
    ).start
    key = message_key("appointment_reminder", crashed, start, 24)
    # A ledger doc written by a run that crashed before it created the task.
    Ledger(clients.store(), FixedClock(TICK_2)).schedule(
        [Planned(key, {"kind": "appointment_reminder", "appointment_id": crashed})]
    )

    report = run_tick(TickRequest(), service(), now=TICK_2)
    again = run_tick(TickRequest(), service(), now=TICK_2)

    assert (report.recovered, report.created, report.failed) == (1, 1, 0)
    assert (again.recovered, again.created, again.already_present) == (0, 0, 2)
    assert sorted((t["body"]["appointment_id"], t["body"]["offset_hours"]) for t in queued(stack, {crashed})) == [
        (crashed, 2),
        (crashed, 24),
    ]


def test_a_large_clinic_day_is_split_and_the_unit_function_plans_each_shard(stack, firestore_client):
    seed = Seed()
    clinic = seed.clinic("big", "America/New_York")
    for index in range(60):  # six an hour on the spring-forward Sunday, 08:00 to 17:50 New York
        seed.appointment(f"a{index}", clinic, ny(0, 8) + timedelta(minutes=10 * index))
    seed.write(firestore_client)
    ids = set(seed.docs["appointments"])
    config = settings()
    units = UnitQueue(
        CloudTasksQueue(clients.tasks(), config, target=Services(config).unit_target), config.queue_fanout
    )
    small = dataclasses.replace(service(), units=units, max_day_appointments=20, shard_appointments=15)

    report = run_unit(ClinicDayTask(clinic, DST, TICK_2), small)  # more than 20: split, nothing planned here

    assert (report.shards, report.units, report.created) == (5, 5, 0)  # two hours (12) a shard
    record = firestore_client.collection("fanout_runs").document(f"{clinic}_{DST.isoformat()}")
    # Cloud Tasks dispatches each shard to the reminder-fanout-unit function, which plans its share.
    assert wait_until(lambda: record.get().exists, DELIVERY_TIMEOUT)
    tasks = queued(stack, ids)
    assert len(tasks) == len({t["name"] for t in tasks}) == 120  # both reminders of each of the 60, once each
    assert {t["body"]["appointment_id"] for t in tasks} == ids
    assert record.get().to_dict()["shards"] == 5 and record.get().to_dict()["created"] == 120
