"""SendGrid's signed Event Webhook: only genuine, recent batches are read; each event moves the ledger
(evidence for an email whose send answer was lost; delivered / bounced) or is skipped with a reason."""

from __future__ import annotations

import json
import time

import pytest

from local import webhook_keys
from shared.messaging.email_events import apply_events, parse_event, verify_sendgrid_signature
from shared.messaging.keys import dedup_key
from shared.messaging.ledger import Ledger, Planned
from shared.platform.errors import Unauthorized
from tests.fakes import FixedClock, MemoryStore
from tests.ledger_cases import NOW

KEY = dedup_key("appointment_reminder", "appt-1", "24h@x")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    state = tmp_path_factory.mktemp("keys")
    return webhook_keys.public_key(state), webhook_keys.private_key_path(state).read_bytes()


def signed(private: bytes, payload: bytes, at: float | None = None) -> tuple[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    return webhook_keys.sign(private, timestamp, payload), timestamp


def test_a_genuine_recent_batch_is_accepted(keys):
    public, private = keys
    payload = b'[{"event": "processed"}]'
    verify_sendgrid_signature(public, payload, *signed(private, payload))


@pytest.mark.parametrize("tamper", ["body", "stale", "missing", "garbage", "other_key"])
def test_forged_tampered_stale_or_unsigned_batches_are_refused(keys, tamper, tmp_path):
    public, private = keys
    payload = b'[{"event": "delivered"}]'
    signature, timestamp = signed(private, payload)
    if tamper == "body":
        payload = b'[{"event": "bounce"}]'
    elif tamper == "stale":
        signature, timestamp = signed(private, payload, at=time.time() - 3600)
    elif tamper == "missing":
        signature = ""
    elif tamper == "garbage":
        signature, timestamp = "!!not base64!!", "abc"
    else:
        public = webhook_keys.public_key(tmp_path)
    with pytest.raises(Unauthorized) as refused:
        verify_sendgrid_signature(public, payload, signature, timestamp)
    assert refused.value.forbidden


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ("not an object", "not_an_object"),
        ({"event": "open", "ledger_key": f"{KEY}:1", "sg_message_id": "m.x"}, "ignored_event"),
        ({"event": "delivered", "sg_message_id": "m.x"}, "no_ledger_key"),
        ({"event": "delivered", "ledger_key": "notifications/x:1", "sg_message_id": "m.x"}, "bad_ledger_key"),
        ({"event": "delivered", "ledger_key": f"{KEY}:zero", "sg_message_id": "m.x"}, "bad_ledger_key"),
        ({"event": "delivered", "ledger_key": f"{KEY}:1"}, "no_message_id"),
    ],
)
def test_an_event_naming_nothing_of_ours_is_skipped_with_its_reason(event, reason):
    assert parse_event(event) == reason


def test_processed_confirms_an_unconfirmed_email_and_delivered_closes_it():
    store = MemoryStore()
    ledger = Ledger(store, FixedClock(NOW))
    ledger.schedule([Planned(KEY, {"kind": "appointment_reminder"})])
    claim = ledger.claim(KEY, ledger.read(KEY), {})
    ledger.mark_unconfirmed(claim, channel="email", reason="sendgrid_answer_lost")
    events = [
        {"event": "processed", "ledger_key": f"{KEY}:1", "sg_message_id": "abc123.filterdrecv-1"},
        {"event": "delivered", "ledger_key": f"{KEY}:1", "sg_message_id": "abc123.filterdrecv-1"},
        {"event": "click", "ledger_key": f"{KEY}:1", "sg_message_id": "abc123.filterdrecv-1"},
    ]
    outcomes = apply_events(ledger, json.dumps(events).encode())
    assert outcomes == {"sent": 1, "delivered": 1, "ignored_event": 1}
    doc = store.stored(f"notifications/{KEY}")
    assert doc["state"] == "delivered" and doc["provider_message_id"] == "abc123"


def test_a_bounce_calls_the_failure_hook_once_and_a_replayed_one_says_it_is_one():
    store = MemoryStore()
    ledger = Ledger(store, FixedClock(NOW))
    ledger.schedule([Planned(KEY, {"kind": "appointment_reminder"})])
    ledger.mark_sent(ledger.claim(KEY, ledger.read(KEY), {}), channel="email", provider_message_id="abc123")
    calls: list[tuple[str, bool]] = []

    def hook(key: str, replayed: bool) -> None:
        calls.append((key, replayed))

    bounce = [{"event": "bounce", "ledger_key": f"{KEY}:1", "sg_message_id": "abc123.filterdrecv-1"}]
    assert apply_events(ledger, json.dumps(bounce).encode(), hook) == {"failed": 1}
    assert apply_events(ledger, json.dumps(bounce).encode(), hook) == {"ignored_failed": 1}
    assert calls == [(KEY, False), (KEY, True)] and store.stored(f"notifications/{KEY}")["state"] == "failed"


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"not json",
        b"[" * 5000 + b"]" * 5000,
        b'["\\ud800"]',
        b'[{"event": "processed", "sg_message_id": ' + b'"x"' * 0 + b"1e999}]",
    ],
)
def test_a_batch_that_is_not_clean_json_is_acknowledged_not_a_crash(body):
    assert apply_events(Ledger(MemoryStore(), FixedClock(NOW)), body) == {"malformed": 1}
