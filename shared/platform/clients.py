"""Lazy, cached-per-instance clients for Firestore, Cloud Tasks, Pub/Sub, Twilio and SendGrid.

No network and no heavy import happens until a client is first asked for (google-cloud-tasks alone
imports in ~0.6 s). FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST are honoured by the Google
libraries themselves; the other local switches come from shared.platform.emulator.

The Firestore client's write batches encode a plain document (strings, numbers, booleans, None,
datetimes, and lists and maps of those) straight into its Write protobuf: the library builds the same
message through proto-plus field by field, about 250 us a document, the largest part of the fan-out's
CPU per message. Anything else (sentinels such as SERVER_TIMESTAMP, references, geo points, field
paths with dots) goes through the library as before; tests/unit/test_clients.py checks the two give
equal messages. The same client decodes BatchGetDocuments answers straight from their protobufs
(`read_documents`; bytes, references, geo points, vectors and BSON maps through the library): the
library converts them through proto-plus field by field and deep-copies every document, which was most
of the task handler's read CPU. Same RPC, same default retry, same round trips
(bench/handler_round_trips.py). Commits stay the library's: building the request and reading the answer
directly measured no cheaper than gRPC's own work for one write (bench/handler_cpu.py --store).

SendGrid's client (python_http_client) opens a new connection for every request (urllib, `Connection:
close`); `sendgrid()` gives it a transport over one requests.Session, which keeps connections alive,
with the same requests (method, URL, headers, body) and the same exceptions on failure (which failures
are safe to retry: docs/architecture.md, "Provider connections").
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from shared.platform import emulator
from shared.platform import env as envvars
from shared.platform.errors import ConfigError
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
    return firestore_class()(project=_project())


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SIMPLE_FIELD = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")  # a field name the API writes as itself


class _NotPlain(Exception):
    """A value the fast encoder leaves to the library."""


def _encode_into(target: Any, value: Any) -> None:
    """Set a Firestore Value protobuf to `value`, exactly as google.cloud.firestore_v1._helpers.encode_value."""
    kind = type(value)
    if value is None:
        target.null_value = 0
    elif kind is bool:
        target.boolean_value = value
    elif kind is int:
        target.integer_value = value
    elif kind is float:
        target.double_value = value
    elif kind is str:
        target.string_value = value
    elif isinstance(value, datetime):
        _timestamp_into(target.timestamp_value, value)
    elif kind is list or kind is tuple:
        values = target.array_value.values
        target.array_value.SetInParent()
        for item in value:
            _encode_into(values.add(), item)
    elif kind is dict and value and all(type(key) is str for key in value):
        fields = target.map_value.fields
        for key in sorted(value):
            _encode_into(fields[key], value[key])
    else:
        raise _NotPlain


def _timestamp_into(target: Any, value: datetime) -> None:
    """As the library: whole seconds of the UTC instant (a naive datetime is UTC) and its microseconds."""
    from google.api_core.datetime_helpers import DatetimeWithNanoseconds

    if isinstance(value, DatetimeWithNanoseconds):
        target.CopyFrom(value.timestamp_pb())
        return
    delta = (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)) - _EPOCH
    target.seconds, target.nanos = delta.days * 86400 + delta.seconds, delta.microseconds * 1000


def plain_write(path: str, data: Any, *, exists: bool | None = None, mask: bool = False) -> Any | None:
    """The Write protobuf (proto-plus wrapped) for a document of plain values, or None for the library to do."""
    from google.cloud.firestore_v1.types import write

    if type(data) is not dict or not data or not all(type(key) is str for key in data):
        return None
    raw = write.Write.pb()()
    document = raw.update
    document.name = path
    try:
        for key in sorted(data):
            _encode_into(document.fields[key], data[key])
    except (_NotPlain, ValueError, TypeError, OverflowError):
        return None
    if mask:
        raw.update_mask.field_paths.extend(sorted(data))
    if exists is not None:
        raw.current_document.exists = exists
    return write.Write.wrap(raw)


def _decode(value: Any) -> Any:
    """A Firestore Value protobuf as google.cloud.firestore_v1._helpers.decode_value gives it, for plain values."""
    kind = value.WhichOneof("value_type")
    if kind == "string_value":
        return value.string_value
    if kind == "timestamp_value":
        from google.api_core.datetime_helpers import DatetimeWithNanoseconds

        return DatetimeWithNanoseconds.from_timestamp_pb(value.timestamp_value)
    if kind == "integer_value":
        return value.integer_value
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "null_value":
        return None
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [_decode(item) for item in value.array_value.values]
    if kind == "map_value":
        return _decode_fields(value.map_value.fields)
    raise _NotPlain  # bytes, references, geo points: the library's types


def _decode_fields(fields: Any) -> dict[str, Any]:
    decoded = {key: _decode(item) for key, item in fields.items()}
    if any(key.startswith("__") for key in decoded):  # the library's vector and BSON maps (`__type__`, `__oid__`…)
        raise _NotPlain
    return decoded


def decode_document(fields: Any, client: Any) -> dict[str, Any]:
    """A document's fields (protobuf map of Values), decoded exactly as the library's DocumentSnapshot.to_dict()."""
    try:
        return _decode_fields(fields)
    except _NotPlain:
        from google.cloud.firestore_v1 import _helpers

        decoded: Any = _helpers.decode_dict(fields, client)
        return decoded


def _well_formed(path: str) -> bool:
    """A document path the library would accept (else it goes through the library, which says why not)."""
    parts = path.split("/")
    return len(parts) % 2 == 0 and all(parts)


@functools.cache
def firestore_class() -> type:
    """google.cloud.firestore.Client, with write batches that encode plain documents directly."""
    from google.cloud import firestore as firestore_module
    from google.cloud.firestore_v1.batch import WriteBatch

    class Batch(WriteBatch):
        def create(self, reference: Any, document_data: Any) -> None:
            pb = plain_write(reference._document_path, document_data, exists=False)
            if pb is None:
                return super().create(reference, document_data)
            self._document_references[reference._document_path] = reference
            self._add_write_pbs([pb])

        def set(self, reference: Any, document_data: Any, merge: Any = False) -> None:
            plain = merge is False or (
                merge is True
                and type(document_data) is dict
                and all(type(value) is not dict and _SIMPLE_FIELD.match(key) for key, value in document_data.items())
            )
            pb = plain_write(reference._document_path, document_data, mask=merge is True) if plain else None
            if pb is None:
                return super().set(reference, document_data, merge=merge)
            self._document_references[reference._document_path] = reference
            self._add_write_pbs([pb])

        def update(self, reference: Any, field_updates: Any, option: Any = None) -> None:
            simple = type(field_updates) is dict and all(_SIMPLE_FIELD.match(key) for key in field_updates)
            if option.__class__.__name__ == "ExistsOption" or not simple:
                return super().update(reference, field_updates, option=option)
            pb = plain_write(reference._document_path, field_updates, mask=True, exists=None if option else True)
            if pb is None:
                return super().update(reference, field_updates, option=option)
            if option is not None:
                option.modify_write(pb)
            self._document_references[reference._document_path] = reference
            self._add_write_pbs([pb])

    class Client(firestore_module.Client):
        def batch(self) -> Any:
            return Batch(self)

        def read_documents(self, paths: list[str], fields: list[str] | None) -> Any:
            """(path, data, update_time) of each existing document among `paths`, in one BatchGetDocuments call
            (the library's get_all, with its default retry), decoded from the raw protobuf: the library goes
            through proto-plus field by field and then deep-copies every document, most of a read's CPU."""
            from proto.datetime_helpers import DatetimeWithNanoseconds  # type: ignore[import-untyped]

            if not all(_well_formed(path) for path in paths):
                refs = [self.document(path) for path in paths]
                for snapshot in self.get_all(refs, field_paths=fields):
                    if snapshot.exists:
                        yield snapshot.reference.path, snapshot.to_dict() or {}, snapshot.update_time
                return
            prefix = f"{self._database_string}/documents/"
            request = {
                "database": self._database_string,
                "documents": [prefix + path for path in paths],
                "mask": {"field_paths": fields} if fields is not None else None,
                "transaction": None,
            }
            for response in self._firestore_api.batch_get_documents(request=request, metadata=self._rpc_metadata):
                raw = type(response).pb(response)
                if raw.WhichOneof("result") != "found":
                    continue
                found = raw.found
                # the version as proto-plus gives it: the nanosecond-exact class a precondition is sent from
                version = DatetimeWithNanoseconds.from_timestamp_pb(found.update_time)
                yield found.name[len(prefix) :], decode_document(found.fields, self), version

    return Client


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

    from shared.platform.settings import settings

    base = emulator.sandbox_url()

    class _Http(TwilioHttpClient):
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

    from shared.platform.settings import settings

    base = emulator.sandbox_url()
    if base:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"), host=base)
    else:
        client = SendGridAPIClient(api_key=secret("SENDGRID_API_KEY"))
    client.client = keep_alive(client.client)
    client.client.timeout = settings().provider_timeout_seconds  # python_http_client waits forever by default
    return client


def session() -> Any:
    """A requests.Session whose environment settings (proxies, CA bundle) are worked out once per origin:
    requests scans the whole environment for proxy variables on every request (about 0.4 ms), and an
    instance's environment does not change while it runs."""
    return _session_class()()


@functools.cache
def _session_class() -> type:
    import requests

    class Session(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.environment: dict[tuple[Any, ...], dict[str, Any]] = {}

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
            origin = "/".join(str(url).split("/", 3)[:3])  # proxies depend on the scheme and host only
            key = (origin, tuple(sorted((proxies or {}).items())), stream, verify, cert)
            found = self.environment.get(key)
            if found is None:
                found = super().merge_environment_settings(url, proxies, stream, verify, cert)
                self.environment[key] = found
            return {**found, "proxies": dict(found["proxies"])}

    return Session


def keep_alive(client: Any) -> Any:
    """A python_http_client.Client that sends its requests over one requests.Session instead of urllib: the
    same requests (method, URL, the sendgrid package's headers, body), the same answers and exceptions,
    but connections kept alive (urllib opens one per request and says `Connection: close`)."""
    session_client = _session_client_class()(
        host=client.host,
        version=client._version,
        request_headers=client.request_headers,
        url_path=list(client._url_path),
        append_slash=client.append_slash,
        timeout=client.timeout,
    )
    session_client.session = session()
    return session_client


@functools.cache
def _session_client_class() -> type:
    import python_http_client

    class SessionClient(python_http_client.Client):
        session: Any = None

        def _build_client(self, name: str | None = None) -> Any:
            url_path = self._url_path + [name] if name else self._url_path
            child = type(self)(
                host=self.host,
                version=self._version,
                request_headers=self.request_headers,
                url_path=url_path,
                append_slash=self.append_slash,
                timeout=self.timeout,
            )
            child.session = self.session
            return child

        def __getattr__(self, name: str) -> Any:
            if name not in self.methods:
                return super().__getattr__(name)  # a URL segment, or version()
            method = name.upper()

            def http_request(
                request_body: Any = None,
                query_params: Any = None,
                request_headers: Any = None,
                timeout: float | None = None,
                **_: Any,
            ) -> Any:
                # python_http_client's own http_request, without the urllib opener it builds on every call
                # (its handlers and proxy lookup were a third of an email's CPU) that this transport never uses.
                if request_headers:
                    self._update_headers(request_headers)
                if request_body is None:
                    data = None
                elif self.request_headers.get("Content-Type", "application/json") != "application/json":
                    data = request_body.encode("utf-8")
                else:
                    self.request_headers.setdefault("Content-Type", "application/json")
                    data = json.dumps(request_body).encode("utf-8")
                url = self._build_url(query_params)
                answer = _send(self.session, method, url, dict(self.request_headers), data, timeout or self.timeout)
                return python_http_client.client.Response(answer)

            return http_request

    return SessionClient


class _Answer:
    """A requests.Response as python_http_client.Response reads a urllib answer."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def getcode(self) -> int:
        return int(self.response.status_code)

    def read(self) -> bytes:
        return bytes(self.response.content)

    def info(self) -> Any:
        return _message(self.response.headers)


def _message(headers: Any) -> Any:
    import http.client

    message = http.client.HTTPMessage()
    for name, value in headers.items():
        message[name] = value
    return message


def _send(session: Any, method: str, url: str, headers: dict[str, str], data: bytes | None, timeout: Any) -> Any:
    """A request sent through `session`; errors raised as urllib (and python_http_client) raise them."""
    import io
    import urllib.error

    import requests
    from python_http_client.exceptions import handle_error

    try:
        response = session.request(method, url, data=data, headers=headers, timeout=timeout)
    except requests.ConnectTimeout:
        # No connection, so nothing sent: safe to retry (urllib cannot tell this from a timeout mid-send).
        raise urllib.error.URLError(ConnectionRefusedError("connect timed out")) from None
    except requests.ReadTimeout:
        raise TimeoutError("timed out") from None  # as a read timeout in getresponse()
    except requests.ConnectionError as exc:
        text = repr(exc)
        if "NewConnectionError" in text or "NameResolutionError" in text or "BrokenPipe" in text:
            raise urllib.error.URLError(OSError(text[:200])) from None  # nothing (whole) reached the provider
        raise ConnectionResetError(text[:200]) from None  # the request went out; its answer did not come back
    if response.status_code >= 400:
        error = urllib.error.HTTPError(
            url,
            response.status_code,
            response.reason or "",
            _message(response.headers),
            io.BytesIO(response.content),
        )
        raise handle_error(error) from None
    return _Answer(response)


def reset() -> None:
    """Forget every cached client (tests that change the environment between cases)."""
    for getter in (firestore, store, tasks, publisher, twilio, twilio_test, sendgrid):
        getter.cache_clear()
