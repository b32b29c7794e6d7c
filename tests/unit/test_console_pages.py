"""The local console's pages on an in-process sandbox (no stack): what they show, what they escape and
mask, what they refuse. Firestore is not configured here, so the Firestore views show their banner."""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from local.sandbox.courier import twiml_reply
from local.sandbox.faults import FaultBook
from local.sandbox.outbox import Message, Outbox
from local.sandbox.server import make_app
from local.sandbox.settings import SandboxSettings
from local.sandbox.state import Sandbox

SID = "AC" + "cd" * 16
TOKEN = "unit-token"
KEY = "SG.unit-key"
CLINIC = "+15550001111"
PATIENT = "+15551234567"
OTHER = "+15557654321"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT", "MEDSPA_CLOCK_FILE"):
        monkeypatch.delenv(name, raising=False)
    box = Sandbox(
        SandboxSettings(
            account_sid=SID, auth_token=TOKEN, sendgrid_api_key=KEY, callback_delay_seconds=0.01, hang_seconds=0.1
        )
    )
    yield box
    box.close()


@pytest.fixture
def client(sandbox: Sandbox) -> FlaskClient:
    return make_app(sandbox).test_client()


def send_sms(client: FlaskClient, body: str, to: str = PATIENT, **extra: str) -> Any:
    form = {"To": to, "From": CLINIC, "Body": body, **extra}
    return client.post(f"/2010-04-01/Accounts/{SID}/Messages.json", data=form, headers=AUTH)


def send_email(client: FlaskClient, subject: str, html: str, to: str = "jane.doe@example.com") -> Any:
    payload = {
        "personalizations": [{"to": [{"email": to}]}],
        "from": {"email": "clinic@example.com"},
        "subject": subject,
        "content": [{"type": "text/plain", "value": "plain part"}, {"type": "text/html", "value": html}],
        "custom_args": {"ledger_key": "report_email-abc:1"},
    }
    return client.post("/v3/mail/send", json=payload, headers={"Authorization": f"Bearer {KEY}"})


def page(client: FlaskClient, path: str, **kwargs: Any) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
    return response.get_data(as_text=True)


def table_rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in html else ""
    return re.findall(r"<tr class=\"clickable\" data-id=\"([^\"]+)\"", body)


def test_every_page_of_the_navigation_answers_with_one_nav_bar_and_no_outside_resource(client: FlaskClient) -> None:
    send_sms(client, "Reminder: your appointment is tomorrow at 10:00.")
    for path in ("/", "/conversations", "/operations", "/faults", "/reports", "/campaigns", "/operations/ledger"):
        response = client.get(path)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert html.count('<nav class="top"') == 1
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        links = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert links and all(link.startswith(("/", "#", "data:")) for link in links), (path, links)
    for name in ("console.css", "console.js"):
        assert "http" not in page(client, f"/static/{name}").replace("https://", "").replace("http://", "")


def test_the_outbox_lists_newest_first_with_the_recipient_masked_and_the_body_whole(client: FlaskClient) -> None:
    long_body = "Reminder: your HydraFacial is tomorrow at 10:00. " + "Please arrive ten minutes early. " * 4
    first = send_sms(client, "first message").get_json()["sid"]
    second = send_sms(client, long_body, to=OTHER).get_json()["sid"]

    html = page(client, "/")

    assert table_rows(html) == [second, first]
    assert "+1******4567" in html and PATIENT not in html and OTHER not in html
    view = page(client, f"/messages/{second}")
    assert long_body.strip() in view  # the full body, where the list shows a snippet
    assert "+1******4321" in view and OTHER not in view


def test_bodies_and_subjects_are_escaped_never_markup(client: FlaskClient) -> None:
    sid = send_sms(client, HOSTILE).get_json()["sid"]
    send_email(client, HOSTILE, "<p>hi</p>")

    for html in (page(client, "/"), page(client, f"/messages/{sid}"), page(client, "/conversations")):
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html


def test_an_html_email_renders_only_inside_a_sandboxed_srcdoc_iframe(client: FlaskClient) -> None:
    email_id = send_email(client, "Your report", "<h1>Report</h1><script>alert(1)</script>").headers["X-Message-Id"]

    html = page(client, f"/messages/{email_id}")

    [iframe] = re.findall(r"<iframe[^>]*>", html)
    assert ' sandbox=""' in iframe and "allow-scripts" not in iframe
    assert 'srcdoc="&lt;h1&gt;Report&lt;/h1&gt;&lt;script&gt;' in iframe
    assert "<h1>Report</h1>" not in html and "plain part" in html


def test_search_and_filters_narrow_the_list(client: FlaskClient) -> None:
    botox = send_sms(client, "Your Botox appointment is tomorrow").get_json()["sid"]
    peel = send_sms(client, "Your chemical peel is on Friday", to=OTHER).get_json()["sid"]
    send_email(client, "Daily report", "<p>figures</p>")

    assert table_rows(page(client, "/outbox/rows?q=botox")) == [botox]
    assert table_rows(page(client, "/outbox/rows", query_string={"q": OTHER})) == [peel]  # a number typed whole
    assert set(table_rows(page(client, "/outbox/rows?channel=sms"))) == {botox, peel}
    assert table_rows(page(client, "/outbox/rows?channel=email&q=botox")) == []
    assert "No message matches" in page(client, "/outbox/rows?q=nothing-like-this")
    assert 'value="botox"' in page(client, "/?q=botox")  # the search box keeps what was typed


def test_a_message_timeline_shows_refused_attempts_statuses_and_webhooks(client: FlaskClient, sandbox: Sandbox) -> None:
    sandbox.faults.add({"channel": "sms", "kind": "http", "status": 503, "times": 2})
    for _ in range(2):
        assert send_sms(client, "retried reminder").status_code == 503
    sid = send_sms(client, "retried reminder").get_json()["sid"]
    sandbox.outbox.set_status(sid, "sent")
    sandbox.outbox.set_status(sid, "undelivered", 30003)

    timeline = page(client, f"/messages/{sid}/timeline")

    assert timeline.count("Twilio answered 503 (code 20503), fault f1") == 2
    assert "Twilio: queued" in timeline and "Twilio: undelivered (error 30003)" in timeline
    assert timeline.index("answered 503") < timeline.index("Twilio: queued") < timeline.index("undelivered")


def test_counts_never_read_as_empty_parentheses(client: FlaskClient) -> None:
    html = page(client, "/")
    assert "no messages in the outbox" in html and "()" not in html


def test_conversations_group_sms_by_patient_phone_and_hide_the_number(client: FlaskClient, sandbox: Sandbox) -> None:
    send_sms(client, "one")
    send_sms(client, "two")
    send_sms(client, "three", to=OTHER)
    sandbox.outbox.add(
        Message(id="SMin", channel="sms", direction="inbound", to=CLINIC, from_=PATIENT, status="received", body="YES")
    )

    listing = page(client, "/conversations")
    threads = re.findall(r'href="/conversations/(t[0-9a-f]+)"', listing)

    assert len(threads) == 2 and PATIENT not in listing and "+1******4567" in listing
    thread = page(client, f"/conversations/{threads[0]}")
    assert thread.count('data-direction="outbound"') == 2 and 'data-direction="inbound"' in thread
    assert all(word in thread for word in ('value="YES"', 'value="C"', 'value="STOP"', 'value="HELP"'))
    assert PATIENT not in thread and threads[0] not in PATIENT


def test_one_phone_at_two_clinics_is_two_conversations_each_with_its_own_messages(client: FlaskClient) -> None:
    send_sms(client, "from the first clinic")
    client.post(
        f"/2010-04-01/Accounts/{SID}/Messages.json",
        data={"To": PATIENT, "From": "+15550002222", "Body": "from the second clinic"},
        headers=AUTH,
    )
    threads = re.findall(r'href="/conversations/(t[0-9a-f]+)"', page(client, "/conversations"))
    assert len(threads) == 2
    newest, oldest = (page(client, f"/conversations/{thread}") for thread in threads)
    assert "from the second clinic" in newest and "from the first clinic" not in newest
    assert "from the first clinic" in oldest and "from the second clinic" not in oldest


def test_a_reply_without_an_inbound_webhook_is_refused_clearly(client: FlaskClient) -> None:
    send_sms(client, "Reply C to confirm")
    [thread] = re.findall(r'href="/conversations/(t[0-9a-f]+)"', page(client, "/conversations"))

    response = client.post(f"/conversations/{thread}/reply", data={"body": "C"}, headers={"Accept": "application/json"})

    assert response.status_code == 400 and "INBOUND_SMS_URL" in response.get_json()["error"]
    assert client.post("/conversations/tnope/reply", data={"body": "C"}).status_code == 400


def test_the_faults_form_adds_presets_and_rules_lists_and_removes_them(client: FlaskClient, sandbox: Sandbox) -> None:
    assert client.post("/faults", data={"preset": "twilio-outage"}).status_code == 303
    added = client.post(
        "/faults", data={"channel": "sms", "kind": "twilio_code", "code": "21614", "to": PATIENT, "times": "2"}
    )
    assert added.status_code == 303
    rules = sandbox.faults.list()
    assert [(r["kind"], r["status"], r["code"], r["times"]) for r in rules] == [
        ("http", 503, None, None),
        ("twilio_code", 400, 21614, 2),
    ]
    html = page(client, "/faults")
    assert "+1******4567" in html and PATIENT not in html
    refused = client.post("/faults", data={"channel": "sms", "kind": "http", "status": "200"})
    assert refused.status_code == 400 and "needs &#39;status&#39; between 400 and 599" in refused.get_data(as_text=True)

    assert client.post(f"/faults/{rules[0]['id']}/remove").status_code == 303
    assert [r["id"] for r in sandbox.faults.list()] == [rules[1]["id"]]
    assert client.post("/faults/clear").status_code == 303 and sandbox.faults.list() == []


def test_a_form_from_another_site_and_a_foreign_host_are_refused(client: FlaskClient, sandbox: Sandbox) -> None:
    cross = client.post("/faults", data={"preset": "twilio-outage"}, headers={"Origin": "https://evil.example"})
    rebound = client.get("/", headers={"Host": "evil.example"})

    assert cross.status_code == 403 and rebound.status_code == 403 and sandbox.faults.list() == []
    assert (
        client.post("/faults", data={"preset": "twilio-outage"}, headers={"Origin": "http://localhost"}).status_code
        == 303
    )


def test_firestore_views_say_what_is_missing_instead_of_failing(client: FlaskClient) -> None:
    assert "Firestore not configured" in page(client, "/operations")
    assert "Firestore not configured" in page(client, "/reports")
    assert "Firestore not configured" in page(client, "/campaigns")
    retry = client.post(
        "/operations/failed/abc/status", data={"status": "retry"}, headers={"Accept": "application/json"}
    )
    sweep = client.post("/operations/sweep", headers={"Accept": "application/json"})
    assert retry.status_code == 503 and "not configured" in retry.get_json()["error"]
    assert sweep.status_code == 503 and "Pub/Sub not configured" in sweep.get_json()["error"]
    bad = client.post("/operations/failed/abc/status", data={"status": "open"}, headers={"Accept": "application/json"})
    assert bad.status_code == 400
    assert client.get("/operations/docs/patients/pat-1").status_code == 404  # never a patient's record


def test_the_json_api_the_tests_use_is_still_there(client: FlaskClient) -> None:
    sid = send_sms(client, "hello").get_json()["sid"]
    assert [m["id"] for m in client.get("/_sandbox/messages").get_json()] == [sid]
    assert client.get(f"/_sandbox/messages/{sid}").get_json()["body"] == "hello"
    assert client.get("/_sandbox/status.json").get_json()["firestore"] == "not configured"
    assert client.get("/healthz").get_json() == {"ok": True}


def test_the_outbox_version_wakes_a_waiting_reader(sandbox: Sandbox) -> None:
    outbox = sandbox.outbox
    version = outbox.version
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(outbox.wait_change(version, 10)))
    reader.start()
    outbox.add(Message(id="SM1", channel="sms", direction="outbound", to=PATIENT, from_=CLINIC, status="queued"))
    reader.join(5)

    assert seen == [version + 1] and outbox.wait_change(version + 1, 0.01) == version + 1


def test_refusals_are_kept_bounded_and_cleared_with_the_outbox() -> None:
    from local.sandbox.outbox import Refusal

    outbox = Outbox(max_refusals=3)
    for n in range(5):
        outbox.refuse(Refusal(channel="sms", to=PATIENT, from_=CLINIC, http_status=503, code=20503, summary=str(n)))
    assert [r["summary"] for r in outbox.refusals()] == ["2", "3", "4"]
    outbox.clear()
    assert outbox.refusals() == []


def test_a_prefix_rule_hits_every_number_it_starts_and_no_other() -> None:
    book = FaultBook()
    book.add({"channel": "sms", "kind": "http", "status": 503, "to": "+91*"})

    assert book.take("sms", ["+919000000101"]) is not None
    assert book.take("sms", ["+15551234567"]) is None
    assert book.take("email", ["+919000000101"]) is None


@pytest.mark.parametrize(
    ("content_type", "body", "reply"),
    [
        ("text/xml", "<Response><Message>You&apos;re booked &amp; set.</Message></Response>", "You're booked & set."),
        ("application/xml", "<Response><Message><Body>Hi</Body></Message></Response>", "Hi"),
        ("text/xml", "<Response/>", None),
        ("text/html", "<Message>not TwiML</Message>", None),
    ],
)
def test_the_webhooks_twiml_reply_is_read_for_the_conversation(content_type: str, body: str, reply: str | None) -> None:
    assert twiml_reply(content_type, body) == reply
