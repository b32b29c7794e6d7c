"""Lazy, cached-per-instance clients for Firestore, Cloud Tasks, Pub/Sub, Twilio and SendGrid.

No network and no heavy import happens until a client is first asked for (google-cloud-tasks alone
imports in ~0.6 s). FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST are honoured by the Google
libraries themselves; the other local switches come from shared.platform.emulator.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from shared.platform import emulator
from shared.platform import env as envvars
from shared.platform.store import FirestoreStore

if TYPE_CHECKING:
    from google.cloud import firestore as firestore_module
    from google.cloud import pubsub_v1, tasks_v2  # type: ignore[attr-defined]

TWILIO_API_HOSTS = ("https://api.twilio.com",)


def _project() -> str:
    return envvars.required(envvars.environ(), "GOOGLE_CLOUD_PROJECT")


def secret(name: str) -> str:
    """A secret, mapped into the environment from Secret Manager by deploy.sh."""
    return envvars.required(envvars.environ(), name, " (mapped from Secret Manager)")


@functools.cache
def firestore() -> firestore_module.Client:
    from google.cloud import firestore as firestore_module

    return firestore_module.Client(project=_project())


@functools.cache
def store() -> FirestoreStore:
    """The services' view of Firestore (shared.platform.store)."""
    return FirestoreStore(firestore())


@functools.cache
def tasks() -> tasks_v2.CloudTasksClient:
    from google.cloud import tasks_v2

    host = emulator.tasks_emulator_host()
    if host:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(host)))
    return tasks_v2.CloudTasksClient()


@functools.cache
def publisher() -> pubsub_v1.PublisherClient:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    return pubsub_v1.PublisherClient()


@functools.cache
def twilio() -> Any:
    """twilio.rest.Client; on the local stack its HTTP calls go to the provider sandbox."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    from shared.platform.settings import settings

    base = emulator.sandbox_url()

    class _Http(TwilioHttpClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if base:
                for host in TWILIO_API_HOSTS:
                    if url.startswith(host):
                        url = base + url[len(host) :]
            return super().request(method, url, *args, **kwargs)

    return Client(
        secret("TWILIO_ACCOUNT_SID"),
        secret("TWILIO_AUTH_TOKEN"),
        http_client=_Http(timeout=settings().provider_timeout_seconds),
    )


@functools.cache
def sendgrid() -> Any:
    """sendgrid.SendGridAPIClient; on the local stack it talks to the provider sandbox."""
    from sendgrid import SendGridAPIClient

    from shared.platform.settings import settings

    base = emulator.sandbox_url()
    if base:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"), host=base)
    else:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"))
    client.client.timeout = settings().provider_timeout_seconds  # python_http_client waits forever by default
    return client


def reset() -> None:
    """Forget every cached client (tests that change the environment between cases)."""
    for getter in (firestore, store, tasks, publisher, twilio, sendgrid):
        getter.cache_clear()
