"""Lazy, cached-per-instance clients for Firestore, Cloud Tasks, Pub/Sub, Twilio and SendGrid.

No network and no heavy import happens until a client is first asked for (DESIGN §3.7:
google-cloud-tasks alone imports in ~0.6 s). Emulator variables:
- FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST: standard, honoured by the Google libraries themselves;
- CLOUD_TASKS_EMULATOR_HOST: host:port of the Cloud Tasks emulator (insecure gRPC);
- PROVIDER_SANDBOX_URL: base URL of the local Twilio/SendGrid sandbox; honoured only on the emulator.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from shared.platform.errors import ConfigError
from shared.platform.settings import on_emulator

if TYPE_CHECKING:
    from google.cloud import firestore as firestore_module
    from google.cloud import pubsub_v1, tasks_v2

TWILIO_API_HOSTS = ("https://api.twilio.com",)
PROVIDER_TIMEOUT_SECONDS = 10.0


def _project() -> str:
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if not project:
        raise ConfigError("missing required environment variable GOOGLE_CLOUD_PROJECT")
    return project


def sandbox_url() -> str | None:
    """The provider sandbox's base URL, or None in production. Refuses to half-apply."""
    url = os.environ.get("PROVIDER_SANDBOX_URL", "").strip().rstrip("/")
    if not url:
        return None
    if not on_emulator():
        raise ConfigError("PROVIDER_SANDBOX_URL is set but the emulator variables are not: refusing to guess")
    return url


@functools.cache
def firestore() -> firestore_module.Client:
    from google.cloud import firestore as firestore_module

    return firestore_module.Client(project=_project())


@functools.cache
def tasks() -> tasks_v2.CloudTasksClient:
    from google.cloud import tasks_v2

    emulator = os.environ.get("CLOUD_TASKS_EMULATOR_HOST", "").strip()
    if emulator:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(emulator)))
    return tasks_v2.CloudTasksClient()


@functools.cache
def publisher() -> pubsub_v1.PublisherClient:
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient()


@functools.cache
def twilio() -> Any:
    """twilio.rest.Client; on the local stack its HTTP calls go to the provider sandbox."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    base = sandbox_url()

    class _Http(TwilioHttpClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if base:
                for host in TWILIO_API_HOSTS:
                    if url.startswith(host):
                        url = base + url[len(host):]
            return super().request(method, url, *args, **kwargs)

    return Client(
        secret("TWILIO_ACCOUNT_SID"),
        secret("TWILIO_AUTH_TOKEN"),
        http_client=_Http(timeout=PROVIDER_TIMEOUT_SECONDS),
    )


@functools.cache
def sendgrid() -> Any:
    """sendgrid.SendGridAPIClient; on the local stack it talks to the provider sandbox."""
    from sendgrid import SendGridAPIClient

    base = sandbox_url()
    if base:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"), host=base)
    else:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"))
    client.client.timeout = PROVIDER_TIMEOUT_SECONDS  # python_http_client waits forever by default
    return client


def secret(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing required environment variable {name} (mapped from Secret Manager)")
    return value


def reset() -> None:
    """Forget every cached client (tests that change the environment between cases)."""
    for getter in (firestore, tasks, publisher, twilio, sendgrid):
        getter.cache_clear()
