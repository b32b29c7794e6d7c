"""Property-based fuzzing of every decoder at the boundary (hypothesis): whatever arrives, the answer is
a typed value or the boundary's own classified error — never another exception, never a value that
could not be stored or logged. The HTTP-level campaign against the running functions is tests/fuzz.py."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contract.bodies import check_value, nesting_depth
from shared.contract.events import EventRejected, envelope, parse_appointment_event, parse_tick
from shared.contract.models import Appointment, Clinic, Patient, WaitlistEntry
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.email_events import apply_events, parse_event
from shared.messaging.ledger import Ledger
from shared.messaging.status_callbacks import StatusCallback, parse_callback
from shared.platform.errors import InvalidDocument, PermanentError
from shared.tasks.failed_tasks import body_shape, safe_value
from shared.tasks.payload import decode
from tests.bodies import parse_task
from tests.builders import REMINDER_BODY
from tests.fakes import FixedClock, MemoryStore

# A quick pass in every test run; `make fuzz` runs thousands (MEDSPA_FUZZ_EXAMPLES).
FUZZ = settings(
    max_examples=int(os.environ.get("MEDSPA_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)

# Strings of every kind, lone surrogates and Firestore's forbidden ids included.
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [".", "..", "__name__", "__x__", "a1\n", "\ud800", "a/b", "appointment_reminder-" + "0" * 40, "", " " * 3]
    ),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
    st.datetimes(timezones=st.just(timezone.utc)),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=5)),
    max_leaves=20,
)
body_fields = tuple(REMINDER_BODY)  # every field an appointment task's body has


def raw_json(value: Any) -> bytes:
    return json.dumps(value, default=str).encode("utf-8", "surrogatepass")


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        json_values.map(raw_json),
        st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth + b"]" * depth),
    )
)
def test_a_task_body_is_decoded_or_refused_with_a_code(raw):
    try:
        body = decode(raw)
    except PermanentError as exc:
        assert exc.code in ("oversized_body", "malformed_json", "too_deep", "bad_string", "number_out_of_range")
        return
    check_value(body)  # what passes is storable and loggable


def depth(value: Any) -> int:
    """How many containers enclose the value's deepest part, worked out on the value itself."""
    children = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
    return 1 + max(map(depth, children)) if children else 0


@FUZZ
@given(json_values, st.lists(st.sampled_from([list, dict]), max_size=12), st.sampled_from([None, 2]))
def test_the_nesting_read_from_the_bytes_is_the_values_own(value, wrappers, indent):
    for container in wrappers:
        value = [value] if container is list else {'"[{': value}
    raw = json.dumps(value, default=str, indent=indent).encode("utf-8", "surrogatepass")
    assert nesting_depth(raw) == depth(value)


@FUZZ
@given(st.dictionaries(st.sampled_from(body_fields), json_values, max_size=9))
def test_an_appointment_task_is_parsed_or_refused_with_a_code(body):
    try:
        task = parse_task(body, AppointmentTask)
    except PermanentError as exc:
        assert exc.code in ("bad_payload", "unknown_type", "unsupported_version")
        return
    assert task.to_json()["v"] == 1 and task.send_at.tzinfo is not None


@FUZZ
@given(json_values, st.one_of(st.none(), texts))
def test_a_cloudevent_envelope_is_read_or_rejected(data, time_attribute):
    class Event:
        def __init__(self) -> None:
            self.data = data

        def __getitem__(self, name: str) -> Any:
            return {"id": "e1", "time": time_attribute}[name]

    try:
        parsed = envelope(Event())
    except EventRejected:
        return
    assert isinstance(parsed.data, bytes)


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(raw_json)))
def test_ticks_and_appointment_events_are_parsed_or_rejected_with_a_code(raw):
    for parse in (parse_tick, parse_appointment_event):
        try:
            parse(raw)
        except EventRejected as exc:
            assert exc.code


@FUZZ
@given(
    st.dictionaries(st.sampled_from(["ledger", "g", "x"]), texts, max_size=3),
    st.dictionaries(
        st.sampled_from(["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "ErrorCode", "To"]), texts, max_size=6
    ),
)
def test_a_status_callback_form_names_a_message_or_the_reason_it_does_not(query, form):
    parsed = parse_callback(query, form)
    assert isinstance(parsed, StatusCallback | str)


@FUZZ
@given(st.lists(json_values, max_size=5))
def test_email_events_are_recorded_or_skipped_never_a_crash(events):
    for event in events:
        parse_event(event)
    outcomes = apply_events(Ledger(MemoryStore(), FixedClock(NOW)), raw_json(events))
    assert all(isinstance(count, int) for count in outcomes.values())


@FUZZ
@given(
    st.sampled_from([Clinic, Patient, Appointment, WaitlistEntry]),
    st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "timezone",
                    "phone",
                    "sms_from",
                    "email_from",
                    "clinic_id",
                    "patient_id",
                    "first_name",
                    "service_name",
                    "start",
                    "end",
                    "status",
                    "earliest",
                    "latest",
                    "price_cents",
                    "quiet_hours",
                    "reminder_offsets_hours",
                    "manager_emails",
                    "waitlist",
                ]
            ),
            json_values,
            max_size=12,
        ),
    ),
)
def test_a_contract_document_is_a_model_or_invalid_naming_its_field(model, data):
    try:
        model.from_doc("doc-1", data)
    except InvalidDocument as exc:
        assert exc.field and exc.collection


@FUZZ
@given(json_values)
def test_what_failed_tasks_stores_is_always_storable(value):
    check_value(safe_value({"payload": value}))
    check_value(body_shape(value, body_fields))
