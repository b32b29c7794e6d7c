"""The factories the services call: each client built once per instance from the environment, the Firestore
client with its direct wire path, both provider clients over keep-alive sessions with the configured timeout."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.platform import clients, firestore_wire, sessions
from shared.platform.settings import settings

TIMEOUT = 7.5  # PROVIDER_TIMEOUT_SECONDS, not its default


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # nothing is reached: no call is made
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.test")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("PROVIDER_TIMEOUT_SECONDS", str(TIMEOUT))
    for name in ("TASK_HANDLER_URL", "TASKS_LOCATION", "TASKS_SERVICE_ACCOUNT"):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("PROVIDER_SANDBOX_URL", raising=False)
    clients.reset()
    settings.cache_clear()
    yield
    clients.reset()
    settings.cache_clear()


def test_each_client_is_built_once_per_instance_until_reset(environment):
    built = clients.sendgrid(), clients.twilio(), clients.firestore(), clients.store()
    assert (clients.sendgrid(), clients.twilio(), clients.firestore(), clients.store()) == built
    clients.reset()
    assert clients.sendgrid() is not built[0] and clients.firestore() is not built[2]


def test_the_firestore_client_is_the_direct_wire_one_behind_the_store(environment):
    assert isinstance(clients.firestore(), firestore_wire.client_class())
    assert clients.store().client is clients.firestore() and clients.firestore().project == "p"


def test_sendgrid_sends_over_one_keep_alive_session_with_the_provider_timeout(environment):
    transport = clients.sendgrid().client
    assert isinstance(transport.session, sessions._session_class())
    assert transport.host == "https://api.sendgrid.com"
    assert transport.timeout == TIMEOUT
    assert transport.mail.send.session is transport.session  # every URL segment shares the connection


def test_twilio_sends_over_a_session_that_keeps_its_own_adapters(environment):
    from twilio.http.http_client import TwilioHttpClient

    http = clients.twilio().http_client
    assert isinstance(http.session, sessions._session_class())
    assert http.timeout == TIMEOUT
    assert type(http.session.adapters["https://"]) is type(TwilioHttpClient().session.adapters["https://"])
