"""The smoke test's clinic (`smoke_test: true`) never messages anyone: its SMS go out only with Twilio's test
credentials (missing: a permanent failure, never a live send) and its email only in SendGrid's sandbox mode."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from shared.messaging.providers import OutgoingSms, SendGridEmail, TwilioTestSms
from shared.platform import clients
from shared.platform.errors import ConfigError, PermanentError
from tests.builders import CLINIC_ID, FIRST_TRY, World
from tests.fakes import RecordingSms
from tests.unit.test_providers import EMAIL, Messages, SendGrid, Twilio


def smoke_world(*, test_sms: RecordingSms | None) -> World:
    world = World(test_sms=test_sms)
    world.clinic(CLINIC_ID, smoke_test=True, sms_from="+15005550006")
    return world


def test_a_smoke_clinics_sms_goes_out_with_the_test_credentials_only():
    world = smoke_world(test_sms=RecordingSms())
    task = world.task(world.appointment(world.patient(phone="+15005550006")))
    outcome = world.messages().deliver(task, FIRST_TRY)
    assert outcome.status == "sent" and outcome.channel == "sms"
    assert world.sms.sent == [] and world.test_sms is not None and len(world.test_sms.sent) == 1
    assert world.entry(task.dedup_key)["state"] == "sent"


def test_without_test_credentials_a_smoke_sms_fails_for_good_and_nothing_goes_out_live():
    world = smoke_world(test_sms=None)
    task = world.task(world.appointment(world.patient(phone="+15005550006", email=None)))
    with pytest.raises(PermanentError) as caught:
        world.messages().deliver(task, FIRST_TRY)
    assert caught.value.code == "twilio_test_credentials_missing"
    assert world.sms.sent == [] and world.email.sent == []
    entry = world.entry(task.dedup_key)
    assert (entry["state"], entry["reason"]) == ("failed", "twilio_test_credentials_missing")


def test_a_clinic_without_the_flag_sends_live_and_never_through_the_test_sender():
    world = World(test_sms=RecordingSms())
    task = world.task(world.appointment(world.patient()))
    assert world.messages().deliver(task, FIRST_TRY).status == "sent"
    assert len(world.sms.sent) == 1 and world.test_sms is not None and world.test_sms.sent == []


def test_a_smoke_clinics_email_is_sent_in_sendgrids_sandbox_mode():
    world = smoke_world(test_sms=RecordingSms())
    task = world.task(world.appointment(world.patient(preferred_channel="email")))
    assert world.messages().deliver(task, FIRST_TRY).channel == "email"
    (sent,) = world.email.sent
    assert sent.sandbox_mode is True


def test_an_ordinary_clinics_email_is_not_in_sandbox_mode():
    world = World()
    task = world.task(world.appointment(world.patient(preferred_channel="email")))
    world.messages().deliver(task, FIRST_TRY)
    (sent,) = world.email.sent
    assert sent.sandbox_mode is False


def test_sandbox_mode_is_asked_of_sendgrid_in_mail_settings():
    client = SendGrid()
    SendGridEmail(client).send_email(replace(EMAIL, sandbox_mode=True))
    SendGridEmail(client).send_email(EMAIL)
    sandboxed, live = client.sent
    assert sandboxed["mail_settings"] == {"sandbox_mode": {"enable": True}}
    assert "mail_settings" not in live


def test_the_test_sender_refuses_for_good_when_its_credentials_are_missing():
    def missing() -> Any:
        raise ConfigError("missing required environment variable TWILIO_TEST_ACCOUNT_SID")

    sms = TwilioTestSms(missing)
    with pytest.raises(PermanentError) as caught:
        sms.send_sms(OutgoingSms(to="+15005550006", sender="+15005550006", body="smoke"))
    assert caught.value.code == "twilio_test_credentials_missing"


def test_the_test_sender_builds_its_client_on_its_first_send_only():
    built: list[Messages] = []

    def factory() -> Twilio:
        built.append(Messages())
        return Twilio(built[-1])

    sms = TwilioTestSms(factory)
    assert built == []
    sms.send_sms(OutgoingSms(to="+15005550006", sender="+15005550006", body="one"))
    sms.send_sms(OutgoingSms(to="+15005550006", sender="+15005550006", body="two"))
    assert len(built) == 1 and [params["body"] for params in built[0].created] == ["one", "two"]


@pytest.mark.parametrize(
    ("environment", "problem"),
    [
        ({}, "TWILIO_TEST_ACCOUNT_SID"),
        ({"TWILIO_TEST_ACCOUNT_SID": "AC" + "1" * 32}, "TWILIO_TEST_AUTH_TOKEN"),
        ({"TWILIO_TEST_ACCOUNT_SID": "AC" + "2" * 32, "TWILIO_TEST_AUTH_TOKEN": "t"}, "live account's SID"),
    ],
)
def test_the_test_client_refuses_missing_credentials_and_the_live_accounts_sid(monkeypatch, environment, problem):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "2" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "live-token")
    for name in ("TWILIO_TEST_ACCOUNT_SID", "TWILIO_TEST_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    clients.twilio_test.cache_clear()
    try:
        with pytest.raises(ConfigError, match=problem):
            clients.twilio_test()
    finally:
        clients.twilio_test.cache_clear()


def test_the_test_credentials_are_optional_secrets_mapped_to_the_task_handler_only():
    from deploy import registry

    test_secrets = {"TWILIO_TEST_ACCOUNT_SID", "TWILIO_TEST_AUTH_TOKEN"}
    assert test_secrets <= set(registry.OPTIONAL_SECRETS) and test_secrets <= set(registry.SECRETS)
    holders = {fn.name for fn in registry.FUNCTIONS if test_secrets & set(fn.secrets)}
    assert holders == {"task-handler"} and test_secrets <= set(registry.function("task-handler").secrets)
