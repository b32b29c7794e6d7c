"""task_handler end to end: Cloud Tasks emulator → staged function → provider sandbox, ledger in Firestore.

Tasks are created with the official Cloud Tasks client (the emulator dispatches them to the staged
handler) or, where a test needs to see the HTTP answer or to control the delivery headers, posted to
the handler exactly as Cloud Tasks would. Every assertion is on stored documents, the sandbox's
outbox or status codes.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from local.processes import wait_until
from shared.platform.settings import Settings
from tests.handler_support import post

pytestmark = pytest.mark.integration


def test_a_reminder_task_is_sent_by_sms_and_the_ledger_says_so(world, sandbox):
    patient = world.patient()
    task = world.task(world.appointment(patient))
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "sent", "delivered", "failed", "skipped")
    assert entry["state"] in ("sent", "delivered") and entry["channel"] == "sms"
    (message,) = sandbox.messages(channel="sms")
    assert message["id"] == entry["provider_message_id"] and message["to"] == world.phones[-1]
    assert "Glow Aesthetics" in message["body"] and "+12125550142" in message["body"]
    assert entry["attempts"] == 1


def test_twilio_status_callbacks_mark_the_message_delivered(world, sandbox):
    task = world.task(world.appointment(world.patient()))
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "delivered", "failed", "skipped")
    assert entry["state"] == "delivered" and entry["delivery_status"] == "delivered"


def test_a_message_the_carrier_did_not_deliver_is_recorded_in_failed_tasks_and_retryable(world, sandbox):
    patient = world.patient()
    sandbox.fault(channel="sms", kind="delivery_failure", code=30005, to=world.phones[-1])
    task = world.task(world.appointment(patient))
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "failed")
    assert entry["delivery_status"] == "undelivered" and entry["reason"] == "provider_30005"
    assert wait_until(lambda: world.failed(task.dedup_key), 15)
    (record,) = world.failed(task.dedup_key)
    assert record["error_code"] == "provider_30005" and record["status"] == "open"
    assert record["payload"]["dedup_key"] == task.dedup_key and record["queue"] == "reminders-sms"
    assert world.phones[-1] not in json.dumps(record, default=str)  # ids and codes only


def test_a_forged_status_callback_is_refused(world, stack):
    task = world.task(world.appointment(world.patient()))
    world.schedule(task)
    world.wait_ledger(task.dedup_key, "delivered", "sent")
    response = requests.post(
        f"{stack.url('twilio-status')}?ledger={task.dedup_key}",
        data={"MessageSid": "SM" + "0" * 32, "MessageStatus": "failed"},
        headers={"X-Twilio-Signature": "forged"},
        timeout=10,
    )
    assert response.status_code == 403
    assert world.ledger(task.dedup_key)["state"] in ("sent", "delivered")


def test_a_late_sent_callback_never_overwrites_delivered(world, stack):
    from twilio.request_validator import RequestValidator

    task = world.task(world.appointment(world.patient()))
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "delivered")
    url = f"{stack.url('twilio-status')}?ledger={task.dedup_key}"
    params = {"MessageSid": entry["provider_message_id"], "MessageStatus": "sent"}
    signature = RequestValidator("sandbox-auth-token").compute_signature(url, params)
    response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert response.status_code == 200
    assert world.ledger(task.dedup_key)["state"] == "delivered"


def test_sms_opted_out_patient_gets_email(world, sandbox):
    task = world.task(world.appointment(world.patient(sms_opt_out=True)))
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "sent", "failed", "skipped")
    assert entry["state"] == "sent" and entry["channel"] == "email"
    assert sandbox.messages(channel="sms") == []
    (email,) = sandbox.messages(channel="email")
    assert "Appointment reminder" in email["subject"]


def test_twilio_21211_falls_back_to_email(world, sandbox, stack):
    patient = world.patient()
    phone = world.phones[-1]
    sandbox.fault(channel="sms", kind="twilio_code", code=21211, to=phone)
    task = world.task(world.appointment(patient))
    response = post(stack, task.to_json())
    assert response.status_code == 200 and response.json()["channel"] == "email"
    assert world.ledger(task.dedup_key)["channel"] == "email"
    assert len(sandbox.messages(channel="email")) == 1


def test_twilio_21211_with_no_email_is_recorded_and_acknowledged(world, sandbox, stack):
    patient = world.patient(email=None)
    sandbox.fault(channel="sms", kind="twilio_code", code=21211, to=world.phones[-1])
    task = world.task(world.appointment(patient))
    response = post(stack, task.to_json())
    assert response.status_code == 200
    (failure,) = world.failed(task.dedup_key)
    assert failure["error_code"] == "invalid_number" and failure["status"] == "open"
    assert failure["payload"]["appointment_id"] == task.appointment_id
    assert world.ledger(task.dedup_key)["state"] == "failed"
    assert sandbox.messages() == []


def test_twilio_500_is_retried_by_cloud_tasks_then_delivered(world, sandbox):
    patient = world.patient()
    sandbox.fault(channel="sms", kind="http", status=500, to=world.phones[-1], times=1)
    task = world.task(world.appointment(patient))
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "sent", "delivered", "failed")
    assert entry["state"] in ("sent", "delivered") and entry["attempts"] == 2
    assert len(sandbox.messages(channel="sms")) == 1
    assert world.failed() == []


def test_twilio_20429_answers_429_with_retry_after_then_sends(world, sandbox, stack):
    patient = world.patient()
    sandbox.fault(channel="sms", kind="twilio_code", code=20429, to=world.phones[-1], times=1)
    task = world.task(world.appointment(patient))
    first = post(stack, task.to_json())
    assert first.status_code == 429 and int(first.headers["Retry-After"]) > 0
    assert world.ledger(task.dedup_key)["state"] == "scheduled"
    second = post(stack, task.to_json(), retry_count=1)
    assert second.status_code == 200 and second.json()["outcome"] == "sent"
    assert len(sandbox.messages(channel="sms")) == 1


def test_the_last_attempt_is_recorded_in_failed_tasks(world, sandbox, stack):
    patient = world.patient()
    sandbox.fault(channel="sms", kind="http", status=503, to=world.phones[-1])
    task = world.task(world.appointment(patient))
    early = post(stack, task.to_json(), retry_count=0)
    assert early.status_code == 503 and world.failed(task.dedup_key) == []
    max_attempts = Settings.from_env().queue_max_attempts
    last = post(stack, task.to_json(), retry_count=max_attempts - 1)
    assert last.status_code == 503
    (failure,) = world.failed(task.dedup_key)
    assert failure["error_code"] == "twilio_unavailable" and failure["attempts"] == max_attempts


def test_the_same_task_delivered_concurrently_sends_one_message(world, sandbox, stack):
    task = world.task(world.appointment(world.patient()))
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: post(stack, task.to_json()), range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert all(status in (200, 429) for status in statuses), statuses
    assert [r.json().get("outcome") for r in responses].count("sent") == 1
    assert len(sandbox.messages()) == 1
    # the ones told to come back later find it done
    retry = post(stack, task.to_json(), retry_count=1)
    assert retry.status_code == 200 and retry.json()["outcome"] == "duplicate"
    assert len(sandbox.messages()) == 1


def test_cancelled_after_fan_out_sends_nothing(world, sandbox):
    appointment = world.appointment(world.patient())
    task = world.task(appointment)
    world.db.collection("appointments").document(appointment["id"]).update({"status": "cancelled"})
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "skipped", "sent", "failed")
    assert entry["state"] == "skipped" and entry["reason"] == "cancelled"
    assert sandbox.messages() == []


def test_a_moved_appointment_skips_the_old_reminder(world, sandbox, stack):
    appointment = world.appointment(world.patient())
    task = world.task(appointment)
    moved = appointment["start"] + timedelta(days=1)
    world.db.collection("appointments").document(appointment["id"]).update(
        {"start": moved, "end": moved + timedelta(hours=1)}
    )
    response = post(stack, task.to_json())
    assert response.status_code == 200 and response.json() == {"outcome": "skipped", "reason": "moved", "channel": ""}
    assert world.ledger(task.dedup_key)["reason"] == "moved"
    assert sandbox.messages() == []


def test_patient_opted_out_of_everything_is_skipped(world, sandbox, stack):
    task = world.task(world.appointment(world.patient(sms_opt_out=True, email_opt_out=True)))
    response = post(stack, task.to_json())
    assert response.json()["reason"] == "opted_out"
    assert sandbox.messages() == []


VALID = {
    "type": "appointment_reminder",
    "v": 1,
    "appointment_id": "appt-x",
    "clinic_id": "clinic-t",
    "patient_id": "pat-x",
    "dedup_key": "appointment_reminder-" + "0" * 40,
    "send_at": "2026-11-25T14:30:00+00:00",
    "appointment_start": "2026-11-26T14:30:00+00:00",
}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "malformed_json"),
        (b'["a", "list"]', "malformed_json"),
        (json.dumps({**VALID, "type": "teleport"}).encode(), "unknown_type"),
        (json.dumps({k: v for k, v in VALID.items() if k != "appointment_id"}).encode(), "bad_payload"),
        (json.dumps({**VALID, "appointment_id": 42}).encode(), "bad_payload"),
        (json.dumps({**VALID, "v": 7}).encode(), "unsupported_version"),
        (json.dumps({**VALID, "pad": "x" * 20000}).encode(), "oversized_body"),
        (json.dumps({**VALID, "appointment_id": "does-not-exist"}).encode(), None),  # a skip, not a failure
    ],
)
def test_malformed_input_is_recorded_and_acknowledged(world, stack, raw, code):
    response = post(stack, None, raw=raw)
    assert response.status_code == 200
    failures = world.failed()
    if code is None:
        assert failures == [] and response.json()["reason"] == "appointment_missing"
        return
    (failure,) = failures
    assert failure["error_code"] == code and failure["status"] == "open"
    assert "x" * 100 not in json.dumps(failure, default=str)  # the body itself is not copied


def test_unauthenticated_requests_are_refused_by_the_real_handler(world, sandbox):
    """The real main.py, called directly (not behind IAM): no token → 401, and nothing is read or written."""
    import functions_framework

    from local.config import REPO_ROOT
    from shared.platform import settings

    settings.settings.cache_clear()
    try:
        app = functions_framework.create_app("handle_task", str(REPO_ROOT / "functions/task_handler/main.py"), "http")
        task = world.task(world.appointment(world.patient()))
        client = app.test_client()
        no_token = client.post("/", data=json.dumps(task.to_json()), content_type="application/json")
        bad_token = client.post(
            "/",
            data=json.dumps(task.to_json()),
            content_type="application/json",
            headers={"Authorization": "Bearer not-a-token"},
        )
    finally:
        settings.settings.cache_clear()
    assert no_token.status_code == 401 and bad_token.status_code == 401
    assert world.ledger(task.dedup_key) == {} and world.failed() == [] and sandbox.messages() == []


def test_handler_logs_hold_no_patient_contact_details_or_names(world, sandbox, stack):
    """Drive a few sends and failures, then read everything the functions logged."""
    patients = [world.patient(), world.patient(sms_opt_out=True), world.patient(email=None)]
    sandbox.fault(channel="sms", kind="twilio_code", code=21211, to=world.phones[-1])
    for patient in patients:
        post(stack, world.task(world.appointment(patient)).to_json())
    logs = "".join(
        path.read_text(errors="replace")
        for path in (stack.state_dir / "logs").glob("*.log")
        if path.stem in ("task-handler", "twilio-status", "reminder-fanout", "appointment-events")
    )
    assert logs, "the functions wrote no logs"
    for secret in world.phones + world.emails + world.names:
        assert secret not in logs, "PHI in the function logs"
