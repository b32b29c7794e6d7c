"""The one source of "now" for every function.

In production it is the system clock. On the local stack only (see settings.on_emulator) a clock file
named by MEDSPA_CLOCK_FILE can move it to another instant, so a demo or a test can stand on any date,
the eve of a DST change say, and see what the functions would schedule. The moved clock keeps ticking:
now = base + (real now - set_at).
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from shared.platform.settings import on_emulator


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Real UTC time, moved only by a local clock file while the emulator variables are set."""

    def now(self) -> datetime:
        real = datetime.now(timezone.utc)
        path = os.environ.get("MEDSPA_CLOCK_FILE")
        if not path or not on_emulator():
            return real
        try:
            state = json.loads(Path(path).read_text())
        except FileNotFoundError:
            return real
        base = datetime.fromisoformat(state["base"])
        return base + timedelta(seconds=time.time() - float(state["set_at"]))


class FixedClock:
    """A clock for tests of pure logic: stands still until told to move."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        return self.instant

    def advance(self, **delta: float) -> None:
        self.instant += timedelta(**delta)


def set_local_clock(path: str | Path, instant: datetime | None) -> None:
    """Move the local stack's clock to `instant` (None → back to real time). Local tooling only."""
    target = Path(path)
    if instant is None:
        target.unlink(missing_ok=True)
        return
    if instant.tzinfo is None:
        raise ValueError("the local clock needs an aware datetime")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"base": instant.astimezone(timezone.utc).isoformat(), "set_at": time.time()}))
    tmp.replace(target)


system_clock = SystemClock()
