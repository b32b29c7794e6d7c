"""The one source of "now" for every function: the system clock, moved only on the local stack.

On the emulator a clock file can move it (shared.platform.emulator.ClockFile); the moved clock keeps
ticking. Tests of pure logic use tests/fakes.FixedClock.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol

from shared.platform.emulator import ClockFile


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Real UTC time (plus the local clock file's offset, on the emulator only)."""

    def __init__(self) -> None:
        self._file = ClockFile()

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self._file.offset()


system_clock = SystemClock()
