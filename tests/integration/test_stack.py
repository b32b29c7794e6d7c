"""The local stack, through the official client libraries: Firestore, Cloud Tasks, Pub/Sub → functions.

A test-only function (tests/fixtures/recorder) runs under functions-framework on two spare ports and
writes down every request it gets; a second Pub/Sub bridge routes a test topic to it. The last test
starts a whole second stack inside the running stack's block of ports (tests/spare_ports.py) and checks
that `down` leaves nothing running.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from local import config as stack_config
from local.components import function_answers, functions_framework_command, stack_ports
from local.config import REPO_ROOT, StackConfig
from local.processes import ProcessDir, group_alive, wait_until
from local.standins import is_listening
from shared.platform import clients
from tests.spare_ports import free_port, spare_port_base

pytestmark = pytest.mark.integration

RECORDER_SOURCE = REPO_ROOT / "tests" / "fixtures" / "recorder" / "main.py"
DELIVERY_TIMEOUT = 15.0


def header(record: dict[str, Any], name: str) -> str | None:
    """A recorded request header, looked up case-insensitively (as HTTP means it)."""
    return next((value for key, value in record["headers"].items() if key.lower() == name.lower()), None)


@dataclass(frozen=True)
class Recorder:
    http_url: str
    event_url: str
    file: Path

    def wait_for(self, matches: Callable[[dict[str, Any]], bool], count: int = 1) -> list[dict[str, Any]]:
        """The first `count` recorded requests that match, polling until they are there."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            found[:] = [r for r in map(json.loads, self.file.read_text().splitlines()) if matches(r)]
            return len(found) >= count

        assert wait_until(enough, DELIVERY_TIMEOUT), f"got {len(found)} of {count} matching requests: {found}"
        return found[:count]


@pytest.fixture(scope="module")
def recorder(stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    state = tmp_path_factory.mktemp("recorder")
    processes = ProcessDir(state)
    records = state / "records.jsonl"
    records.touch()
    env = {**os.environ, **stack.function_env(), "RECORDER_FILE": str(records)}
    urls = {}
    for target, signature in (("record", "http"), ("record_event", "cloudevent")):
        port = free_port()
        command = functions_framework_command(RECORDER_SOURCE, target, signature, stack.host, port)
        processes.start(target, target, command, env=env, cwd=RECORDER_SOURCE.parent)
        urls[target] = f"http://{stack.host}:{port}/"
    try:
        assert wait_until(lambda: all(map(function_answers, urls.values())), 30), (
            f"recorder did not start; see {processes.logs}"
        )
        yield Recorder(urls["record"], urls["record_event"], records)
    finally:
        assert processes.stop(["record", "record_event"]) == []


@pytest.fixture(scope="module")
def test_topic(stack: StackConfig, recorder: Recorder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh topic routed by its own bridge process to the recorder's CloudEvent entry point."""
    topic = f"stack-test-{uuid.uuid4().hex[:8]}"
    state = tmp_path_factory.mktemp("bridge")
    processes = ProcessDir(state)
    ready = state / "ready"
    processes.start(
        "bridge",
        topic,
        [
            sys.executable,
            "-m",
            "local.pubsub_bridge",
            "--ready-file",
            str(ready),
            "--route",
            f"{topic}={recorder.event_url}",
        ],
        env={**os.environ, **stack.function_env()},
        cwd=REPO_ROOT,
    )
    try:
        assert wait_until(ready.exists, 20), f"bridge not ready; see {processes.log_path('bridge')}"
        yield topic
    finally:
        assert processes.stop(["bridge"]) == []


def create_http_task(
    stack: StackConfig,
    url: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    schedule_time: datetime | None = None,
) -> str:
    """Create a named http_request task in the default queue with the official client; its short name."""
    from google.cloud import tasks_v2

    task_id = f"stack-check-{uuid.uuid4().hex[:12]}"
    task: dict[str, Any] = {
        "name": f"{stack.queue_path('default')}/tasks/{task_id}",
        "http_request": {
            "http_method": tasks_v2.HttpMethod.POST,
            "url": url,
            "body": body,
            "headers": {"Content-Type": "application/json", **(headers or {})},
        },
    }
    if schedule_time is not None:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(schedule_time)
        task["schedule_time"] = stamp
    clients.tasks().create_task(request={"parent": stack.queue_path("default"), "task": task})
    return task_id


def test_document_written_with_the_official_client_reads_back(firestore_client: Any) -> None:
    at = datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc)
    ref = firestore_client.collection("stack_checks").document("written")
    ref.set({"state": "scheduled", "send_at": at, "attempts": 0})

    assert ref.get().to_dict() == {"state": "scheduled", "send_at": at, "attempts": 0}


def test_cloud_task_reaches_its_url_as_a_post_with_cloudtasks_headers(stack: StackConfig, recorder: Recorder) -> None:
    body = json.dumps({"type": "stack_check", "v": 1, "check_id": uuid.uuid4().hex}).encode()
    task_id = create_http_task(stack, recorder.http_url, body)

    [request] = recorder.wait_for(lambda r: r["kind"] == "http" and r["body"] == body.decode())
    assert request["method"] == "POST"
    assert header(request, "Content-Type") == "application/json"
    assert header(request, "X-CloudTasks-QueueName") == "default"
    assert header(request, "X-CloudTasks-TaskName") == task_id
    assert header(request, "X-CloudTasks-TaskRetryCount") == "0"
    assert header(request, "X-CloudTasks-TaskExecutionCount") == "0"


def test_failing_cloud_task_is_retried_with_a_growing_retry_count(stack: StackConfig, recorder: Recorder) -> None:
    body = json.dumps({"type": "stack_check", "v": 1, "check_id": uuid.uuid4().hex}).encode()
    create_http_task(stack, recorder.http_url, body, headers={"X-Recorder-Fail-Attempts": "2"})

    attempts = recorder.wait_for(lambda r: r["kind"] == "http" and r["body"] == body.decode(), count=3)
    assert [(header(a, "X-CloudTasks-TaskRetryCount"), a["status"]) for a in attempts] == [
        ("0", 503),
        ("1", 503),
        ("2", 200),
    ]


def test_cloud_task_is_not_dispatched_before_its_schedule_time(stack: StackConfig, recorder: Recorder) -> None:
    body = json.dumps({"type": "stack_check", "v": 1, "check_id": uuid.uuid4().hex}).encode()
    due = datetime.now(timezone.utc) + timedelta(seconds=2)
    create_http_task(stack, recorder.http_url, body, schedule_time=due)

    [request] = recorder.wait_for(lambda r: r["kind"] == "http" and r["body"] == body.decode())
    assert request["received_at"] >= due.timestamp()
    assert float(header(request, "X-CloudTasks-TaskETA") or 0) == pytest.approx(due.timestamp(), abs=0.001)


@pytest.fixture
def moved_clock(stack: StackConfig) -> Iterator[Callable[[timedelta], datetime]]:
    """Moves the stack's clock (functions and Cloud Tasks emulator) by an offset from real time; reset after."""
    from shared.platform.emulator import set_local_clock

    def move(offset: timedelta) -> datetime:
        moved = datetime.now(timezone.utc) + offset
        set_local_clock(stack.clock_file, moved)
        return moved

    yield move
    set_local_clock(stack.clock_file, None)


def test_a_clock_13_hours_behind_does_not_dispatch_a_task_due_in_5_days(
    stack: StackConfig, recorder: Recorder, moved_clock: Callable[[timedelta], datetime]
) -> None:
    """Issue 8, bug 13: schedule_time is judged on the clock the stack's functions read, never the real one."""
    now = moved_clock(-timedelta(hours=13))
    later = json.dumps({"type": "stack_check", "v": 1, "check_id": uuid.uuid4().hex}).encode()
    sentinel = json.dumps({"type": "stack_check", "v": 1, "check_id": uuid.uuid4().hex}).encode()
    create_http_task(stack, recorder.http_url, later, schedule_time=now + timedelta(days=5))
    create_http_task(stack, recorder.http_url, sentinel, schedule_time=now + timedelta(seconds=1))

    # The sentinel, due after the 5-day task was created, is dispatched: a task due "at once" would be too.
    [request] = recorder.wait_for(lambda r: r["kind"] == "http" and r["body"] == sentinel.decode())
    records = [json.loads(line) for line in recorder.file.read_text().splitlines()]
    assert [r for r in records if r.get("body") == later.decode()] == []
    assert float(header(request, "X-CloudTasks-TaskETA") or 0) == pytest.approx(
        (now + timedelta(seconds=1)).timestamp()
    )


def test_a_clock_22_5_hours_ahead_dispatches_a_task_when_it_is_due_on_that_clock(
    stack: StackConfig, recorder: Recorder, moved_clock: Callable[[timedelta], datetime]
) -> None:
    offset = timedelta(hours=22, minutes=30)
    now = moved_clock(offset)
    body = json.dumps({"type": "stack_check", "v": 1, "check_id": uuid.uuid4().hex}).encode()
    due = now + timedelta(seconds=2)  # due in 2 s on the moved clock: a day early on the real one
    create_http_task(stack, recorder.http_url, body, schedule_time=due)

    [request] = recorder.wait_for(lambda r: r["kind"] == "http" and r["body"] == body.decode())
    real_due = (due - offset).timestamp()
    print(f"\ndispatched {request['received_at'] - real_due:+.2f} s after it was due on the moved clock")
    assert request["received_at"] >= real_due - 0.5  # never before it is due (0.5 s: the clock file's jitter)
    assert float(header(request, "X-CloudTasks-TaskETA") or 0) == pytest.approx(due.timestamp(), abs=0.001)


def publish(stack: StackConfig, topic: str, data: bytes, **attributes: str) -> str:
    publisher = clients.publisher()
    return publisher.publish(publisher.topic_path(stack.project, topic), data, **attributes).result(timeout=10)


def test_published_message_reaches_the_function_as_an_eventarc_cloudevent(
    stack: StackConfig,
    recorder: Recorder,
    test_topic: str,
) -> None:
    message_id = publish(stack, test_topic, b'{"date": "2026-11-02"}', origin="stack-test")

    [event] = recorder.wait_for(lambda r: r["kind"] == "cloudevent" and r["attributes"]["id"] == message_id)
    assert event["attributes"]["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert event["attributes"]["source"] == f"//pubsub.googleapis.com/projects/{stack.project}/topics/{test_topic}"
    assert event["attributes"]["specversion"] == "1.0"
    message = event["data"]["message"]
    assert base64.b64decode(message["data"]) == b'{"date": "2026-11-02"}'
    assert message["attributes"] == {"origin": "stack-test"}
    assert message["messageId"] == message_id
    assert event["data"]["subscription"].startswith(f"projects/{stack.project}/subscriptions/")


def test_bridge_redelivers_until_the_function_answers_2xx(
    stack: StackConfig,
    recorder: Recorder,
    test_topic: str,
) -> None:
    message_id = publish(stack, test_topic, b"{}", recorder_fail_attempts="2")

    deliveries = recorder.wait_for(lambda r: r["kind"] == "cloudevent" and r["attributes"]["id"] == message_id, count=3)
    assert [d["status"] for d in deliveries] == [500, 500, 200]


def test_down_leaves_no_process_and_no_listening_port(stack: StackConfig, tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("MEDSPA_")}
    env.update(MEDSPA_PORT_BASE=str(spare_port_base(stack)), MEDSPA_STATE_DIR=str(tmp_path / "state"))
    second = stack_config.load(env)

    def cli(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "local.stack", command],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    started = cli("up")
    processes = ProcessDir(second.state_dir)
    groups = [processes.running(name) for name in processes.names()]
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert {"firestore", "pubsub", "tasks", "pubsub_bridge"} <= set(processes.names())
        assert all(groups), f"a component died after up: {processes.names()}"
    finally:
        stopped = cli("down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert [port for port in stack_ports(second) if is_listening(second.host, port)] == []
    assert [g.name for g in groups if g is not None and group_alive(g.pid)] == []
    assert processes.names() == []
