"""Task bodies: every malformed class gets a code; valid ones carry IDs only."""

from __future__ import annotations

import json

import pytest

from shared.messaging.appointment_tasks import AppointmentTask
from shared.platform.errors import PermanentError
from shared.tasks.payload import MAX_BODY_BYTES, decode
from tests.bodies import parse_task
from tests.builders import REMINDER_BODY, TASK_KEY

KEY, VALID = TASK_KEY, REMINDER_BODY


def test_a_valid_body_round_trips():
    task = parse_task(decode(json.dumps(VALID).encode()), AppointmentTask)
    assert task.to_json() == VALID


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (b"x" * (MAX_BODY_BYTES + 1), "oversized_body"),
    ],
)
def test_undecodable_bodies(raw, code):
    with pytest.raises(PermanentError) as caught:
        decode(raw)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"type": "teleport"}, "unknown_type"),
        ({"type": None}, "bad_payload"),
        ({"v": 2}, "unsupported_version"),
        ({"appointment_id": None}, "bad_payload"),
        ({"appointment_id": 42}, "bad_payload"),
        ({"clinic_id": "../../etc"}, "bad_payload"),
        ({"send_at": "tomorrow"}, "bad_payload"),
        ({"send_at": "2026-11-25T14:30:00"}, "bad_payload"),
        ({"offset_hours": "24"}, "bad_payload"),
    ],
)
def test_malformed_fields_are_permanent_with_a_code(change, code):
    with pytest.raises(PermanentError) as caught:
        parse_task({**VALID, **change}, AppointmentTask)
    assert caught.value.code == code
