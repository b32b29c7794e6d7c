"""sendgrid-events before its verification key exists (a first deploy: SendGrid shows the key only once its
webhook points at the deployed URL): every batch is answered 503 with Retry-After, so SendGrid retries it
instead of dropping it, and one log line names the cause; nothing is read or written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import webhook_keys
from shared.messaging.email_events import WEBHOOK_KEY_ENV, verification_key
from shared.platform import clients
from shared.platform.errors import RetryableError

MAIN = Path(__file__).resolve().parents[2] / "functions" / "task_handler" / "main.py"
BATCH = b'[{"event": "delivered", "ledger_key": "k:1", "sg_message_id": "m.1"}]'
HEADERS = {"X-Twilio-Email-Event-Webhook-Signature": "c2ln", "X-Twilio-Email-Event-Webhook-Timestamp": "1700000000"}


@pytest.fixture
def sendgrid_events():
    from functions_framework import create_app

    return create_app("sendgrid_events", str(MAIN), "http").test_client()


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_batch_before_the_key_is_configured_is_answered_503_with_retry_after(sendgrid_events, monkeypatch, capsys):
    monkeypatch.delenv(WEBHOOK_KEY_ENV, raising=False)
    answer = sendgrid_events.post("/", data=BATCH, headers=HEADERS)
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) >= 60
    assert answer.get_json()["error"] == "webhook_key_missing"
    lines = log_lines(capsys.readouterr().out)
    assert [(line["severity"], line["error_code"]) for line in lines] == [("WARNING", "webhook_key_missing")]


def test_with_the_key_configured_an_unsigned_batch_is_still_refused_403(sendgrid_events, monkeypatch, tmp_path):
    monkeypatch.setenv(WEBHOOK_KEY_ENV, webhook_keys.public_key(tmp_path))
    answer = sendgrid_events.post("/", data=BATCH, headers=HEADERS)
    assert answer.status_code == 403


def test_verification_key_reads_the_mapped_secret_and_classifies_its_absence(monkeypatch):
    monkeypatch.setenv(WEBHOOK_KEY_ENV, "the-public-key")
    assert verification_key(clients.secret) == "the-public-key"
    monkeypatch.setenv(WEBHOOK_KEY_ENV, "  ")
    with pytest.raises(RetryableError) as missing:
        verification_key(clients.secret)
    assert missing.value.code == "webhook_key_missing" and not missing.value.throttled
