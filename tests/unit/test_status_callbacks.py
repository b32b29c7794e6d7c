"""Twilio status callbacks → the ledger: every malformed query or form is a reason string (answered 2xx,
nothing written), never an exception; a valid one is recorded, only ever advancing."""

from __future__ import annotations

import json

import pytest
from twilio.request_validator import RequestValidator

from shared.messaging.ledger import Ledger, Planned
from shared.messaging.status_callbacks import (
    StatusCallback,
    apply_status,
    callback_url,
    parse_callback,
    verify_twilio_signature,
)
from shared.platform.errors import Unauthorized
from tests.builders import NOW
from tests.fakes import FixedClock, MemoryStore

KEY = "appointment_reminder-" + "ab" * 20
SID = "SM" + "0123456789abcdef" * 2
FORM = {"MessageSid": SID, "MessageStatus": "delivered"}
TOKEN = "test-auth-token"
URL = "https://status.example.com/twilio-status"


def sent_ledger() -> tuple[MemoryStore, Ledger]:
    store = MemoryStore()
    ledger = Ledger(store, FixedClock(NOW))
    ledger.schedule([Planned(KEY, {"kind": "appointment_reminder"})])
    ledger.mark_sent(ledger.claim(KEY, ledger.read(KEY), {}), channel="sms", provider_message_id=SID)
    return store, ledger


def test_a_valid_callback_parses_into_ids_and_a_status():
    parsed = parse_callback({"ledger": KEY, "g": "3"}, {**FORM, "ErrorCode": "30003"})
    assert parsed == StatusCallback(KEY, 3, SID, "delivered", "30003")
    legacy = parse_callback({"ledger": KEY}, {"SmsSid": SID, "SmsStatus": "SENT", "ErrorCode": "n/a"})
    assert legacy == StatusCallback(KEY, None, SID, "sent", None)


@pytest.mark.parametrize(
    ("query", "form", "reason"),
    [
        ({}, FORM, "bad_ledger_key"),
        ({"ledger": f"{KEY}/claims/1"}, FORM, "bad_ledger_key"),
        ({"ledger": "a/b"}, FORM, "bad_ledger_key"),
        ({"ledger": "."}, FORM, "bad_ledger_key"),
        ({"ledger": ".."}, FORM, "bad_ledger_key"),
        ({"ledger": "__name__"}, FORM, "bad_ledger_key"),
        ({"ledger": KEY + "\n"}, FORM, "bad_ledger_key"),
        ({"ledger": "\ud800"}, FORM, "bad_ledger_key"),
        ({"ledger": KEY, "g": "0"}, FORM, "bad_generation"),
        ({"ledger": KEY, "g": "-1"}, FORM, "bad_generation"),
        ({"ledger": KEY, "g": "1.5"}, FORM, "bad_generation"),
        ({"ledger": KEY, "g": "9" * 5000}, FORM, "bad_generation"),
        ({"ledger": KEY, "g": "²"}, FORM, "bad_generation"),
        ({"ledger": KEY, "g": "0000001" + "0" * 5000}, FORM, "bad_generation"),
        ({"ledger": KEY, "g": "10000000000"}, FORM, "bad_generation"),
        ({"ledger": KEY, "g": ""}, FORM, "bad_generation"),
        ({"ledger": KEY}, {"MessageStatus": "delivered"}, "bad_message_sid"),
        ({"ledger": KEY}, {**FORM, "MessageSid": "SM123"}, "bad_message_sid"),
        ({"ledger": KEY}, {**FORM, "MessageSid": SID + "\n"}, "bad_message_sid"),
        ({"ledger": KEY}, {"MessageSid": SID}, "unknown_status"),
        ({"ledger": KEY}, {**FORM, "MessageStatus": "teleported"}, "unknown_status"),
    ],
)
def test_a_callback_that_names_nothing_is_a_reason_and_writes_nothing(query, form, reason):
    store, ledger = sent_ledger()
    before = store.doc(f"notifications/{KEY}")
    store.round_trips = 0
    assert parse_callback(query, form) == reason
    assert apply_status(ledger, query, form) == reason
    assert store.round_trips == 0 and store.doc(f"notifications/{KEY}") == before
    assert set(store.docs("notifications")) == {KEY}


def test_a_valid_callback_is_recorded_and_logged_with_ids_only(capsys):
    store, ledger = sent_ledger()
    assert apply_status(ledger, {"ledger": KEY, "g": "1"}, FORM) == "delivered"
    doc = store.stored(f"notifications/{KEY}")
    assert doc["state"] == "delivered" and doc["delivery_status"] == "delivered" and doc["delivered_at"] == NOW
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "delivery status" in x]
    assert line["ledger_key"] == KEY and line["outcome"] == "delivered"


def test_a_late_queued_never_moves_delivery_status_back_and_a_replay_rewrites_nothing():
    store, ledger = sent_ledger()
    assert apply_status(ledger, {"ledger": KEY, "g": "1"}, {**FORM, "MessageStatus": "sent"}) == "sent"
    after_sent = store.get(f"notifications/{KEY}")
    for status in ("queued", "accepted", "sending", "sent"):
        assert apply_status(ledger, {"ledger": KEY, "g": "1"}, {**FORM, "MessageStatus": status}) == "not_newer"
    unchanged = store.get(f"notifications/{KEY}")
    assert unchanged is not None and after_sent is not None
    assert unchanged.version == after_sent.version and unchanged.data["delivery_status"] == "sent"
    assert apply_status(ledger, {"ledger": KEY, "g": "1"}, FORM) == "delivered"
    delivered = store.get(f"notifications/{KEY}")
    assert apply_status(ledger, {"ledger": KEY, "g": "1"}, FORM) == "ignored_delivered"
    replayed = store.get(f"notifications/{KEY}")
    assert replayed is not None and delivered is not None and replayed.version == delivered.version


def test_a_failing_callback_calls_the_failure_hook_once_and_a_replay_says_it_is_one():
    _, ledger = sent_ledger()
    calls: list[tuple[str, bool]] = []

    def hook(key: str, replayed: bool) -> None:
        calls.append((key, replayed))

    undelivered = {**FORM, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert apply_status(ledger, {"ledger": KEY, "g": "1"}, {**FORM, "MessageStatus": "sent"}, hook) == "sent"
    assert calls == []
    assert apply_status(ledger, {"ledger": KEY, "g": "1"}, undelivered, hook) == "failed"
    assert apply_status(ledger, {"ledger": KEY, "g": "1"}, undelivered, hook) == "ignored_failed"
    assert calls == [(KEY, False), (KEY, True)]


def test_a_callback_for_a_key_with_no_ledger_doc_creates_nothing():
    store = MemoryStore()
    assert apply_status(Ledger(store, FixedClock(NOW)), {"ledger": KEY}, FORM) == "unknown_ledger"
    assert store.docs("notifications") == {}


def test_the_signature_is_checked_with_twilios_validator():
    url = callback_url(URL, f"ledger={KEY}&g=1".encode())
    assert url == f"{URL}?ledger={KEY}&g=1" and callback_url(URL, b"") == URL
    signature = RequestValidator(TOKEN).compute_signature(url, FORM)
    verify_twilio_signature(TOKEN, url, FORM, signature)
    for forged, params in (
        (None, FORM),
        ("", FORM),
        ("forged", FORM),
        (signature, {**FORM, "MessageStatus": "failed"}),
    ):
        with pytest.raises(Unauthorized) as caught:
            verify_twilio_signature(TOKEN, url, params, forged)
        assert caught.value.forbidden
    with pytest.raises(Unauthorized):
        verify_twilio_signature("another-token", url, FORM, signature)


def test_a_query_string_that_is_not_utf8_still_yields_the_url_twilio_signed():
    assert callback_url(URL, b"ledger=\xff") == f"{URL}?ledger=\ufffd"
