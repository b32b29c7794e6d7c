"""Lazy, cached-per-instance clients for Firestore, Cloud Tasks, Pub/Sub, Twilio and SendGrid.

No network and no heavy import happens until a client is first asked for (google-cloud-tasks alone
imports in ~0.6 s; a function that sends nothing never imports the providers' transports either).
FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST are honoured by the Google libraries themselves; the
other local switches come from shared.platform.emulator. The Firestore client is the library's with
plain documents encoded and decoded directly (shared.platform.firestore_wire); both provider clients
send over keep-alive sessions (shared.platform.sessions, shared.platform.sendgrid_transport).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from shared.platform import emulator
from shared.platform import env as envvars
from shared.platform.errors import ConfigError
from shared.platform.firestore_wire import client_class
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
    client: firestore_module.Client = client_class()(project=_project())
    return client


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
    return _twilio_client(secret("TWILIO_ACCOUNT_SID"), secret("TWILIO_AUTH_TOKEN"))


@functools.cache
def twilio_test() -> Any:
    """twilio.rest.Client with the account's test credentials (the smoke test's clinic only). ConfigError when they
    are not configured (an optional secret), or when the "test" SID is the live account's: a smoke send must
    never go out with live credentials."""
    account_sid = secret("TWILIO_TEST_ACCOUNT_SID")
    if account_sid == envvars.environ().get("TWILIO_ACCOUNT_SID", "").strip():
        raise ConfigError("TWILIO_TEST_ACCOUNT_SID is the live account's SID, not its test credentials")
    return _twilio_client(account_sid, secret("TWILIO_TEST_AUTH_TOKEN"))


def _twilio_client(account_sid: str, auth_token: str) -> Any:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    from shared.platform.sessions import session
    from shared.platform.settings import settings

    base = emulator.sandbox_url()

    class _Http(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
        session: Any

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            replacement: Any = session()
            replacement.adapters = self.session.adapters  # the https adapter TwilioHttpClient sized
            self.session = replacement

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if base:
                for host in TWILIO_API_HOSTS:
                    if url.startswith(host):
                        url = base + url[len(host) :]
            return super().request(method, url, *args, **kwargs)

    return Client(account_sid, auth_token, http_client=_Http(timeout=settings().provider_timeout_seconds))


@functools.cache
def sendgrid() -> Any:
    """sendgrid.SendGridAPIClient over a keep-alive transport; on the local stack it talks to the sandbox."""
    from sendgrid import SendGridAPIClient

    from shared.platform.sendgrid_transport import keep_alive
    from shared.platform.settings import settings

    base = emulator.sandbox_url()
    if base:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"), host=base)
    else:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"))
    client.client = keep_alive(client.client)
    client.client.timeout = settings().provider_timeout_seconds  # python_http_client waits forever by default
    return client


def reset() -> None:
    """Forget every cached client (tests that change the environment between cases)."""
    for getter in (firestore, store, tasks, publisher, twilio, twilio_test, sendgrid):
        getter.cache_clear()
