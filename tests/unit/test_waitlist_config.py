"""The waitlist's environment and its appointment.created publisher, on fakes."""

from __future__ import annotations

import json

import pytest

from shared.platform import clients
from shared.platform.errors import ConfigError
from shared.platform.settings import Settings
from shared.waitlist.events import PubSubAppointmentEvents
from shared.wiring.services import Services

ENV = {
    "GOOGLE_CLOUD_PROJECT": "p",
    "TASKS_LOCATION": "us-central1",
    "TASK_HANDLER_URL": "https://handler.example.test/",
    "TASKS_SERVICE_ACCOUNT": "tasks@p.iam.gserviceaccount.com",
}


def test_the_public_urls_come_from_the_environment_and_fail_by_name():
    urls = {"INBOUND_SMS_URL": "https://in.example.test/", "WAITLIST_CLAIM_URL": "https://claim.example.test/"}
    config = Settings.from_env({**ENV, **urls})
    assert config.needed("inbound_sms_url") == "https://in.example.test/"
    assert config.needed("claim_url") == "https://claim.example.test/"
    with pytest.raises(ConfigError, match="INBOUND_SMS_URL"):
        Settings.from_env(ENV).needed("inbound_sms_url")
    with pytest.raises(ConfigError, match="WAITLIST_CLAIM_URL"):
        Settings.from_env(ENV).needed("claim_url")


def test_the_token_key_is_a_secret_from_the_environment(monkeypatch):
    wired = Services(Settings.from_env(ENV))
    monkeypatch.setenv("WAITLIST_TOKEN_KEY", "a-key-from-secret-manager")
    assert wired.waitlist_token_key == b"a-key-from-secret-manager"
    monkeypatch.delenv("WAITLIST_TOKEN_KEY")
    with pytest.raises(ConfigError, match="WAITLIST_TOKEN_KEY"):
        _ = wired.waitlist_token_key
    assert callable(clients.secret)  # the one place secrets are read


class FakeFuture:
    def result(self, timeout: float) -> str:
        return "message-1"


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic: str, data: bytes, **attributes: str) -> FakeFuture:
        self.published.append((topic, data, attributes))
        return FakeFuture()


def test_a_booking_is_published_as_the_booking_platform_would():
    publisher = FakePublisher()
    made: list[int] = []

    def client() -> FakePublisher:
        made.append(1)
        return publisher

    events = PubSubAppointmentEvents(client, "medspa-test")
    assert made == []  # no client until the first publish
    events.created("wl-123")
    ((topic, data, attributes),) = publisher.published
    assert topic == "projects/medspa-test/topics/appointment-events"
    assert json.loads(data) == {"event": "appointment.created", "appointment_id": "wl-123"}
    assert attributes == {"source": "waitlist"}
