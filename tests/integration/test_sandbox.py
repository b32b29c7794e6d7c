"""The provider sandbox, driven over HTTP by the official twilio and sendgrid clients (shared.clients)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from python_http_client.exceptions import BadRequestsError, TooManyRequestsError, UnauthorizedError
from sendgrid.helpers.mail import Mail
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from local.sandbox.server import SandboxServer
from local.sandbox.settings import SandboxSettings
from local.sandbox.state import Sandbox
from shared.platform import clients, settings
from tests.polling import eventually
from tests.spare_ports import free_port

pytestmark = pytest.mark.integration

ACCOUNT_SID = "AC" + "ab" * 16
AUTH_TOKEN = "test-auth-token"
SENDGRID_KEY = "SG.test-key"
CLINIC_NUMBER = "+15550001111"
PATIENT = "+15551234567"
OTHER_PATIENT = "+15557654321"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class Receiver:
    """A tiny webhook endpoint on loopback that records what it was sent and answers with TwiML."""

    def __init__(self, status: int = 200, body: str = "<Response><Message>Thanks!</Message></Response>") -> None:
        self.requests: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                receiver.requests.append(Received(self.path, dict(self.headers), dict(parse_qsl(raw))))
                payload = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def is_signed(self, received: Received) -> bool:
        signature = received.headers.get("X-Twilio-Signature", "")
        return RequestValidator(AUTH_TOKEN).validate(self.url + received.path, received.form, signature)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    settings = SandboxSettings(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        sendgrid_api_key=SENDGRID_KEY,
        callback_delay_seconds=0.01,
        hang_seconds=5.0,
        status_timeout_seconds=0.5,
    )
    server = SandboxServer("127.0.0.1", 0, Sandbox(settings)).start()
    yield server
    server.close()


@pytest.fixture
def provider_env(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> Iterator[None]:
    # The clients honour PROVIDER_SANDBOX_URL only on the emulator; these hosts are never dialled here.
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("CLOUD_TASKS_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "sandbox-test")
    monkeypatch.setenv("PROVIDER_SANDBOX_URL", sandbox.url)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("SENDGRID_API_KEY", SENDGRID_KEY)
    # The clients read their timeout from Settings: give it what it needs, whatever ran before this test.
    monkeypatch.setenv("TASK_HANDLER_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("TASKS_LOCATION", "local")
    monkeypatch.setenv("TASKS_SERVICE_ACCOUNT", "tasks@sandbox-test.iam.gserviceaccount.com")
    monkeypatch.delenv("PROVIDER_TIMEOUT_SECONDS", raising=False)
    clients.reset()
    settings.settings.cache_clear()
    yield
    clients.reset()
    settings.settings.cache_clear()


@pytest.fixture
def twilio(provider_env: None) -> Any:
    return clients.twilio()


@pytest.fixture
def sendgrid(provider_env: None) -> Any:
    return clients.sendgrid()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def outbox(sandbox: SandboxServer, **filters: str) -> list[dict[str, Any]]:
    response = requests.get(f"{sandbox.url}/_sandbox/messages", params=filters, timeout=5)
    response.raise_for_status()
    return response.json()


def add_fault(sandbox: SandboxServer, seed: int | None = None, **spec: Any) -> dict[str, Any]:
    params = {"seed": seed} if seed is not None else None
    response = requests.post(f"{sandbox.url}/_sandbox/faults", json=spec, params=params, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def send_sms(twilio: Any, to: str = PATIENT, **extra: Any) -> Any:
    fields = {"from_": CLINIC_NUMBER, "body": "Reminder: your appointment is tomorrow at 10:00."} | extra
    return twilio.messages.create(to=to, **fields)


def reminder_email(to: str = "jane@example.com") -> Mail:
    return Mail(
        from_email="clinic@example.com",
        to_emails=to,
        subject="Your appointment tomorrow",
        plain_text_content="See you at 10:00.",
        html_content="<p>See you at 10:00.</p>",
    )


def test_healthz_answers_200(sandbox: SandboxServer) -> None:
    assert requests.get(f"{sandbox.url}/healthz", timeout=5).status_code == 200


def test_sms_sent_with_twilio_client_appears_in_outbox(sandbox: SandboxServer, twilio: Any) -> None:
    message = send_sms(twilio)

    recorded = outbox(sandbox, channel="sms")
    assert message.status == "queued" and message.sid.startswith("SM") and len(message.sid) == 34
    assert [(m["id"], m["to"], m["from"], m["body"]) for m in recorded] == [
        (message.sid, PATIENT, CLINIC_NUMBER, "Reminder: your appointment is tomorrow at 10:00.")
    ]


def test_fetched_message_shows_its_delivered_status(sandbox: SandboxServer, twilio: Any) -> None:
    sid = send_sms(twilio).sid

    fetched = eventually(lambda: (m := twilio.messages(sid).fetch()).status == "delivered" and m)

    assert fetched.to == PATIENT and fetched.error_code is None


def test_email_sent_with_sendgrid_client_appears_in_outbox(sandbox: SandboxServer, sendgrid: Any) -> None:
    mail = Mail(
        from_email="clinic@example.com",
        to_emails="jane@example.com",
        subject="Your appointment",
        plain_text_content="See you at 10:00.",
        html_content="<p>See you at 10:00.</p>",
    )
    mail_json = mail.get() | {"custom_args": {"notification_id": "n-123"}}

    response = sendgrid.client.mail.send.post(request_body=mail_json)

    recorded = outbox(sandbox, channel="email")
    assert response.status_code == 202
    assert [(m["id"], m["to"], m["subject"], m["text"], m["html"], m["custom_args"]) for m in recorded] == [
        (
            response.headers["X-Message-Id"],
            "jane@example.com",
            "Your appointment",
            "See you at 10:00.",
            "<p>See you at 10:00.</p>",
            {"notification_id": "n-123"},
        )
    ]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "555-1234"}, 21211),
        ({"to": ""}, 21604),
        ({"body": ""}, 21602),
        ({"from_": None}, 21603),
    ],
    ids=["bad-e164-to", "missing-to", "missing-body", "missing-sender"],
)
def test_invalid_sms_is_rejected_with_twilio_code(
    sandbox: SandboxServer, twilio: Any, fields: dict[str, Any], code: int
) -> None:
    request = {"to": PATIENT, "from_": CLINIC_NUMBER, "body": "Hello"} | fields
    request = {name: value for name, value in request.items() if value is not None}

    with pytest.raises(TwilioRestException) as raised:
        twilio.messages.create(**request)

    assert (raised.value.status, raised.value.code) == (400, code)
    assert outbox(sandbox) == []


def test_wrong_auth_token_is_rejected_with_20003(
    sandbox: SandboxServer, provider_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-the-token")
    clients.reset()

    with pytest.raises(TwilioRestException) as raised:
        send_sms(clients.twilio())

    assert (raised.value.status, raised.value.code) == (401, 20003)


def test_injected_20429_surfaces_as_429(sandbox: SandboxServer, twilio: Any) -> None:
    add_fault(sandbox, channel="sms", kind="twilio_code", code=20429)

    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio)

    assert (raised.value.status, raised.value.code) == (429, 20429)
    assert outbox(sandbox) == []


def test_rate_limited_email_answer_carries_retry_after(sandbox: SandboxServer, sendgrid: Any) -> None:
    add_fault(sandbox, channel="email", kind="http", status=429, retry_after=7)

    with pytest.raises(TooManyRequestsError) as raised:
        sendgrid.send(reminder_email())

    assert raised.value.headers["Retry-After"] == "7"


def test_fault_for_one_recipient_leaves_others_alone(sandbox: SandboxServer, twilio: Any) -> None:
    add_fault(sandbox, channel="sms", kind="twilio_code", code=21610, to=PATIENT)

    delivered = send_sms(twilio, to=OTHER_PATIENT)
    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio, to=PATIENT)

    assert (raised.value.status, raised.value.code) == (400, 21610)
    assert [m["id"] for m in outbox(sandbox)] == [delivered.sid]


def test_times_limits_a_fault_to_the_next_n_requests(sandbox: SandboxServer, twilio: Any) -> None:
    add_fault(sandbox, channel="sms", kind="http", status=503, times=2)

    outcomes = []
    for _ in range(3):
        try:
            send_sms(twilio)
            outcomes.append("ok")
        except TwilioRestException as error:
            outcomes.append(error.status)

    assert outcomes == [503, 503, "ok"]
    assert requests.get(f"{sandbox.url}/_sandbox/faults", timeout=5).json() == []


def test_seeded_rate_fault_fails_the_same_requests_every_run(sandbox: SandboxServer, twilio: Any) -> None:
    def run() -> list[bool]:
        requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
        add_fault(sandbox, seed=7, channel="sms", kind="http", status=500, rate=0.5)
        failed = []
        for _ in range(12):
            try:
                send_sms(twilio)
                failed.append(False)
            except TwilioRestException:
                failed.append(True)
        return failed

    first, second = run(), run()

    assert first == second
    assert any(first) and not all(first)


def test_timeout_fault_outlasts_the_client_timeout(sandbox: SandboxServer, twilio: Any) -> None:
    add_fault(sandbox, channel="sms", kind="timeout", seconds=5)
    twilio.http_client.timeout = 0.3

    with pytest.raises(requests.Timeout):
        send_sms(twilio)

    assert outbox(sandbox) == []


def test_sendgrid_invalid_email_is_a_bad_request_naming_the_field(sandbox: SandboxServer, sendgrid: Any) -> None:
    body = reminder_email().get()
    body["personalizations"][0]["to"][0]["email"] = "not-an-address"

    with pytest.raises(BadRequestsError) as raised:
        sendgrid.client.mail.send.post(request_body=body)

    assert [error["field"] for error in raised.value.to_dict["errors"]] == ["personalizations.0.to.0.email"]


def test_sendgrid_wrong_key_is_unauthorized(
    sandbox: SandboxServer, provider_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
    clients.reset()

    with pytest.raises(UnauthorizedError) as raised:
        clients.sendgrid().send(reminder_email())

    assert raised.value.to_dict["errors"][0]["field"] is None


def test_status_callbacks_reach_the_receiver_signed(sandbox: SandboxServer, twilio: Any, receiver: Receiver) -> None:
    message = send_sms(twilio, status_callback=f"{receiver.url}/twilio/status?clinic=c1")

    callbacks = eventually(lambda: receiver.requests if len(receiver.requests) >= 3 else [])

    assert [c.form["MessageStatus"] for c in callbacks] == ["queued", "sent", "delivered"]
    assert {c.form["MessageSid"] for c in callbacks} == {message.sid}
    assert all(receiver.is_signed(c) for c in callbacks)


def test_delivery_failure_fault_ends_undelivered_with_error_code(
    sandbox: SandboxServer, twilio: Any, receiver: Receiver
) -> None:
    add_fault(sandbox, channel="sms", kind="delivery_failure", code=30003)

    message = send_sms(twilio, status_callback=f"{receiver.url}/twilio/status")
    callbacks = eventually(lambda: receiver.requests if len(receiver.requests) >= 3 else [])

    last = callbacks[-1]
    assert (last.form["MessageStatus"], last.form["ErrorCode"]) == ("undelivered", "30003")
    assert receiver.is_signed(last)
    assert outbox(sandbox)[0]["id"] == message.sid and outbox(sandbox)[0]["status"] == "undelivered"


def test_inbound_reply_posts_a_signed_webhook(sandbox: SandboxServer, receiver: Receiver) -> None:
    response = requests.post(
        f"{sandbox.url}/_sandbox/inbound",
        timeout=5,
        json={
            "from": PATIENT,
            "to": CLINIC_NUMBER,
            "body": "YES",
            "url": f"{receiver.url}/twilio/inbound",
        },
    )

    [webhook] = receiver.requests
    assert response.status_code == 200
    assert response.json()["status"] == 200 and "Thanks!" in response.json()["body"]
    assert (webhook.form["From"], webhook.form["To"], webhook.form["Body"]) == (PATIENT, CLINIC_NUMBER, "YES")
    assert webhook.form["AccountSid"] == ACCOUNT_SID and webhook.form["MessageSid"].startswith("SM")
    assert receiver.is_signed(webhook)


def test_patient_texting_cancel_is_opted_out_by_the_provider(
    sandbox: SandboxServer, twilio: Any, receiver: Receiver
) -> None:
    requests.post(
        f"{sandbox.url}/_sandbox/inbound",
        timeout=5,
        json={
            "from": PATIENT,
            "to": CLINIC_NUMBER,
            "body": "Cancel",
            "url": f"{receiver.url}/twilio/inbound",
        },
    )

    with pytest.raises(TwilioRestException) as raised:
        send_sms(twilio)

    assert (raised.value.status, raised.value.code) == (400, 21610)
    assert receiver.requests[0].form["Body"] == "Cancel"  # still forwarded to the webhook


def test_outbox_page_shows_message_with_recipient_masked(sandbox: SandboxServer, twilio: Any, sendgrid: Any) -> None:
    send_sms(twilio)
    sendgrid.send(reminder_email("jane.doe@example.com"))

    response = requests.get(f"{sandbox.url}/", timeout=5)

    html = response.text
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    assert "+1******4567" in html and "j***@example.com" in html
    assert PATIENT not in html and "jane.doe@example.com" not in html
    assert "Reminder: your appointment is tomorrow" in html


def test_status_view_reports_firestore_unreachable_and_keeps_that_answer(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "sandbox-test")

    # The request timeouts only keep a hung page from hanging the suite; what is checked is that the page
    # answers at all, and that the refreshes after it reuse the one probe instead of waiting on their own.
    page = requests.get(f"{sandbox.url}/", timeout=10)
    figures = requests.get(f"{sandbox.url}/_sandbox/status.json", timeout=10).json()
    again = requests.get(f"{sandbox.url}/_sandbox/status.json", timeout=10).json()

    assert page.status_code == 200 and "Firestore unreachable" in page.text
    assert figures["firestore"] == "unreachable"
    assert again == figures  # the same checked_at: answered from the cached probe, not a second one


def _firestore_emulator_script() -> Path | None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    script = Path(gcloud).resolve().parent.parent / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
    return script if script.exists() else None


@pytest.fixture(scope="module")
def firestore_emulator() -> Iterator[str]:
    """The official Firestore emulator on a free loopback port, when gcloud ships it (skip otherwise)."""
    script = _firestore_emulator_script()
    if script is None:
        pytest.skip("gcloud's cloud-firestore-emulator is not installed")
    host = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [str(script), "start", "--host=127.0.0.1", f"--port={host.split(':')[1]}", "--database-mode=firestore-native"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        eventually(lambda: _answers(f"http://{host}/"), timeout=30)
        yield host
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False


def test_status_view_counts_documents_in_firestore(
    sandbox: SandboxServer, firestore_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_emulator)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "sandbox-status-test")
    db = firestore.Client(project="sandbox-status-test")
    db.document("clinics/glow").set({"name": "Glow Med Spa", "timezone": "America/Denver"})
    for patient in ("p1", "p2"):
        db.document(f"patients/{patient}").set({"clinic_id": "glow"})
    for appointment, status in (("a1", "booked"), ("a2", "booked"), ("a3", "cancelled")):
        db.document(f"appointments/{appointment}").set({"clinic_id": "glow", "status": status})
    db.document("notifications/n1").set({"state": "sent"})
    db.document("failed_tasks/f1").set({"status": "open"})

    figures = requests.get(f"{sandbox.url}/_sandbox/status.json", timeout=10).json()

    assert figures["firestore"] == "ok", figures
    [clinic] = figures["clinics"]
    assert (clinic["name"], clinic["timezone"], clinic["patients"]) == ("Glow Med Spa", "America/Denver", 2)
    assert (clinic["appointments"]["booked"], clinic["appointments"]["cancelled"]) == (2, 1)
    assert (figures["notifications"]["sent"], figures["failed_tasks"]["open"]) == (1, 1)
    assert "Glow Med Spa" in requests.get(f"{sandbox.url}/", timeout=10).text


def test_clearing_the_outbox_forgets_every_message(sandbox: SandboxServer, twilio: Any) -> None:
    send_sms(twilio)

    cleared = requests.delete(f"{sandbox.url}/_sandbox/messages", timeout=5).json()

    assert cleared == {"deleted": 1} and outbox(sandbox) == []


def test_outbox_filters_by_recipient(sandbox: SandboxServer, twilio: Any) -> None:
    send_sms(twilio, to=PATIENT)
    other = send_sms(twilio, to=OTHER_PATIENT)

    assert [m["id"] for m in outbox(sandbox, to=OTHER_PATIENT)] == [other.sid]


def test_fault_with_unknown_kind_is_refused(sandbox: SandboxServer) -> None:
    response = requests.post(f"{sandbox.url}/_sandbox/faults", json={"channel": "sms", "kind": "gremlins"}, timeout=5)

    assert response.status_code == 400 and "kind" in response.json()["error"]


def test_unknown_twilio_route_answers_like_twilio(sandbox: SandboxServer) -> None:
    response = requests.get(
        f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json", auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5
    )

    assert response.status_code == 404 and json.loads(response.text)["code"] == 20404


# ------------------------------------------------------- the message list, through the official client


def test_the_official_clients_message_list_reads_the_outbox_newest_first(sandbox: SandboxServer, twilio: Any) -> None:
    sids = [send_sms(twilio, body=f"Reminder {n}").sid for n in range(3)]
    send_sms(twilio, to=OTHER_PATIENT)
    send_sms(twilio, from_="+15550002222")

    listed = twilio.messages.list(to=PATIENT, from_=CLINIC_NUMBER, limit=50)

    assert [m.sid for m in listed] == sids[::-1]
    assert [m.body for m in listed] == ["Reminder 2", "Reminder 1", "Reminder 0"]
    assert all(m.to == PATIENT and m.from_ == CLINIC_NUMBER and m.date_created is not None for m in listed)


def test_the_official_client_follows_the_lists_pages(sandbox: SandboxServer, twilio: Any) -> None:
    sids = [send_sms(twilio, body=f"Reminder {n}").sid for n in range(5)]

    listed = twilio.messages.list(to=PATIENT, page_size=2, limit=5)

    assert [m.sid for m in listed] == sids[::-1]


def test_an_sms_accepted_with_its_answer_lost_is_found_in_the_list(sandbox: SandboxServer, twilio: Any) -> None:
    from datetime import datetime, timedelta, timezone

    from shared.messaging.providers import OutgoingSms, SendUnconfirmed, TwilioSms

    add_fault(sandbox, channel="sms", kind="timeout", accept=True, seconds=2, times=1)
    twilio.http_client.timeout = 0.3
    sms = TwilioSms(twilio)
    claimed = datetime.now(timezone.utc) - timedelta(seconds=1)

    with pytest.raises(SendUnconfirmed):
        sms.send_sms(OutgoingSms(to=PATIENT, sender=CLINIC_NUMBER, body="Reminder: tomorrow at 10:00."))
    (held,) = outbox(sandbox, channel="sms")
    (found,) = sms.find_sent(to=PATIENT, sender=CLINIC_NUMBER, since=claimed)

    assert (found.sid, found.body, found.sender) == (held["id"], "Reminder: tomorrow at 10:00.", CLINIC_NUMBER)
    assert sms.find_sent(to=OTHER_PATIENT, sender=CLINIC_NUMBER, since=claimed) == []


def test_a_list_page_too_large_is_twilios_20007(sandbox: SandboxServer, twilio: Any) -> None:
    from twilio.base.exceptions import TwilioException

    with pytest.raises(TwilioException) as raised:  # twilio-python's pages raise this, not TwilioRestException
        twilio.messages.list(page_size=1001, limit=1001)

    response = raised.value.args[1]
    assert response.status_code == 400 and json.loads(response.text)["code"] == 20007
