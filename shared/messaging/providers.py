"""Twilio and SendGrid behind two small Protocols, with every provider answer classified (DESIGN §3.4).

- accepted → the provider's message id;
- the recipient cannot get this channel (Twilio 21211 invalid number, 21610 replied STOP, 21614 not a
  mobile number; SendGrid 400 on the address) → RecipientRejected: the caller may fall back to the
  other channel, else it is permanent;
- rate limited (Twilio 20429 or HTTP 429) → RetryableError(throttled) with the provider's Retry-After;
- 5xx, timeouts, connection errors → RetryableError;
- any other 4xx → PermanentError (our request is wrong; retrying cannot help).
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from typing import Any, Protocol

from shared.platform.errors import PermanentError, RetryableError

TWILIO_RECIPIENT_CODES = {21211: "invalid_number", 21610: "sms_opted_out", 21614: "not_mobile"}
TWILIO_THROTTLED_CODES = (20429,)


class RecipientRejected(PermanentError):
    """This recipient cannot be reached on this channel; another channel may still work."""

    def __init__(self, channel: str, reason: str, provider_code: int | None = None) -> None:
        super().__init__(f"{channel} recipient rejected: {reason}", code=reason)
        self.channel, self.reason, self.provider_code = channel, reason, provider_code


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
    reference: str  # our ledger key, echoed back in SendGrid's events as a custom arg


class SmsSender(Protocol):
    def send_sms(self, message: OutgoingSms) -> str: ...


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
        import requests
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
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise RetryableError(f"twilio unreachable: {type(exc).__name__}", retry_after_seconds=30,
                                 code="twilio_unreachable") from None
        return str(created.sid)


def classify_twilio(status: int, code: int | None) -> Exception:
    """Twilio's answer (HTTP status, error code) → our taxonomy."""
    if code in TWILIO_RECIPIENT_CODES:
        return RecipientRejected("sms", TWILIO_RECIPIENT_CODES[code], code)
    if code in TWILIO_THROTTLED_CODES or status == 429:
        return RetryableError(f"twilio throttled ({code})", retry_after_seconds=10, code="twilio_throttled",
                              throttled=True)
    if status >= 500:
        return RetryableError(f"twilio {status} ({code})", retry_after_seconds=30, code="twilio_unavailable")
    return PermanentError(f"twilio rejected the request: {status} ({code})", code=f"twilio_{code or status}")


class SendGridEmail:
    def __init__(self, client: Any) -> None:
        self.client = client

    def send_email(self, message: OutgoingEmail) -> str:
        from python_http_client.exceptions import HTTPError

        body = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": {"email": message.sender},
            "subject": message.subject,
            "content": [{"type": "text/plain", "value": message.text},
                        {"type": "text/html", "value": message.html}],
            "custom_args": {"ledger_key": message.reference},
        }
        try:
            response = self.client.send(body)
        except HTTPError as exc:
            raise classify_sendgrid(int(exc.status_code), getattr(exc, "headers", None)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise RetryableError(f"sendgrid unreachable: {type(exc).__name__}", retry_after_seconds=30,
                                 code="sendgrid_unreachable") from None
        headers = getattr(response, "headers", None) or {}
        return str(headers.get("X-Message-Id") or headers.get("x-message-id") or "")


def classify_sendgrid(status: int, headers: Any = None) -> Exception:
    if status == 429:
        return RetryableError("sendgrid throttled", retry_after_seconds=_retry_after(headers, 30),
                              code="sendgrid_throttled", throttled=True)
    if status >= 500:
        return RetryableError(f"sendgrid {status}", retry_after_seconds=30, code="sendgrid_unavailable")
    if status == 400:
        return RecipientRejected("email", "email_rejected", status)
    return PermanentError(f"sendgrid rejected the request: {status}", code=f"sendgrid_{status}")
