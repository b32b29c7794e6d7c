"""Pub/Sub envelopes → TickRequest / AppointmentEvent; everything malformed is a coded PermanentError,
and the real entry points acknowledge it (2xx) instead of asking for a redelivery."""

from __future__ import annotations

import base64
import json
from datetime import date
from pathlib import Path

import pytest

from shared.contract.events import (
    AppointmentEvent,
    EventRejected,
    TickRequest,
    envelope,
    parse_appointment_event,
    parse_tick,
)
from shared.platform.errors import PermanentError

MAIN = Path(__file__).resolve().parents[2] / "functions" / "reminder_fanout" / "main.py"


class Event:
    """The two things the parsers read from a CloudEvent: its data and its id."""

    def __init__(self, data: object, event_id: str = "evt-1") -> None:
        self.data, self.id = data, event_id

    def __getitem__(self, name: str) -> str:
        return {"id": self.id}[name]


def pubsub(payload: bytes) -> Event:
    return Event(
        {
            "message": {"data": base64.b64encode(payload).decode(), "messageId": "m-1"},
            "subscription": "projects/p/subscriptions/s",
        }
    )


def code_of(call, *args) -> str:
    with pytest.raises(EventRejected) as raised:
        call(*args)
    assert isinstance(raised.value, PermanentError)
    return raised.value.code


def test_an_empty_tick_means_every_clinics_own_tomorrow():
    assert parse_tick(envelope(pubsub(b"")).data) == TickRequest(date=None, clinic_id=None)
    assert parse_tick(b"  \n") == TickRequest()
    assert parse_tick(b"{}") == TickRequest()


def test_a_tick_may_name_a_date_and_a_clinic():
    raw = b'{"date": "2026-03-08", "clinic_id": "clinic-nyc"}'
    assert parse_tick(envelope(pubsub(raw)).data) == TickRequest(date=date(2026, 3, 8), clinic_id="clinic-nyc")
    assert parse_tick(b'{"date": null, "clinic_id": null}') == TickRequest()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (b'"2026-03-08"', "not_an_object"),
        (b'{"date": "2026-02-30"}', "bad_date"),
        (b'{"date": "20260308"}', "bad_date"),
        (b'{"date": "2026-3-8"}', "bad_date"),
        (b'{"date": 20260308}', "bad_date"),
        (b'{"clinicId": "clinic-nyc"}', "unknown_field"),
        (b'{"clinic_id": ""}', "bad_clinic_id"),
        (b'{"clinic_id": "clinics/../x"}', "bad_clinic_id"),
        (b'{"clinic_id": 7}', "bad_clinic_id"),
    ],
)
def test_malformed_ticks_are_rejected_with_a_code(raw, code):
    assert code_of(parse_tick, raw) == code


def test_appointment_events_parse_and_ignore_the_booking_apps_extra_fields():
    raw = b'{"event": "appointment.rescheduled", "appointment_id": "appt-nyc-p01-03", "clinic_id": "c"}'
    expected = AppointmentEvent("appointment.rescheduled", "appt-nyc-p01-03")
    assert parse_appointment_event(envelope(pubsub(raw)).data) == expected
    assert parse_appointment_event(b'{"event": "appointment.cancelled", "appointment_id": "a"}').is_cancellation


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "malformed_json"),
        (b"{", "malformed_json"),
        (b"[]", "not_an_object"),
        (b'{"event": "appointment.deleted", "appointment_id": "a"}', "unknown_event"),
        (b'{"appointment_id": "a"}', "unknown_event"),
        (b'{"event": "appointment.created"}', "bad_appointment_id"),
        (b'{"event": "appointment.created", "appointment_id": "a b"}', "bad_appointment_id"),
    ],
)
def test_malformed_appointment_events_are_rejected_with_a_code(raw, code):
    assert code_of(parse_appointment_event, raw) == code


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        {"subscription": "s"},
        {"message": "not an object"},
        {"message": {"data": 12}},
        {"message": {"data": "***not base64***"}},
    ],
)
def test_a_broken_envelope_is_rejected(body):
    assert code_of(envelope, Event(body)) == "bad_envelope"


def test_oversized_data_is_rejected():
    assert code_of(envelope, pubsub(b"x" * 20_000)) == "oversized"


# --------------------------------------------------------------------- the real main.py, no emulator


@pytest.fixture
def client():
    from functions_framework import create_app

    def app(target: str):
        return create_app(target, str(MAIN), "cloudevent").test_client()

    return app


def post(test_client, payload: bytes):
    headers = {
        "ce-id": "evt-42",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-specversion": "1.0",
        "Content-Type": "application/json",
    }
    body = {"message": {"data": base64.b64encode(payload).decode(), "messageId": "42"}, "subscription": "s"}
    return test_client.post("/", headers=headers, data=json.dumps(body))


@pytest.mark.parametrize(
    ("target", "payload", "code"),
    [
        ("on_reminders_tick", b"not json", "malformed_json"),
        ("on_reminders_tick", b'{"date": "tomorrow"}', "bad_date"),
        ("on_appointment_event", b'{"event": "appointment.deleted", "appointment_id": "a"}', "unknown_event"),
        # Pub/Sub poison messages (issue 8, bug 3): each used to re-run the function until retention ran out.
        ("on_reminders_tick", b'{"date": "0001-01-01"}', "bad_date"),
        ("on_reminders_tick", b'{"clinic_id": ".."}', "bad_clinic_id"),
        ("on_reminders_tick", b'{"clinic_id": "."}', "bad_clinic_id"),
        ("on_reminders_tick", b'{"clinic_id": "__x__"}', "bad_clinic_id"),
        ("on_reminders_tick", b'{"clinic_id": "a1\\n"}', "bad_clinic_id"),
        ("on_reminders_tick", b'{"clinic_id": "\\ud800"}', "bad_string"),
        ("on_reminders_tick", b'{"date": ' + b"[" * 1000 + b"]" * 1000 + b"}", "too_deep"),
        ("on_appointment_event", b'{"event": "appointment.created", "appointment_id": ".."}', "bad_appointment_id"),
        ("on_appointment_event", b'{"event": "appointment.created", "appointment_id": "."}', "bad_appointment_id"),
        ("on_appointment_event", b'{"event": "appointment.created", "appointment_id": "__x__"}', "bad_appointment_id"),
        ("on_appointment_event", b'{"event": "appointment.created", "appointment_id": "a1\\n"}', "bad_appointment_id"),
        ("on_appointment_event", b'{"a": ' * 1000 + b"1" + b"}" * 1000, "too_deep"),
        # a consent the platform published that can never be recorded (docs/consent.md)
        ("on_appointment_event", b'{"event": "consent.recorded", "purpose": "promo"}', "bad_purpose"),
        ("on_appointment_event", b'{"event": "consent.recorded", "patientId": "p1"}', "unknown_field"),
    ],
)
def test_entry_points_acknowledge_malformed_events_and_log_why(client, capsys, monkeypatch, target, payload, code):
    for name in ("GOOGLE_CLOUD_PROJECT", "FIRESTORE_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)  # nothing may reach a client: it would fail with ConfigError
    response = post(client(target), payload)
    assert response.status_code == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    rejected = [line for line in lines if line.get("error_code") == code]
    assert len(rejected) == 1 and rejected[0]["severity"] == "WARNING" and rejected[0]["event_id"] == "evt-42"


def test_entry_point_answers_5xx_when_the_service_cannot_run(client, monkeypatch):
    # A transient or deploy problem must be redelivered, not acknowledged: here, no project configured.
    from shared.platform import clients, settings

    for name in ("GOOGLE_CLOUD_PROJECT", "TASK_HANDLER_URL"):
        monkeypatch.delenv(name, raising=False)
    settings.settings.cache_clear()
    clients.reset()
    app = client("on_reminders_tick")
    try:
        assert post(app, b"{}").status_code == 500
    finally:
        settings.settings.cache_clear()
        clients.reset()
