"""The provider sandbox answers Twilio's test credentials and SendGrid's sandbox mode as the real APIs do:
magic numbers, nothing delivered, no status callbacks, no other resource; a sandboxed email is answered 200,
recorded as sandboxed, never delivered."""

from __future__ import annotations

from typing import Any

import pytest

from local.sandbox.server import make_app
from local.sandbox.settings import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SENDGRID_KEY,
    DEFAULT_TEST_ACCOUNT_SID,
    DEFAULT_TEST_AUTH_TOKEN,
    SandboxSettings,
)
from local.sandbox.state import Sandbox

MESSAGES = f"/2010-04-01/Accounts/{DEFAULT_TEST_ACCOUNT_SID}/Messages.json"
CALLBACK = "http://127.0.0.1:9/twilio-status?ledger=k&g=1"


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(SandboxSettings(callback_delay_seconds=0))


@pytest.fixture
def api(sandbox: Sandbox) -> Any:
    return make_app(sandbox).test_client()


def send(api: Any, to: str, sender: str = "+15005550006", *, token: str = DEFAULT_TEST_AUTH_TOKEN) -> Any:
    form = {"To": to, "From": sender, "Body": "smoke", "StatusCallback": CALLBACK}
    return api.post(MESSAGES, data=form, auth=(DEFAULT_TEST_ACCOUNT_SID, token))


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
        ("5551234567", 21211),
    ],
)
def test_magic_to_numbers_earn_twilios_errors(api, sandbox, to, code):
    answer = send(api, to)
    assert answer.status_code == 400 and answer.get_json()["code"] == code
    assert sandbox.outbox.list() == []


@pytest.mark.parametrize(
    ("sender", "code"),
    [("+15005550001", 21212), ("+15005550007", 21606), ("+15005550008", 21611), ("+12125550100", 21606)],
)
def test_only_the_magic_from_number_may_send_with_test_credentials(api, sender, code):
    answer = send(api, "+15005550006", sender)
    assert answer.status_code == 400 and answer.get_json()["code"] == code


def test_a_valid_test_send_is_accepted_queued_and_never_delivered_or_called_back(api, sandbox):
    answer = send(api, "+15005550006")
    assert answer.status_code == 201 and answer.get_json()["status"] == "queued"
    sandbox.courier.close()  # every delivery the courier was given has been played by now
    (message,) = sandbox.outbox.list()
    assert message["status"] == "queued" and message["account_sid"] == DEFAULT_TEST_ACCOUNT_SID
    assert message["callbacks"] == [] and [step["status"] for step in message["history"]] == ["queued"]


def test_the_test_sid_needs_the_test_token(api):
    assert send(api, "+15005550006", token=DEFAULT_AUTH_TOKEN).status_code == 401


def test_test_credentials_may_not_read_the_message_list(api):
    answer = api.get(MESSAGES, auth=(DEFAULT_TEST_ACCOUNT_SID, DEFAULT_TEST_AUTH_TOKEN))
    assert answer.status_code == 403 and answer.get_json()["code"] == 20008


def test_the_live_credentials_still_send_to_any_valid_number(api, sandbox):
    form = {"To": "+15005550001", "From": "+12125550100", "Body": "live"}
    answer = api.post(
        f"/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
        data=form,
        auth=(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN),
    )
    assert answer.status_code == 201  # the magic numbers mean nothing to the live account


def mail(**extra: Any) -> dict[str, Any]:
    return {
        "personalizations": [{"to": [{"email": "smoke@example.com"}]}],
        "from": {"email": "clinic@example.com"},
        "subject": "Reminder",
        "content": [{"type": "text/plain", "value": "See you"}],
        **extra,
    }


def post_mail(api: Any, body: dict[str, Any]) -> Any:
    return api.post("/v3/mail/send", json=body, headers={"Authorization": f"Bearer {DEFAULT_SENDGRID_KEY}"})


def test_a_sandbox_mode_email_is_answered_200_and_recorded_as_sandboxed(api, sandbox):
    answer = post_mail(api, mail(mail_settings={"sandbox_mode": {"enable": True}}))
    assert answer.status_code == 200 and answer.data == b""
    (message,) = sandbox.outbox.list()
    assert message["status"] == "sandboxed" and [step["status"] for step in message["history"]] == ["sandboxed"]


def test_sandbox_mode_off_sends_as_usual(api, sandbox):
    assert post_mail(api, mail(mail_settings={"sandbox_mode": {"enable": False}})).status_code == 202
    assert sandbox.outbox.list()[0]["status"] == "delivered"


def test_sandbox_modes_enable_must_be_a_boolean(api, sandbox):
    answer = post_mail(api, mail(mail_settings={"sandbox_mode": {"enable": "true"}}))
    assert answer.status_code == 400
    assert answer.get_json()["errors"][0]["field"] == "mail_settings.sandbox_mode.enable"
    assert sandbox.outbox.list() == []


def test_a_sandbox_mode_email_is_still_validated(api, sandbox):
    answer = post_mail(api, mail(subject=None, mail_settings={"sandbox_mode": {"enable": True}}))
    assert answer.status_code == 400 and sandbox.outbox.list() == []
