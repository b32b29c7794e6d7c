"""The distributed tick on MemoryStore + RecordingQueue: the coordinator enqueues one unit per clinic-day
and the audit's slices; each unit, run from its task body, plans exactly what the in-process tick does;
a unit redelivered after failing half-way fills exactly the gap; a large day is cut into shards that
together plan every appointment once, and the day counts as planned (for the next day's catch-up) only
once every shard is."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.contract.clinics import named_clinic
from shared.contract.events import TickRequest
from shared.messaging.appointment_tasks import REMINDER
from shared.messaging.keys import message_key
from shared.platform.errors import ConfigError, PermanentError
from shared.reminders.coordinator import AUDIT_SLICES, coordinate_tick, run_tick
from shared.reminders.fanout import (
    AUDIT_LOOKBACK,
    FANOUT,
    UNIT_BODIES,
    UNIT_DECLARATIONS,
    Fanout,
    UnitQueue,
    _split,
    run_unit,
)
from shared.reminders.fanout_summary import FanoutSummary
from shared.reminders.planned_days import PlannedDays
from shared.reminders.scheduler import Queues
from shared.reminders.units import AUDIT, CLINIC_DAY, ClinicDayTask
from shared.tasks.declaration import bind_all
from shared.tasks.payload import decode, parse
from shared.tasks.router import TaskRouter, TaskType
from tests.builders import NOW, World
from tests.fakes import MemoryStore, RecordingQueue

UTC = timezone.utc
TOMORROW = date(2026, 11, 26)  # New York's tomorrow at NOW
DAY_START = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)  # 08:00 EST


class Setup:
    def __init__(self, *, max_day: int = 2000, shard: int = 1500) -> None:
        self.world = World()
        self.store, self.clock = self.world.store, self.world.clock
        self.tasks, self.units = RecordingQueue(), RecordingQueue()
        self.fanout = Fanout(
            store=self.store,
            tasks=self.tasks,
            queues=Queues("reminders-sms", "reminders-email"),
            clock=self.clock,
            units=UnitQueue(self.units, "reminders-fanout"),
            max_day_appointments=max_day,
            shard_appointments=shard,
        )
        self.dispatched = 0

    def appointments(self, count: int, every: timedelta = timedelta(minutes=10), **fields: Any) -> list[str]:
        patient = self.world.patient()
        return [self.world.appointment(patient, start=DAY_START + every * i, **fields)["id"] for i in range(count)]

    def tick(self, **request: Any):
        return coordinate_tick(TickRequest(**request), self.fanout, now=NOW)

    def run_units(self) -> list[Any]:
        """Run every unit enqueued and not run yet, once each, until none is left (shards too); a unit that
        raises is not retried here."""
        reports = []
        while self.dispatched < len(self.units.created):
            spec = self.units.created[self.dispatched]
            self.dispatched += 1
            try:
                reports.append(run_unit(parse(decode(json.dumps(spec.payload).encode()), UNIT_BODIES), self.fanout))
            except ConnectionError:
                continue
        return reports

    def ledger(self) -> dict[str, dict[str, Any]]:
        return self.store.docs("notifications")


def test_the_coordinator_enqueues_one_unit_per_clinic_and_the_audits_slices_and_nothing_else():
    setup = Setup()
    setup.world.clinic("clinic-two", timezone="Asia/Kolkata")
    setup.appointments(3)
    report = setup.tick()
    kinds = [spec.payload["type"] for spec in setup.units.created]
    assert kinds.count(CLINIC_DAY) == 2 and kinds.count(AUDIT) == AUDIT_SLICES
    assert (report.units, report.clinics, report.created) == (2 + AUDIT_SLICES, 2, 0)
    assert setup.tasks.created == [] and setup.ledger() == {}  # the coordinator plans nothing itself
    days = {
        spec.payload["clinic_id"]: spec.payload["date"] for spec in setup.units.created if "clinic_id" in spec.payload
    }
    assert days == {"clinic-t": "2026-11-26", "clinic-two": "2026-11-26"}  # each clinic's local tomorrow
    for spec in setup.units.created:
        assert spec.queue == "reminders-fanout"
        assert set(spec.payload) <= {
            "type",
            "v",
            *ClinicDayTask.field_names(),
            "since",
            "until",
        }  # ids, dates, instants
    slices = sorted((s.payload["since"], s.payload["until"]) for s in setup.units.created if s.payload["type"] == AUDIT)
    assert slices[0][0] == (NOW - AUDIT_LOOKBACK).isoformat() and slices[-1][1] == NOW.isoformat()
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:], strict=False))  # contiguous, no gap, no overlap


def test_a_redelivered_tick_enqueues_nothing_new_and_a_later_replay_does():
    setup = Setup()
    setup.tick()
    again = setup.tick()
    assert (again.units, again.units_present) == (0, 1 + AUDIT_SLICES)
    replay = coordinate_tick(TickRequest(), setup.fanout, now=NOW + timedelta(minutes=5))
    assert replay.units == 1 + AUDIT_SLICES  # another tick instant: the day is planned again (idempotently)


def test_the_units_plan_exactly_what_the_in_process_tick_does():
    distributed, local = Setup(), Setup()
    for setup in (distributed, local):
        setup.appointments(30, status="confirmed")
        setup.appointments(5, requires_prep=True, prep_instructions="No retinoids.")
        setup.world.appointment(setup.world.patient(sms_opt_out=True, email_opt_out=True), start=DAY_START)
    distributed.tick()
    reports = distributed.run_units()
    run_tick(TickRequest(), local.fanout, now=NOW)
    assert distributed.ledger() == local.ledger() and len(distributed.ledger()) > 70
    assert sorted((s.queue, s.business_key, json.dumps(s.payload)) for s in distributed.tasks.created) == sorted(
        (s.queue, s.business_key, json.dumps(s.payload)) for s in local.tasks.created
    )
    assert sum(r.created for r in reports) == len(distributed.tasks.created)
    assert PlannedDays(distributed.store, distributed.clock).completed("clinic-t", TOMORROW)


def test_a_unit_that_failed_half_way_answers_503_and_its_redelivery_fills_exactly_the_gap():
    setup = Setup()
    ids = setup.appointments(10)
    setup.tick()
    failing = message_key(REMINDER, ids[3], DAY_START + timedelta(minutes=30), 2)
    setup.tasks.fail_keys.add(failing)
    router = TaskRouter(
        authenticator=_Trusting(),
        failures=_NoFailures(),
        max_attempts=8,
        types=unit_types(setup),
    )
    (unit,) = [spec for spec in setup.units.created if spec.payload["type"] == CLINIC_DAY]
    body = json.dumps(unit.payload).encode()
    first = router.handle({"X-CloudTasks-TaskRetryCount": "0"}, body)
    assert first[1] == 503
    assert len(setup.tasks.created) == 19 and failing in setup.ledger()  # the rest was done; the doc is there
    assert not PlannedDays(setup.store, setup.clock).completed("clinic-t", TOMORROW)
    setup.tasks.fail_keys.clear()
    second = router.handle({"X-CloudTasks-TaskRetryCount": "1"}, body)
    assert second[1] == 200
    assert sorted(setup.tasks.keys()) == sorted(setup.ledger()) and len(setup.tasks.created) == 20
    assert PlannedDays(setup.store, setup.clock).completed("clinic-t", TOMORROW)


def test_a_large_day_is_cut_into_shards_that_plan_every_appointment_once():
    setup = Setup(max_day=40, shard=25)
    setup.appointments(100, every=timedelta(minutes=6))  # 10 an hour, 08:00-18:00 New York
    setup.tick()
    (whole,) = [r for r in setup.run_units() if r.trigger == "clinic_day"]
    shards = [spec.payload for spec in setup.units.created if spec.payload.get("shards")]
    assert whole.shards == len(shards) == 5 and whole.created == 0  # the splitting unit plans nothing itself
    assert all(payload["shards"] == 5 and len({p["plan"] for p in shards}) == 1 for payload in shards)
    assert len(setup.ledger()) == 200 and sorted(setup.tasks.keys()) == sorted(setup.ledger())
    assert len(setup.tasks.created) == len(set(setup.tasks.keys()))  # each task created once
    record = setup.store.doc(f"fanout_runs/clinic-t_{TOMORROW.isoformat()}")
    assert record is not None and record["created"] == 200 and record["shards"] == 5


def test_shards_redelivered_create_nothing_and_the_day_is_recorded_only_when_every_shard_is():
    setup = Setup(max_day=40, shard=25)
    setup.appointments(100, every=timedelta(minutes=6))
    setup.tick()
    setup.run_units()
    shard_specs = [spec for spec in setup.units.created if spec.payload.get("shards")]
    again = [run_unit(parse(dict(spec.payload), UNIT_BODIES), setup.fanout) for spec in shard_specs]
    assert sum(r.created + r.recovered for r in again) == 0 and sum(r.already_present for r in again) == 200

    fresh = Setup(max_day=40, shard=25)
    fresh.appointments(100, every=timedelta(minutes=6))
    fresh.tick()
    fresh.dispatched = 0
    whole = next(spec for spec in fresh.units.created if spec.payload["type"] == CLINIC_DAY)
    run_unit(parse(dict(whole.payload), UNIT_BODIES), fresh.fanout)
    runs = PlannedDays(fresh.store, fresh.clock)
    shards = [spec for spec in fresh.units.created if spec.payload.get("shards")]
    for spec in shards[:-1]:
        run_unit(parse(dict(spec.payload), UNIT_BODIES), fresh.fanout)
        assert not runs.completed("clinic-t", TOMORROW)
    run_unit(parse(dict(shards[-1].payload), UNIT_BODIES), fresh.fanout)
    assert runs.completed("clinic-t", TOMORROW)


def test_the_next_days_unit_catches_up_only_when_every_shard_of_the_day_before_completed():
    for failing_shard in (False, True):
        setup = Setup(max_day=40, shard=25)
        setup.appointments(100, every=timedelta(minutes=6))
        setup.tick()
        if failing_shard:
            setup.store.fail_next("put")  # the first shard's own record cannot be written: the day is not done
        setup.run_units()
        today_appointment = setup.world.appointment(setup.world.patient(), start=NOW + timedelta(days=1, hours=8))
        next_tick = NOW + timedelta(days=1) - timedelta(hours=6)  # tomorrow (the 27th) is the next tick's day
        coordinate_tick(TickRequest(), setup.fanout, now=next_tick)
        reports = setup.run_units()
        caught_up = sum(r.problems["caught_up_missed_tick"] for r in reports)
        assert caught_up == int(failing_shard), failing_shard
        assert today_appointment


def test_audit_units_count_the_unreachable_appointments_of_their_slice_only():
    setup = Setup()
    bad = setup.appointments(1)[0]
    setup.store.seed(
        f"appointments/{bad}", {**setup.store.stored(f"appointments/{bad}"), "start": "tomorrow", "updated_at": NOW}
    )
    setup.tick()
    audits = [r for r in setup.run_units() if r.trigger == "audit"]
    assert len(audits) == AUDIT_SLICES
    assert sum(r.problems["unreachable_appointment"] for r in audits) == 0  # written at NOW: after every slice
    setup.store.seed(
        f"appointments/{bad}",
        {**setup.store.stored(f"appointments/{bad}"), "updated_at": NOW - timedelta(hours=1)},
    )
    again = coordinate_tick(TickRequest(), setup.fanout, now=NOW + timedelta(seconds=1))
    assert again.units == 1 + AUDIT_SLICES
    audits = [r for r in setup.run_units() if r.trigger == "audit"]
    assert sum(r.problems["unreachable_appointment"] for r in audits) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"type": CLINIC_DAY, "v": 1, "clinic_id": "c", "date": "2026-02-30", "planned_at": NOW.isoformat()},
        {"type": CLINIC_DAY, "v": 1, "clinic_id": "c/x", "date": "2026-11-26", "planned_at": NOW.isoformat()},
        {"type": CLINIC_DAY, "v": 1, "clinic_id": "c", "date": "2026-11-26", "planned_at": NOW.isoformat(), "x": 1},
        {
            "type": CLINIC_DAY,
            "v": 1,
            "clinic_id": "c",
            "date": "2026-11-26",
            "planned_at": NOW.isoformat(),
            "shards": 2,
            "shard": 2,
            "plan": "ab",
            "windows": [],
        },
        {"type": AUDIT, "v": 1, "since": NOW.isoformat(), "until": (NOW - timedelta(hours=1)).isoformat()},
        {"type": "appointment_reminder", "v": 1},
    ],
)
def test_malformed_unit_bodies_are_permanent_failures(body):
    with pytest.raises(PermanentError):
        parse(body, UNIT_BODIES)


def test_a_unit_for_a_clinic_gone_since_the_tick_is_a_permanent_failure_recorded_by_the_router():
    setup = Setup()
    setup.tick()
    recorded = _NoFailures()
    router = TaskRouter(
        authenticator=_Trusting(),
        failures=recorded,
        max_attempts=8,
        types=unit_types(setup),
    )
    body = ClinicDayTask("clinic-gone", TOMORROW, NOW).to_json()
    status = router.handle({}, json.dumps(body).encode())[1]
    assert status == 200 and recorded.codes == ["unknown_clinic"]


def test_a_unit_queue_is_required_by_the_coordinator():
    fanout = Fanout(store=MemoryStore(), tasks=RecordingQueue(), queues=Queues("a", "b"), clock=World().clock)
    with pytest.raises(ConfigError):
        coordinate_tick(TickRequest(), fanout, now=NOW)


def test_a_split_needs_a_unit_queue_and_says_so_with_a_config_error():
    setup = Setup()
    report = FanoutSummary(trigger="clinic_day")
    no_queue = dataclasses.replace(setup.fanout, units=None)
    with pytest.raises(ConfigError) as caught:
        _split(ClinicDayTask("clinic-t", TOMORROW, NOW), named_clinic(setup.store, "clinic-t"), [], no_queue, report)
    assert caught.value.code == "no_unit_queue" and setup.units.created == [] and report.shards == 0


class _Trusting:
    def verify(self, headers: Any) -> dict[str, Any]:
        return {"email": "tasks@test"}


class _NoFailures:
    """failed_tasks as the router writes it: only the codes are kept."""

    def __init__(self) -> None:
        self.codes: list[str] = []

    def record(self, doc_id: str, **fields: Any) -> None:
        self.codes.append(fields["error_code"])


def unit_types(setup: Setup) -> dict[str, TaskType[Any]]:
    """The unit function's table, bound to this setup's fan-out."""
    return bind_all(UNIT_DECLARATIONS, {FANOUT: lambda: setup.fanout}, lambda queue: "reminders-fanout")


def test_the_units_queue_and_target_come_from_the_environment():
    from shared.platform.errors import ConfigError
    from shared.platform.settings import Settings
    from shared.wiring.services import Services

    env = {
        "GOOGLE_CLOUD_PROJECT": "p",
        "TASKS_LOCATION": "us-central1",
        "TASK_HANDLER_URL": "https://handler.example.com/",
        "TASKS_SERVICE_ACCOUNT": "tasks@p.iam.gserviceaccount.com",
    }
    assert Settings.from_env(env).queue_fanout == "reminders-fanout"
    assert Settings.from_env({**env, "QUEUE_FANOUT": "bench-fanout"}).queue("fanout") == "bench-fanout"
    target = Services(Settings.from_env({**env, "FANOUT_UNIT_URL": "https://unit.example.com/"})).unit_target
    assert (target.url, target.audience) == ("https://unit.example.com/", "https://unit.example.com/")
    with pytest.raises(ConfigError, match="FANOUT_UNIT_URL"):
        _ = Services(Settings.from_env(env)).unit_target
