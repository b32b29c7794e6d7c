"""Twilio and SendGrid behind two small Protocols, with every provider answer classified.

- accepted → the provider's message id;
- the recipient cannot get this channel (Twilio 21211 invalid number, 21610 replied STOP, 21614 not a
  mobile number; SendGrid 400 on the address) → RecipientRejected: the caller may fall back to the
  other channel, else it is permanent;
- rate limited (Twilio 20429 or HTTP 429) → RetryableError(throttled) with the provider's Retry-After;
- the request never reached the provider (connection refused, DNS, connect timeout) → RetryableError;
- the request went out but no answer came back (read timeout, connection dropped before or during the
  answer) → SendUnconfirmed: the provider may have accepted it, so the caller must not simply send again
  (docs/architecture.md, "An answer lost").
  Both SDKs send over requests (shared.platform.sessions), so one function tells these two apart, by the
  type of requests' exception and of the urllib3 error it wraps (`_never_sent`);
- 5xx → RetryableError; any other 4xx → PermanentError (our request is wrong; retrying cannot help).

A clinic reserved for the smoke test (`smoke_test: true`, `python -m ops smoke`) sends its SMS through
`TwilioTestSms` (Twilio's test credentials: validated like a live send, never delivered, no status
callbacks) and its email with SendGrid's sandbox mode (validated, answered 200, never delivered, no events).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Protocol

from shared.platform.errors import ConfigError, PermanentError, RetryableError

TWILIO_RECIPIENT_CODES = {21211: "invalid_number", 21610: "sms_opted_out", 21614: "not_mobile"}
TWILIO_THROTTLED_CODES = (20429,)
LOOKUP_LIMIT = 50  # messages to one recipient since the claim: more than enough to find ours
LOOKUP_SKEW = timedelta(minutes=5)


class RecipientRejected(PermanentError):
    """This recipient cannot be reached on this channel; another channel may still work."""

    def __init__(self, channel: str, reason: str, provider_code: int | None = None) -> None:
        super().__init__(f"{channel} recipient rejected: {reason}", code=reason)
        self.channel, self.reason, self.provider_code = channel, reason, provider_code


class SendUnconfirmed(RetryableError):
    """The request reached the provider but its answer was lost: the message may or may not exist."""

    def __init__(self, channel: str, code: str) -> None:
        super().__init__(
            f"{channel} send unconfirmed: the provider's answer was lost", retry_after_seconds=30, code=code
        )
        self.channel = channel


@dataclass(frozen=True)
class OutgoingSms:
    to: str
    sender: str  # E.164 number or Messaging Service SID (MG…)
    body: str
    status_callback: str | None = None


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    sender: str
    subject: str
    text: str
    html: str
    reference: str  # our ledger key (and generation), echoed back in SendGrid's events as a custom arg
    attachments: tuple[tuple[str, str, bytes], ...] = ()  # (filename, MIME type, content)
    sandbox_mode: bool = False  # SendGrid validates and answers, never delivers (the smoke test's clinic)


@dataclass(frozen=True)
class SentMessage:
    """A message the provider already holds, as its message list shows it."""

    sid: str
    to: str
    sender: str  # the From number, or the Messaging Service SID it was sent through
    body: str
    sent_at: datetime | None


class SmsSender(Protocol):
    def send_sms(self, message: OutgoingSms) -> str: ...

    def find_sent(self, *, to: str, sender: str, since: datetime) -> list[SentMessage]:
        """Messages to `to` from `sender` created since `since` (an unconfirmed send's reconciliation)."""


class EmailSender(Protocol):
    def send_email(self, message: OutgoingEmail) -> str: ...


def _retry_after(headers: Any, default: int) -> int:
    try:
        return max(1, int((headers or {}).get("Retry-After", default)))
    except (TypeError, ValueError):
        return default


class TwilioSms:
    def __init__(self, client: Any) -> None:
        self.client = client

    def send_sms(self, message: OutgoingSms) -> str:
        from twilio.base.exceptions import TwilioRestException

        params: dict[str, Any] = {"to": message.to, "body": message.body}
        if message.sender.startswith("MG"):
            params["messaging_service_sid"] = message.sender
        else:
            params["from_"] = message.sender
        if message.status_callback:
            params["status_callback"] = message.status_callback
        try:
            created = self.client.messages.create(**params)
        except TwilioRestException as exc:
            raise classify_twilio(exc.status, exc.code) from None
        except _transport_errors() as exc:
            raise _lost_request(exc, "sms", "twilio") from None
        return str(created.sid)

    def find_sent(self, *, to: str, sender: str, since: datetime) -> list[SentMessage]:
        """Twilio's message list (newest first) filtered by recipient and sender number, kept from the claim's
        time on. Not filtered by DateSent at Twilio: a message still queued has no sent date yet."""
        from twilio.base.exceptions import TwilioException, TwilioRestException

        params: dict[str, Any] = {"to": to, "limit": LOOKUP_LIMIT}
        if not sender.startswith("MG"):
            params["from_"] = sender

        try:
            listed = self.client.messages.list(**params)
        except TwilioRestException as exc:
            raise classify_twilio(exc.status, exc.code) from None
        except TwilioException as exc:  # a list page that is not 200: twilio-python keeps the response as args[1]
            status = getattr(exc.args[1] if len(exc.args) > 1 else None, "status_code", None)
            raise classify_twilio(status if isinstance(status, int) else 503, None) from None
        except _transport_errors() as exc:  # a lookup sends nothing: always safe to ask again
            raise _unreachable("twilio", exc) from None
        found = []
        for item in listed:
            created = item.date_created
            if isinstance(created, datetime) and created < since - LOOKUP_SKEW:
                continue
            via = item.messaging_service_sid if sender.startswith("MG") else getattr(item, "from_", None)
            found.append(
                SentMessage(
                    sid=str(item.sid),
                    to=str(item.to),
                    sender=str(via or ""),
                    body=str(item.body or ""),
                    sent_at=created,
                )
            )
        return found


class TwilioTestSms(TwilioSms):
    """Twilio with the account's test credentials, for the smoke test's clinic only: Twilio validates the request
    as a live one (magic numbers give chosen answers), charges nothing, delivers nothing and sends no status
    callback (https://www.twilio.com/docs/iam/test-credentials). The client is built on the first such send;
    without the credentials that send is a permanent failure, never a send with the live ones."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:  # no super().__init__: `client` is lazy
        self.client_factory = client_factory

    @cached_property
    def client(self) -> Any:
        try:
            return self.client_factory()
        except ConfigError as exc:
            raise PermanentError(
                f"smoke-test clinic without Twilio test credentials ({exc}); never sent with the live ones",
                code="twilio_test_credentials_missing",
            ) from None


@functools.cache
def _transport_errors() -> tuple[type[Exception], ...]:
    """What requests raises when a request got no HTTP answer (an answer >= 400 is the SDK's own exception)."""
    import requests

    return (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def _cause(exc: Exception) -> BaseException:
    """The urllib3 error requests wrapped (through the pool's MaxRetryError and a proxy's error), else `exc`."""
    from urllib3.exceptions import MaxRetryError, ProxyError

    cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    if isinstance(cause, MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    if isinstance(cause, ProxyError):
        cause = cause.original_error
    return cause


def _never_sent(exc: Exception) -> bool:
    """True when the request failed before it left this machine: no connection was made (refused, DNS, connect
    timeout, proxy unreachable). Anything else (a read timeout, a connection dropped while the request was
    written or its answer read, a TLS failure) may have reached the provider."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError

    if isinstance(exc, requests.ConnectTimeout):
        return True
    # urllib3's NewConnectionError and NameResolutionError are ConnectTimeoutErrors: failures to connect
    return isinstance(exc, requests.ConnectionError) and isinstance(_cause(exc), ConnectTimeoutError)


def _unreachable(provider: str, exc: Exception) -> RetryableError:
    return RetryableError(
        f"{provider} unreachable: {type(_cause(exc)).__name__}", retry_after_seconds=30, code=f"{provider}_unreachable"
    )


def _lost_request(exc: Exception, channel: str, provider: str) -> RetryableError:
    """A send that got no answer: unreachable (retry) when it never left, else unconfirmed (reconcile first)."""
    if _never_sent(exc):
        return _unreachable(provider, exc)
    return SendUnconfirmed(channel, f"{provider}_answer_lost")


def classify_twilio(status: int, code: int | None) -> Exception:
    """Twilio's answer (HTTP status, error code) → our taxonomy."""
    if code in TWILIO_RECIPIENT_CODES:
        return RecipientRejected("sms", TWILIO_RECIPIENT_CODES[code], code)
    if code in TWILIO_THROTTLED_CODES or status == 429:
        return RetryableError(
            f"twilio throttled ({code})", retry_after_seconds=10, code="twilio_throttled", throttled=True
        )
    if status >= 500:
        return RetryableError(f"twilio {status} ({code})", retry_after_seconds=30, code="twilio_unavailable")
    return PermanentError(f"twilio rejected the request: {status} ({code})", code=f"twilio_{code or status}")


class SendGridEmail:
    def __init__(self, client: Any) -> None:
        self.client = client

    def send_email(self, message: OutgoingEmail) -> str:
        import base64

        from python_http_client.exceptions import HTTPError

        body: dict[str, Any] = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": {"email": message.sender},
            "subject": message.subject,
            "content": [{"type": "text/plain", "value": message.text}, {"type": "text/html", "value": message.html}],
            "custom_args": {"ledger_key": message.reference},
        }
        if message.sandbox_mode:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        if message.attachments:
            body["attachments"] = [
                {
                    "filename": name,
                    "type": mime,
                    "disposition": "attachment",
                    "content": base64.b64encode(content).decode("ascii"),
                }
                for name, mime, content in message.attachments
            ]
        try:
            response = self.client.send(body)
        except HTTPError as exc:
            raise classify_sendgrid(int(exc.status_code), getattr(exc, "headers", None)) from None
        except _transport_errors() as exc:
            raise _lost_request(exc, "email", "sendgrid") from None
        headers = getattr(response, "headers", None) or {}
        return str(headers.get("X-Message-Id") or headers.get("x-message-id") or "")


def classify_sendgrid(status: int, headers: Any = None) -> Exception:
    if status == 429:
        return RetryableError(
            "sendgrid throttled",
            retry_after_seconds=_retry_after(headers, 30),
            code="sendgrid_throttled",
            throttled=True,
        )
    if status >= 500:
        return RetryableError(f"sendgrid {status}", retry_after_seconds=30, code="sendgrid_unavailable")
    if status == 400:
        return RecipientRejected("email", "email_rejected", status)
    return PermanentError(f"sendgrid rejected the request: {status}", code=f"sendgrid_{status}")
