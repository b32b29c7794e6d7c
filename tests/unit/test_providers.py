"""Every provider answer classified, on tiny stand-ins for the Twilio and SendGrid SDK surface this product
calls (`client.messages.create/list`, `client.send`); the real SDKs run against the sandbox in
tests/integration (test_sandbox.py, test_task_handler.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.client import RemoteDisconnected
from typing import Any

import pytest
import requests
from python_http_client.exceptions import HTTPError
from twilio.base.exceptions import TwilioException, TwilioRestException
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ProtocolError, ProxyError

from shared.messaging.providers import (
    LOOKUP_LIMIT,
    OutgoingEmail,
    OutgoingSms,
    RecipientRejected,
    SendGridEmail,
    SendUnconfirmed,
    TwilioSms,
    classify_sendgrid,
)
from shared.platform.errors import MedspaError, PermanentError, RetryableError

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
SERVICE = "MG" + "0" * 32
SMS = OutgoingSms(to="+15551234567", sender="+15550001111", body="Hi", status_callback="https://cb/?ledger=k&g=1")
EMAIL = OutgoingEmail(
    to="a@example.com", sender="c@example.com", subject="S", text="t", html="<p>t</p>", reference="k:1"
)


@dataclass
class Listed:
    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str | None
    date_created: datetime | None


class Messages:
    """client.messages: records what was asked, answers or raises what it is told."""

    def __init__(self, answer: Any = None, listed: list[Listed] | None = None) -> None:
        self.answer, self.listed = answer, listed or []
        self.created: list[dict[str, Any]] = []
        self.queries: list[dict[str, Any]] = []

    def create(self, **params: Any) -> Any:
        self.created.append(params)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return type("Instance", (), {"sid": "SM" + "1" * 32})()

    def list(self, **params: Any) -> list[Listed]:
        self.queries.append(params)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.listed


class Twilio:
    def __init__(self, messages: Messages) -> None:
        self.messages = messages


def twilio(answer: Any = None, listed: list[Listed] | None = None) -> tuple[TwilioSms, Messages]:
    messages = Messages(answer, listed)
    return TwilioSms(Twilio(messages)), messages


# What requests raises when no HTTP answer came back, built as requests builds them: the exception type says
# whether the request can have left this machine (shared.messaging.providers._never_sent).
# The pool and the connection urllib3 passes are never read by the classification: none is made here.
NO_POOL: Any = None
NO_CONNECTION: Any = None


def refused() -> requests.ConnectionError:
    return requests.ConnectionError(
        MaxRetryError(NO_POOL, "/", NewConnectionError(NO_CONNECTION, "[Errno 111] Connection refused"))
    )


def unresolved() -> requests.ConnectionError:
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return requests.ConnectionError(
        MaxRetryError(NO_POOL, "/", NameResolutionError("api.example", NO_CONNECTION, unknown))
    )


def proxy_refused() -> requests.ConnectionError:
    proxy = ProxyError("Unable to connect to proxy", NewConnectionError(NO_CONNECTION, "refused"))
    return requests.exceptions.ProxyError(MaxRetryError(NO_POOL, "/", proxy))


def dropped(reason: BaseException) -> requests.ConnectionError:
    return requests.ConnectionError(ProtocolError("Connection aborted.", reason))


def send_error(answer: BaseException) -> MedspaError:
    sms, _ = twilio(answer)
    with pytest.raises(MedspaError) as caught:
        sms.send_sms(SMS)
    return caught.value


def test_an_accepted_sms_returns_its_sid_and_sends_the_callback():
    sms, messages = twilio()
    assert sms.send_sms(SMS) == "SM" + "1" * 32
    assert messages.created == [
        {"to": SMS.to, "body": "Hi", "from_": SMS.sender, "status_callback": SMS.status_callback}
    ]


def test_a_messaging_service_sends_through_its_sid():
    sms, messages = twilio()
    sms.send_sms(OutgoingSms(to=SMS.to, sender=SERVICE, body="Hi"))
    assert messages.created == [{"to": SMS.to, "body": "Hi", "messaging_service_sid": SERVICE}]


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (TwilioRestException(400, "/Messages.json", code=21211), RecipientRejected, "invalid_number"),
        (TwilioRestException(400, "/Messages.json", code=21610), RecipientRejected, "sms_opted_out"),
        (TwilioRestException(429, "/Messages.json", code=20429), RetryableError, "twilio_throttled"),
        (TwilioRestException(429, "/Messages.json"), RetryableError, "twilio_throttled"),
        (TwilioRestException(503, "/Messages.json", code=20503), RetryableError, "twilio_unavailable"),
        (TwilioRestException(401, "/Messages.json", code=20003), PermanentError, "twilio_20003"),
        (TwilioRestException(400, "/Messages.json"), PermanentError, "twilio_400"),
        (requests.ConnectTimeout("connect timed out"), RetryableError, "twilio_unreachable"),
        (refused(), RetryableError, "twilio_unreachable"),
        (unresolved(), RetryableError, "twilio_unreachable"),
        (proxy_refused(), RetryableError, "twilio_unreachable"),
        (requests.ReadTimeout("read timed out"), SendUnconfirmed, "twilio_answer_lost"),
        (dropped(RemoteDisconnected("Remote end closed connection")), SendUnconfirmed, "twilio_answer_lost"),
        (dropped(ConnectionResetError(104, "reset")), SendUnconfirmed, "twilio_answer_lost"),
        (requests.exceptions.ChunkedEncodingError(ProtocolError("incomplete")), SendUnconfirmed, "twilio_answer_lost"),
        (requests.exceptions.SSLError("EOF in violation of protocol"), SendUnconfirmed, "twilio_answer_lost"),
    ],
)
def test_every_twilio_answer_is_classified(error, kind, code):
    raised = send_error(error)
    assert type(raised) is kind and raised.code == code


def test_the_exceptions_type_decides_never_its_text():
    # a ConnectionError that wraps no failure to connect may have been sent, whatever its message says
    assert type(send_error(requests.ConnectionError("NewConnectionError: Connection refused"))) is SendUnconfirmed
    assert send_error(refused()).code == "twilio_unreachable"


def test_throttling_answers_429_and_an_answer_lost_asks_for_a_reconcile_not_a_resend():
    throttled = send_error(TwilioRestException(429, "/x", code=20429))
    assert isinstance(throttled, RetryableError) and throttled.throttled
    lost = send_error(requests.ReadTimeout())
    assert isinstance(lost, SendUnconfirmed) and lost.channel == "sms" and not lost.throttled


def test_the_message_list_is_asked_by_recipient_and_sender_and_kept_from_the_claim_on():
    listed = [
        Listed("SM" + "a" * 32, SMS.to, SMS.sender, None, "Hi", NOW + timedelta(seconds=3)),
        Listed("SM" + "b" * 32, SMS.to, SMS.sender, None, None, None),  # still queued: no date yet, kept
        Listed("SM" + "c" * 32, SMS.to, SMS.sender, None, "Old", NOW - timedelta(hours=2)),  # before the claim
    ]
    sms, messages = twilio(listed=listed)
    found = sms.find_sent(to=SMS.to, sender=SMS.sender, since=NOW)
    assert [m.sid for m in found] == ["SM" + "a" * 32, "SM" + "b" * 32]
    assert found[0].body == "Hi" and found[0].sender == SMS.sender and found[1].body == ""
    assert messages.queries == [{"to": SMS.to, "limit": LOOKUP_LIMIT, "from_": SMS.sender}]


def test_a_messaging_service_is_matched_on_its_sid_not_a_from_number():
    listed = [Listed("SM" + "a" * 32, SMS.to, "+15550009999", SERVICE, "Hi", NOW)]
    sms, messages = twilio(listed=listed)
    (found,) = sms.find_sent(to=SMS.to, sender=SERVICE, since=NOW)
    assert found.sender == SERVICE and messages.queries == [{"to": SMS.to, "limit": LOOKUP_LIMIT}]


class PageResponse:
    """What twilio-python's Page keeps of a list answer that was not 200 (TwilioException's 2nd argument)."""

    def __init__(self, status_code: int) -> None:
        self.status_code, self.text = status_code, '{"code": 20503, "status": 503}'


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TwilioRestException(503, "/Messages.json"), "twilio_unavailable"),
        (TwilioException("Unable to fetch page", PageResponse(503)), "twilio_unavailable"),
        (TwilioException("Unable to fetch page", PageResponse(429)), "twilio_throttled"),
        (TwilioException("Unable to fetch page", None), "twilio_unavailable"),
        (requests.ReadTimeout(), "twilio_unreachable"),
        (requests.ConnectionError(), "twilio_unreachable"),
    ],
)
def test_a_failed_lookup_is_retryable(error, code):
    sms, _ = twilio(error)
    with pytest.raises(RetryableError) as caught:
        sms.find_sent(to=SMS.to, sender=SMS.sender, since=NOW)
    assert caught.value.code == code and not isinstance(caught.value, SendUnconfirmed)


# ---------------------------------------------------------------------------------------- SendGrid


class Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class SendGrid:
    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.sent: list[dict[str, Any]] = []

    def send(self, body: dict[str, Any]) -> Any:
        self.sent.append(body)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer or Response({"X-Message-Id": "msg-1"})


def test_an_accepted_email_returns_its_message_id_and_carries_the_ledger_reference():
    client = SendGrid()
    assert SendGridEmail(client).send_email(EMAIL) == "msg-1"
    (body,) = client.sent
    assert body["personalizations"] == [{"to": [{"email": "a@example.com"}]}]
    assert body["custom_args"] == {"ledger_key": "k:1"} and "attachments" not in body
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]


def test_attachments_are_base64_encoded():
    client = SendGrid(Response({"x-message-id": "msg-2"}))
    email = OutgoingEmail(**{**vars(EMAIL), "attachments": (("report.csv", "text/csv", b"a,b\n"),)})
    assert SendGridEmail(client).send_email(email) == "msg-2"
    assert client.sent[0]["attachments"] == [
        {"filename": "report.csv", "type": "text/csv", "disposition": "attachment", "content": "YSxiCg=="}
    ]


def test_an_answer_without_a_message_id_is_an_empty_id():
    assert SendGridEmail(SendGrid(Response({}))).send_email(EMAIL) == ""


def http_error(status: int, headers: dict[str, str] | None = None) -> HTTPError:
    return HTTPError(status, "reason", b"{}", headers or {})


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (http_error(429, {"Retry-After": "12"}), RetryableError, "sendgrid_throttled"),
        (http_error(502), RetryableError, "sendgrid_unavailable"),
        (http_error(400), RecipientRejected, "email_rejected"),
        (http_error(401), PermanentError, "sendgrid_401"),
        (requests.ReadTimeout("read timed out"), SendUnconfirmed, "sendgrid_answer_lost"),
        (dropped(RemoteDisconnected("Remote end closed connection")), SendUnconfirmed, "sendgrid_answer_lost"),
        (dropped(ConnectionResetError(104, "reset")), SendUnconfirmed, "sendgrid_answer_lost"),
        (requests.ConnectTimeout("connect timed out"), RetryableError, "sendgrid_unreachable"),
        (refused(), RetryableError, "sendgrid_unreachable"),
        (unresolved(), RetryableError, "sendgrid_unreachable"),
    ],
)
def test_every_sendgrid_answer_is_classified(error, kind, code):
    with pytest.raises(Exception) as caught:
        SendGridEmail(SendGrid(error)).send_email(EMAIL)
    assert type(caught.value) is kind and caught.value.code == code


@pytest.mark.parametrize(
    ("headers", "seconds"), [({"Retry-After": "12"}, 12), ({"Retry-After": "soon"}, 30), (None, 30)]
)
def test_sendgrids_retry_after_is_honoured_when_it_is_a_number(headers, seconds):
    error = classify_sendgrid(429, headers)
    assert isinstance(error, RetryableError) and error.retry_after_seconds == seconds and error.throttled
