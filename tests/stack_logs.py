"""What the integration tests read of the running stack's processes: `FunctionLogs` follows the JSON lines a
function (or the bridge) writes to its log, and `publish` sends Pub/Sub messages that make them write."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from local.config import StackConfig
from local.processes import ProcessDir
from shared.platform import clients
from tests.polling import eventually


class FunctionLogs:
    """JSON lines a stack process writes to its log from now on (functions: shared.log; the bridge: its own).

    Only lines after the log's current end count: Pub/Sub message ids restart at 1 with the emulator, so
    an older run's lines can carry the same event ids.
    """

    def __init__(self, stack: StackConfig, name: str, timeout: float = 60.0) -> None:
        self.name = name
        self.path = ProcessDir(stack.state_dir).log_path(name)
        self.offset = self.path.stat().st_size
        self.timeout = timeout

    def text(self) -> str:
        """Everything the process wrote to its log since this follower was made."""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            return handle.read().decode(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for raw in self.text().splitlines():
            if raw.startswith("{"):
                try:
                    found.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        return found

    def wait_for(self, matches: Callable[[dict[str, Any]], bool], count: int = 1) -> list[dict[str, Any]]:
        """The lines that match, once there are at least `count` of them."""

        found: list[dict[str, Any]] = []

        def enough() -> list[dict[str, Any]]:
            found[:] = [line for line in self.lines() if matches(line)]
            return list(found) if len(found) >= count else []

        try:
            return eventually(enough, self.timeout)
        except AssertionError:
            raise AssertionError(f"{count} matching line(s) not in {self.path}: {found}") from None


def publish(stack: StackConfig, topic: str, payloads: list[bytes]) -> list[str]:
    """Publish every payload at once (concurrently in flight) and return the message ids."""
    publisher = clients.publisher()
    futures = [publisher.publish(f"projects/{stack.project}/topics/{topic}", payload) for payload in payloads]
    return [future.result(timeout=10) for future in futures]
