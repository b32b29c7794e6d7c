"""Operator retries: failed tasks marked "retry" are re-enqueued exactly once, however many sweeps run."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local.processes import wait_until
from shared.platform import clients, resources
from shared.platform.clock import system_clock
from shared.platform.settings import Settings
from shared.tasks.failed_tasks import FailedTasks
from shared.tasks.queue import CloudTasksQueue
from shared.tasks.sweep import RetrySweep
from shared.wiring.task_handler import task_types
from tests.handler_support import Sandbox, World, post

pytestmark = pytest.mark.integration
WAIT = 30.0


def failed_reminders(world: World, sandbox: Sandbox, stack, count: int) -> list[str]:
    """`count` reminders that failed permanently (Twilio 21211, no email to fall back to)."""
    keys = []
    for _ in range(count):
        patient = world.patient(email=None)
        sandbox.fault(channel="sms", kind="twilio_code", code=21211, to=world.phones[-1])
        task = world.task(world.appointment(patient))
        assert post(stack, task.to_json()).status_code == 200
        keys.append(task.dedup_key)
    assert [world.failed(key)[0]["status"] for key in keys] == ["open"] * count
    requests.delete(f"{stack.sandbox_url}/_sandbox/faults", timeout=5)  # the number was fixed
    return keys


def mark_retry(world: World, keys: list[str]) -> None:
    """What an operator does in the Firestore console."""
    for key in keys:
        world.db.collection("failed_tasks").document(key).update({"status": "retry"})


def sweeper() -> RetrySweep:
    return RetrySweep(
        FailedTasks(clients.store(), system_clock),
        CloudTasksQueue(clients.tasks(), Settings.from_env()),
        task_types(),
        queues=resources.QUEUES,
    )


def test_two_concurrent_sweeps_re_enqueue_each_failed_task_once(firestore_client, sandbox, stack):
    world = World(firestore_client)
    keys = failed_reminders(world, sandbox, stack, 3)
    mark_retry(world, keys)
    barrier = threading.Barrier(2)

    def sweep(_):
        sweep = sweeper()
        barrier.wait()
        return sweep.run()

    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(sweep, range(2)))
    assert sorted(reports[0].requeued + reports[1].requeued) == sorted(keys)
    assert wait_until(lambda: len(sandbox.messages(channel="sms")) >= 3, WAIT)
    assert sorted(m["to"] for m in sandbox.messages(channel="sms")) == sorted(world.phones[-3:])
    for key in keys:
        assert world.wait_ledger(key, "sent", "delivered")["state"] in ("sent", "delivered")
        doc = world.failed(key)[0]
        assert doc["status"] == "retried" and doc["retry_generation"] == 1
    assert len(sandbox.messages(channel="sms")) == 3


def test_the_scheduled_sweep_function_triggered_twice_re_enqueues_once(firestore_client, sandbox, stack):
    world = World(firestore_client)
    keys = failed_reminders(world, sandbox, stack, 3)
    mark_retry(world, keys)
    topic = clients.publisher().topic_path(stack.project, "failed-tasks-sweep")
    futures = [clients.publisher().publish(topic, json.dumps({"run": uuid.uuid4().hex}).encode()) for _ in range(2)]
    for future in futures:
        future.result(timeout=10)
    assert wait_until(lambda: all(world.failed(k)[0]["status"] == "retried" for k in keys), WAIT)
    assert wait_until(lambda: len(sandbox.messages(channel="sms")) >= 3, WAIT)
    for key in keys:
        world.wait_ledger(key, "sent", "delivered")
    assert len(sandbox.messages(channel="sms")) == 3


def test_a_malformed_failure_is_not_retryable_and_says_why(firestore_client, sandbox, stack):
    assert post(stack, None, raw=b"{broken").status_code == 200
    (snapshot,) = list(firestore_client.collection("failed_tasks").stream())
    snapshot.reference.update({"status": "retry"})
    report = sweeper().run()
    assert report.not_retryable == [snapshot.id] and report.requeued == []
    doc = snapshot.reference.get().to_dict()
    assert doc["status"] == "open" and "unknown task type" in doc["note"]  # the body never parsed


def test_a_failure_already_delivered_since_is_resolved_not_resent(firestore_client, sandbox, stack):
    world = World(firestore_client)
    (key,) = failed_reminders(world, sandbox, stack, 1)
    world.db.collection("notifications").document(key).update({"state": "sent"})
    mark_retry(world, [key])
    report = sweeper().run()
    assert report.already_done == [key]
    assert world.failed(key)[0]["status"] == "resolved" and sandbox.messages() == []


def test_hand_edits_the_sweep_cannot_use_never_stop_the_scheduled_sweep(firestore_client, sandbox, stack):
    """Issue 8, bug 4: operators edit failed_tasks by hand; each unusable doc gets a note, the rest go out."""
    world = World(firestore_client)
    good, *bad = failed_reminders(world, sandbox, stack, 5)
    edits = [
        {"retry_generation": "abc"},
        {"retry_generation": -1},
        {"payload.dedup_key": ".."},  # one field of the stored payload, as the console edits it
        {"task_type": "x" * 15_000},
    ]
    for key, edit in zip(bad, edits, strict=True):
        world.db.collection("failed_tasks").document(key).update(edit)
    mark_retry(world, [good, *bad])
    topic = clients.publisher().topic_path(stack.project, "failed-tasks-sweep")
    clients.publisher().publish(topic, b"{}").result(timeout=10)
    assert wait_until(lambda: world.failed(good)[0]["status"] == "retried", WAIT)
    assert world.wait_ledger(good, "sent", "delivered")["state"] in ("sent", "delivered")
    assert wait_until(lambda: all(world.failed(key)[0]["status"] == "open" for key in bad), WAIT)
    assert all(world.failed(key)[0]["note"] for key in bad)
    assert [m["to"] for m in sandbox.messages(channel="sms")] == [world.phones[0]]
