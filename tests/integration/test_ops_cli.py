"""python -m ops against the emulator: list, show (masked), retry."""

from __future__ import annotations

import pytest

from ops.__main__ import main
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
    assert key[:44] in out and "invalid_number" in out and "1 failed task(s) with status open" in out


def test_show_prints_ids_and_codes_but_no_contact_details(failed_key, capsys):
    key, world = failed_key
    assert main(["show", key]) == 0
    out = capsys.readouterr().out
    assert '"error_code": "invalid_number"' in out
    assert world.phones[-1] not in out and world.names[-1] not in out


def test_show_of_an_unknown_id_fails_clearly(stack, clean_firestore, capsys):
    assert main(["show", "nope"]) == 1
    assert "no failed task nope" in capsys.readouterr().err


def test_retry_marks_the_failure_for_the_sweep(failed_key, firestore_client):
    key, world = failed_key
    assert main(["retry", key]) == 0
    assert world.failed(key)[0]["status"] == "retry"
