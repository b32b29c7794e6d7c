"""The console's Firestore and Pub/Sub paths on the real emulators: an operator's edit writes one field as
the Firestore console does, "run the sweep now" publishes what Cloud Scheduler publishes, the event
stream announces changes, and the Firestore views read clinic names and ledger states."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from deploy import registry
from local.config import StackConfig
from local.processes import wait_until
from shared.platform import clients

pytestmark = pytest.mark.integration
JSON = {"Accept": "application/json"}


def test_an_operators_edit_sets_the_status_field_and_nothing_else(stack: StackConfig, firestore_client: Any) -> None:
    fields = {"task_type": "appointment_reminder", "error_code": "twilio_unavailable", "status": "open", "attempts": 8}
    reference = firestore_client.collection("failed_tasks").document("console-edit")
    reference.set(fields)

    answer = requests.post(
        f"{stack.sandbox_url}/operations/failed/console-edit/status", data={"status": "retry"}, headers=JSON, timeout=10
    )

    assert answer.status_code == 200 and answer.json() == {"id": "console-edit", "status": "retry"}
    assert reference.get().to_dict() == {**fields, "status": "retry"}
    missing = requests.post(
        f"{stack.sandbox_url}/operations/failed/nothing-here/status",
        data={"status": "resolved"},
        headers=JSON,
        timeout=10,
    )
    assert missing.status_code == 404
    assert not firestore_client.collection("failed_tasks").document("nothing-here").get().exists  # never created


def test_run_the_sweep_now_publishes_what_the_scheduler_job_publishes(stack: StackConfig) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # untyped; mypy misses it in the namespace

    job = next(job for job in registry.JOBS if job.topic == "failed-tasks-sweep")
    subscriber = pubsub_v1.SubscriberClient()
    topic = clients.publisher().topic_path(stack.project, job.topic)
    subscription = subscriber.subscription_path(stack.project, f"console-test-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=subscription, topic=topic)
    try:
        answer = requests.post(f"{stack.sandbox_url}/operations/sweep", headers=JSON, timeout=30)
        assert answer.status_code == 200, answer.text
        pulled = subscriber.pull(subscription=subscription, max_messages=10, timeout=30)
        [message] = [m.message for m in pulled.received_messages if m.message.message_id == answer.json()["message_id"]]
        assert message.data == job.body.encode() and dict(message.attributes) == {}
    finally:
        subscriber.delete_subscription(subscription=subscription)
        subscriber.close()


def test_the_event_stream_announces_a_change(stack: StackConfig) -> None:
    with requests.get(f"{stack.sandbox_url}/events", stream=True, timeout=20) as stream:
        lines = (raw.decode() for raw in stream.iter_lines())
        assert next(line for line in lines if line.startswith("event:")) == "event: hello"
        rule: dict[str, Any] = {
            "channel": "email",
            "kind": "http",
            "status": 503,
            "to": "nobody@example.com",
            "times": 1,
        }
        assert requests.post(f"{stack.sandbox_url}/_sandbox/faults", json=rule, timeout=10).status_code == 201
        assert next(line for line in lines if line.startswith("event:")) == "event: change"
    requests.delete(f"{stack.sandbox_url}/_sandbox/faults", timeout=10)


def test_the_firestore_views_name_clinics_and_count_the_ledger(stack: StackConfig, firestore_client: Any) -> None:
    firestore_client.collection("clinics").document("clinic-v").set({"name": "Velvet Skin Studio", "timezone": "UTC"})
    for key, state in (("k1", "delivered"), ("k2", "delivered"), ("k3", "failed")):
        firestore_client.collection("notifications").document(key).set(
            {"state": state, "kind": "appointment_reminder", "clinic_id": "clinic-v", "channel": "sms"}
        )
    firestore_client.collection("failed_tasks").document("k3").set(
        {"status": "open", "clinic_id": "clinic-v", "error_code": "invalid_number", "task_type": "appointment_reminder"}
    )

    def operations() -> str:
        return requests.get(f"{stack.sandbox_url}/operations/rows", timeout=10).text

    # Clinic names are cached for a few seconds: the page shows a new clinic on one of its next refreshes.
    assert wait_until(lambda: "Velvet Skin Studio" in operations(), 30)
    # These docs have no updated_at: newest-first cannot place them, and says so; by key lists every one.
    newest_first = requests.get(f"{stack.sandbox_url}/operations/ledger?state=delivered", timeout=10).text
    assert "2 matching documents without <code>updated_at</code>" in newest_first
    ledger = requests.get(f"{stack.sandbox_url}/operations/ledger?state=delivered&by=key", timeout=10).text
    document = requests.get(f"{stack.sandbox_url}/operations/docs/notifications/k3", timeout=10).text

    assert 'data-id="k3"' in operations()
    assert ledger.count("/operations/docs/notifications/k") == 2 and "Velvet Skin Studio" in ledger
    assert "invalid_number" not in document and "failed" in document
