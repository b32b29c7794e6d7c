"""`eventually`: the tests' one way to wait for something another process or thread does, by polling with a
deadline (never a sleep as synchronisation). The loop itself is local.processes.wait_until, the stack's."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from local.processes import wait_until

T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout: float = 5.0) -> T:
    """Poll `probe` until it returns something truthy and return that; fail the test after `timeout` seconds."""
    last: list[T] = []

    def holds() -> bool:
        last[:] = [probe()]
        return bool(last[0])

    if not wait_until(holds, timeout):
        raise AssertionError(f"condition not met within {timeout:g} s (last value: {last[0]!r})")
    return last[0]
