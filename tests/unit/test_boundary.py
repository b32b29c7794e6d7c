"""One validation at the boundary (issue 8, bug 2): whatever arrives in a task body or a Pub/Sub message
is either plain JSON every later step can store and log, or a PermanentError with a named code.

Classes tried: nesting 1,000 deep; ids the old pattern let through but Firestore refuses (".", "..",
"__name__", "__x__") or that end in a newline ("a1\\n"); lone surrogates anywhere; instants at the edge
of the calendar; integers beyond 64 bits; versions that are not the integer 1.
"""

from __future__ import annotations

import json

import pytest

from shared.contract.bodies import check_value, decode_object, is_clean_text, safe_text
from shared.contract.events import EventRejected, parse_appointment_event, parse_tick
from shared.contract.ids import is_doc_id
from shared.messaging.appointment_tasks import AppointmentTask
from shared.platform.errors import PermanentError
from shared.tasks.payload import Whole, decode, envelope
from tests.bodies import parse_task
from tests.builders import REMINDER_BODY, TASK_KEY

KEY, VALID = TASK_KEY, REMINDER_BODY
BAD_IDS = [".", "..", "__name__", "__x__", "__.__", "a1\n", "a b", "a/b", "", "x" * 201, "\ud800", "é"]
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
DEEP_LIST = b"[" * 1000 + b"]" * 1000


def code(call, *args) -> str:
    with pytest.raises(PermanentError) as caught:
        call(*args)
    return caught.value.code


def task_body(**change) -> bytes:
    return json.dumps({**VALID, **change}).encode()


def parse(raw: bytes):
    return parse_task(decode(raw), AppointmentTask)


def test_a_valid_body_decodes_and_parses():
    assert parse(task_body()).to_json() == VALID


@pytest.mark.parametrize("raw", [DEEP_OBJECT, DEEP_LIST, b'{"a": ' + b"[" * 10 + b"]" * 10 + b"}"])
def test_deep_nesting_is_too_deep_not_a_recursion_error(raw):
    assert code(decode, raw) == "too_deep"
    with pytest.raises(EventRejected) as caught:
        parse_tick(raw if raw.startswith(b"{") else b'{"date": ' + raw + b"}")
    assert caught.value.code == "too_deep"


def test_nesting_up_to_the_limit_is_fine():
    assert decode_object(b'{"a": ' + b"[" * 7 + b"]" * 7 + b"}", max_bytes=1000) == {"a": [[[[[[[]]]]]]]}


@pytest.mark.parametrize("depth", [10, 100, 1400, 1600])
def test_a_deep_list_is_too_deep_whatever_the_interpreters_recursion_budget(depth):
    # Python 3.11 parses a list 1,400 deep into RecursionError, 3.12 into a list (a separate C budget).
    assert code(decode, b"[" * depth + b"]" * depth) == "too_deep"


def test_brackets_and_escaped_quotes_inside_strings_are_text():
    body = {'a\\"[[[[[[[[[[': ']]]]]]]]]] \\" ' + "[" * 23, "b": [[[[[[[1]]]]]]]}
    assert decode_object(json.dumps(body).encode(), max_bytes=1000) == body


def test_nesting_is_judged_before_syntax_so_a_cut_deep_body_is_too_deep():
    assert code(decode, b'{"a": ' + b"[" * 50) == "too_deep"
    assert code(decode, b'{"a": "' + b"[" * 50) == "malformed_json"  # an unterminated string holds them


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("field", ["appointment_id", "clinic_id", "patient_id"])
def test_ids_firestore_refuses_or_our_pattern_forbids_are_bad_payloads(field, value):
    raw = task_body(**{field: value}) if is_clean_text(value) else _with_surrogate(field)
    assert code(parse, raw) in ("bad_payload", "bad_string")


def _with_surrogate(field: str) -> bytes:
    return json.dumps({**VALID, field: "SURROGATE"}).encode().replace(b"SURROGATE", b"\\ud800")


@pytest.mark.parametrize("value", BAD_IDS)
def test_is_doc_id_follows_firestores_rules_and_ours(value):
    assert not is_doc_id(value)


@pytest.mark.parametrize("value", ["a", "appt-nyc-p01-03", "a.b:c_d-e", "_x_", "__x", "x__", "x" * 200, "...", "a..b"])
def test_ids_the_product_uses_are_document_ids(value):
    assert is_doc_id(value)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "appointment_reminder", "v": 1, "x": "\\ud800"}',
        b'{"type": "\\udfff"}',
        b'{"\\ud800": 1}',
        b'{"a": [1, {"b": ["\\ud800"]}]}',
        b'{"a": "ok \\ud83d"}',
    ],
)
def test_a_lone_surrogate_anywhere_is_a_bad_string(raw):
    assert code(decode, raw) == "bad_string"


def test_a_surrogate_pair_is_valid_text():
    assert decode(b'{"a": "\\ud83d\\ude00"}') == {"a": "😀"}


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+14:00",  # 13 Dec 0 in UTC: OverflowError in astimezone
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+00:00",
        "2300-01-01T00:00:00+00:00",
        "1999-12-31T23:59:59+00:00",
        "2026-11-25T14:30:00",  # no offset
        "2026-11-25",
        "2026-11-25T14:30:00+00:00" + " " * 40,
        "2026-02-30T00:00:00+00:00",
    ],
)
@pytest.mark.parametrize("field", ["send_at", "appointment_start"])
def test_instants_at_the_edge_of_the_calendar_are_bad_payloads(field, value):
    assert code(parse, task_body(**{field: value})) == "bad_payload"


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, 10**30])
def test_integers_beyond_64_bits_anywhere_are_out_of_range(value):
    assert code(decode, task_body(offset_hours=value)) == "number_out_of_range"
    assert code(decode, json.dumps({"nested": [{"n": value}]}).encode()) == "number_out_of_range"


def test_64_bit_integers_and_finite_numbers_pass_the_decoder():
    assert decode(json.dumps({"a": 2**63 - 1, "b": -(2**63), "c": 1.5}).encode())["a"] == 2**63 - 1


@pytest.mark.parametrize("raw", [b'{"x": 1e400}', b'{"x": -1e400}'])
def test_infinite_numbers_are_out_of_range(raw):
    assert code(decode, raw) == "number_out_of_range"


@pytest.mark.parametrize("raw", [b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}'])
def test_non_json_constants_are_malformed(raw):
    assert code(decode, raw) == "malformed_json"


@pytest.mark.parametrize("version", [True, 1.0, "1", 2, 0, None, [1]])
def test_only_the_integer_1_is_version_1(version):
    assert code(parse, task_body(v=version)) == "unsupported_version"


@pytest.mark.parametrize("kind", [None, "", 7, ["appointment_reminder"]])
def test_a_body_without_a_type_string_is_a_bad_payload(kind):
    assert code(envelope, {**VALID, "type": kind}) == "bad_payload"


@pytest.mark.parametrize("offset", [0, 337, True, 1.0, "24", -1])
def test_offset_hours_must_be_a_whole_number_of_hours_in_range(offset):
    assert code(parse, task_body(offset_hours=offset)) == "bad_payload"


def test_a_whole_number_check_takes_its_range_and_nothing_else():
    check = Whole(1, 3)
    assert [check.read(n, "n") for n in (1, 3)] == [1, 3]
    for bad in (0, 4, True, 1.0, "2"):
        with pytest.raises(PermanentError, match="'n' must be a whole number from 1 to 3"):
            check.read(bad, "n")


@pytest.mark.parametrize("key", ["dedup_key", "appointment_id"])
def test_a_missing_field_is_a_bad_payload(key):
    body = dict(VALID)
    del body[key]
    assert code(parse, json.dumps(body).encode()) == "bad_payload"


@pytest.mark.parametrize("dedup_key", ["..", "__x__", KEY + "\n", KEY.upper(), "appointment_reminder-abc", 7])
def test_a_dedup_key_not_shaped_like_a_ledger_key_is_a_bad_payload(dedup_key):
    assert code(parse, task_body(dedup_key=dedup_key)) == "bad_payload"


def test_an_unknown_field_is_refused_it_could_carry_phi():
    assert code(parse, task_body(first_name="Jane")) == "bad_payload"


def test_a_known_type_that_is_not_an_appointment_message_is_unknown_here():
    assert code(parse, task_body(type="waitlist_offer")) == "unknown_type"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"x" * 20_000, "oversized_body"),
        (b"", "malformed_json"),
        (b"   ", "malformed_json"),
        (b"\xff", "malformed_json"),
        (b"null", "malformed_json"),
        (b"1", "malformed_json"),
    ],
)
def test_undecodable_task_bodies(raw, expected):
    assert code(decode, raw) == expected


def test_an_empty_message_may_be_an_empty_object_when_allowed():
    assert decode_object(b"  ", max_bytes=10, empty_ok=True) == {}
    with pytest.raises(PermanentError) as caught:
        decode_object(b"x" * 11, max_bytes=10)
    assert caught.value.code == "oversized_body"


def test_check_value_walks_keys_and_items():
    check_value({"a": [1, 2.5, None, True, "x", {"b": "c"}]})
    with pytest.raises(PermanentError):
        check_value({"a": [{"b": 2**64}]})


def test_safe_text_replaces_surrogates_and_cuts():
    assert safe_text("ab\ud800cd", 10) == "ab?cd" and safe_text("x" * 50, 5) == "xxxxx"
    safe_text("\udfff" * 100, 1000).encode("utf-8")


# ----------------------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"date": "0001-01-01"}', "bad_date"),
        (b'{"date": "9999-12-31"}', "bad_date"),
        (b'{"date": "1999-12-31"}', "bad_date"),
        (b'{"date": "2026-11-25\\n"}', "bad_date"),
        (b'{"date": "\\ud800"}', "bad_string"),
        (b'{"clinic_id": ".."}', "bad_clinic_id"),
        (b'{"clinic_id": "."}', "bad_clinic_id"),
        (b'{"clinic_id": "__x__"}', "bad_clinic_id"),
        (b'{"clinic_id": "__name__"}', "bad_clinic_id"),
        (b'{"clinic_id": "a1\\n"}', "bad_clinic_id"),
        (b'{"clinic_id": 18446744073709551616}', "number_out_of_range"),
        (DEEP_OBJECT, "too_deep"),
    ],
)
def test_poison_ticks_are_rejected_with_a_code(raw, expected):
    with pytest.raises(EventRejected) as caught:
        parse_tick(raw)
    assert caught.value.code == expected


@pytest.mark.parametrize("appointment_id", [".", "..", "__x__", "__name__", "a1\n", "a/b", 7])
def test_appointment_events_with_ids_firestore_refuses_are_rejected(appointment_id):
    raw = json.dumps({"event": "appointment.created", "appointment_id": appointment_id}).encode()
    with pytest.raises(EventRejected) as caught:
        parse_appointment_event(raw)
    assert caught.value.code == "bad_appointment_id"


@pytest.mark.parametrize("raw", [DEEP_OBJECT, b'{"event": "appointment.created", "appointment_id": "\\ud800"}'])
def test_appointment_events_that_cannot_be_stored_are_rejected(raw):
    with pytest.raises(EventRejected) as caught:
        parse_appointment_event(raw)
    assert caught.value.code in ("too_deep", "bad_string")
