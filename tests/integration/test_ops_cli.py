"""python -m ops against the emulator: list, show (masked), retry."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta, timezone

import pytest

from ops.__main__ import main
from shared.contract.clinic_time import local_tomorrow
from shared.contract.models import Clinic
from shared.platform.clock import system_clock
from tests.handler_support import World, post

pytestmark = pytest.mark.integration


@pytest.fixture
def failed_key(firestore_client, sandbox, stack):
    world = World(firestore_client)
    patient = world.patient(email=None)
    sandbox.fault(channel="sms", kind="twilio_code", code=21211, to=world.phones[-1])
    task = world.task(world.appointment(patient))
    assert post(stack, task.to_json()).status_code == 200
    return task.dedup_key, world


def test_list_shows_open_failures(failed_key, capsys):
    key, _ = failed_key
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"{key} " in out and "invalid_number" in out and "1 failed task(s) with status open" in out


def test_show_prints_ids_and_codes_but_no_contact_details(failed_key, capsys):
    key, world = failed_key
    assert main(["show", key]) == 0
    out = capsys.readouterr().out
    assert '"error_code": "invalid_number"' in out
    assert world.phones[-1] not in out and world.names[-1] not in out


def test_show_finds_a_failure_by_the_beginning_of_its_id_on_firestore(failed_key, capsys):
    key, _ = failed_key
    assert main(["show", key[:30]]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == key
    assert main(["show", key[:30] + "z"]) == 1  # no id begins so (keys are hex)
    assert "no failed task" in capsys.readouterr().err


def test_show_of_an_unknown_id_fails_clearly(stack, clean_firestore, capsys):
    assert main(["show", "nope"]) == 1
    assert "no failed task nope" in capsys.readouterr().err


def test_retry_marks_the_failure_for_the_sweep(failed_key, firestore_client):
    key, world = failed_key
    assert main(["retry", key]) == 0
    assert world.failed(key)[0]["status"] == "retry"


def test_replay_tick_schedules_a_clinics_day_and_a_second_replay_creates_nothing(world, capsys):
    clinic = Clinic.from_doc("clinic-t", world.db.collection("clinics").document("clinic-t").get().to_dict())
    day = local_tomorrow(system_clock.now(), clinic.zone) + timedelta(days=1)
    start = datetime.combine(day, time(15, 0), tzinfo=clinic.zone).astimezone(timezone.utc)
    world.appointment(world.patient(), start=start)
    assert main(["replay-tick", "--date", day.isoformat(), "--clinic", "clinic-t"]) == 0
    first = capsys.readouterr()
    assert '"created": 2' in first.out and "clinic 1/1" in first.err  # its 24 h and 2 h reminders
    assert main(["replay-tick", "--date", day.isoformat(), "--clinic", "clinic-t"]) == 0
    assert '"created": 0' in capsys.readouterr().out


def test_why_tells_a_failed_message_from_the_ledger_and_failed_tasks_masked(failed_key, capsys):
    key, world = failed_key
    appointment_id = world.db.collection("notifications").document(key).get().get("appointment_id")
    assert main(["why", "--appointment", appointment_id]) == 0
    out = capsys.readouterr().out
    assert f"{key}  reminder 24 h before, no channel recorded: failed" in out
    assert "in failed_tasks: invalid_number" in out and "provider outbox: read:" in out
    assert world.phones[-1] not in out and world.names[-1] not in out and "HydraFacial" not in out


def test_why_shows_what_the_sandbox_outbox_holds_for_a_sent_message(firestore_client, sandbox, stack, capsys):
    world = World(firestore_client)
    appointment = world.appointment(world.patient())
    task = world.task(appointment)
    assert post(stack, task.to_json()).status_code == 200
    assert main(["why", "--appointment", appointment["id"]]) == 0
    out = capsys.readouterr().out
    masked = f"+1******{world.phones[-1][-4:]}"
    assert "Twilio outbox: SM" in out and f"to {masked}, attempt 1" in out and "sent         Twilio accepted it" in out
    assert world.phones[-1] not in out and "read: 1 of the 1 message(s)" in out
