"""The Firestore and Pub/Sub stand-ins (local/standins.py), driven through the official Python clients.

Opt-in: these tests run only with MEDSPA_TEST_STANDINS=1 (they are skipped otherwise, so CI, which has
gcloud's own emulators, does not spend time installing npm packages and building Go). When enabled
they install/build the stand-ins if needed (first time: npm ci + apt-get + go build, ~20-40 s), start
each on a free loopback port, and a failure to install is a test failure, not a skip:

    MEDSPA_TEST_STANDINS=1 .venv/bin/pytest tests/integration/test_standins.py

What they show: a Firestore doc written reads back; create() of an existing doc raises AlreadyExists,
and of 40 concurrent creators exactly one wins (every once-only step relies on it: docs/architecture.md,
"Single-document preconditions"); a Pub/Sub publish is pulled back; each stand-in listens on loopback
only and exits 0 on SIGTERM.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from local import standins
from tests.spare_ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("MEDSPA_TEST_STANDINS") != "1",
        reason="stand-in tests are opt-in: set MEDSPA_TEST_STANDINS=1",
    ),
]

HOST = "127.0.0.1"
PROJECT = "medspa-standin-test"
READY_TIMEOUT = 30.0


@dataclass
class Running:
    proc: subprocess.Popen[str]
    port: int
    lines: list[str]
    seconds_to_ready: float

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"stand-in ignored SIGTERM for {timeout}s; output: {self.lines}") from None
        return self.proc.returncode


def _start(command: Callable[[str, int], list[str]]) -> Running:
    """Install if needed, run the stand-in, wait for its "ready" line and an accepting TCP port."""
    port = free_port()
    argv = command(HOST, port)  # installs/builds first; StandinUnavailable fails the test
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready: queue.Queue[bool] = queue.Queue()

    def pump() -> None:  # keeps draining output so the child never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if " ready on " in line:
                ready.put(True)
        ready.put(False)

    threading.Thread(target=pump, daemon=True).start()
    running = Running(proc, port, lines, 0.0)
    try:
        ok = ready.get(timeout=READY_TIMEOUT)
    except queue.Empty:
        ok = False
    if not ok or not standins.is_listening(HOST, port):
        running.stop()
        raise AssertionError(f"{argv} did not become ready in {READY_TIMEOUT}s; output: {lines}")
    running.seconds_to_ready = time.monotonic() - started
    return running


@pytest.fixture(scope="module")
def firestore_standin() -> Iterator[Running]:
    running = _start(standins.firestore_command)
    yield running
    assert running.stop() == 0, running.lines


@pytest.fixture(scope="module")
def pubsub_standin() -> Iterator[Running]:
    running = _start(standins.pubsub_command)
    yield running
    assert running.stop() == 0, running.lines


@pytest.fixture
def firestore_client(firestore_standin: Running, monkeypatch: pytest.MonkeyPatch):
    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_standin.address)
    client = firestore.Client(project=PROJECT)
    yield client
    client.close()


def _fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


def test_firestore_doc_written_reads_back(firestore_client) -> None:
    ref = firestore_client.collection("clinics").document(_fresh("clinic"))
    data = {"name": "Glow Spa", "timezone": "America/Chicago", "seats": 3, "tags": ["botox", "laser"]}
    ref.set(data)

    snapshot = ref.get()
    assert snapshot.exists
    assert snapshot.to_dict() == data
    assert not firestore_client.collection("clinics").document(_fresh("missing")).get().exists


def test_firestore_create_on_existing_doc_raises_already_exists(firestore_client) -> None:
    from google.api_core.exceptions import AlreadyExists

    ref = firestore_client.collection("markers").document(_fresh("marker"))
    ref.create({"owner": "first"})
    with pytest.raises(AlreadyExists):
        ref.create({"owner": "second"})
    assert ref.get().to_dict() == {"owner": "first"}


def test_firestore_create_is_exclusive_among_40_concurrent_creators(firestore_client) -> None:
    from google.api_core.exceptions import AlreadyExists

    ref = firestore_client.collection("markers").document(_fresh("contended"))
    start = threading.Barrier(40)

    def attempt(i: int) -> str:
        start.wait()
        try:
            ref.create({"owner": i})
        except AlreadyExists:
            return "lost"
        return "won"

    with ThreadPoolExecutor(max_workers=40) as pool:
        outcomes = list(pool.map(attempt, range(40)))
    assert outcomes.count("won") == 1, outcomes
    assert outcomes.count("lost") == 39, outcomes


def test_pubsub_publish_then_pull_round_trips(pubsub_standin: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # untyped; mypy misses it in the namespace

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_standin.address)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(PROJECT, _fresh("reminders-tick"))
    subscription = subscriber.subscription_path(PROJECT, _fresh("reminders-tick-sub"))
    try:
        publisher.create_topic(request={"name": topic})
        subscriber.create_subscription(request={"name": subscription, "topic": topic, "ack_deadline_seconds": 10})
        message_id = publisher.publish(topic, b'{"date": "2030-01-02"}', clinic_id="c-1").result(timeout=10)

        received: list[Any] = []  # pubsub_v1 ReceivedMessage (the library is untyped)
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            response = subscriber.pull(request={"subscription": subscription, "max_messages": 10}, timeout=5)
            received.extend(response.received_messages)
        assert len(received) == 1, received
        message = received[0].message
        assert message.message_id == message_id
        assert message.data == b'{"date": "2030-01-02"}'
        assert dict(message.attributes) == {"clinic_id": "c-1"}
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [received[0].ack_id]})
    finally:
        subscriber.close()
        publisher.stop()


def _listen_addresses(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on this port, from /proc/net/tcp (hex, little-endian IPv4)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state = fields[1], fields[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.parametrize("name", ["firestore", "pubsub"])
def test_listens_on_loopback_only_and_exits_cleanly_on_sigterm(name: str) -> None:
    command = standins.firestore_command if name == "firestore" else standins.pubsub_command
    running = _start(command)
    try:
        if os.path.exists("/proc/net/tcp"):  # Linux: 0100007F is 127.0.0.1; 00000000 would be 0.0.0.0
            assert _listen_addresses(running.port) == {"0100007F"}, running.lines
    finally:
        code = running.stop()
    assert code == 0, running.lines
    assert any("stopping" in line for line in running.lines), running.lines
