"""Every switch that exists only for the local stack, in one module (docs/architecture.md, "Local stack").

Production code asks this module, never the environment, whether it runs on the emulators. Each switch
takes effect only while every Google service we write to is an emulator (FIRESTORE_EMULATOR_HOST and
CLOUD_TASKS_EMULATOR_HOST set), which production never sets, so none can be left on in production:
- CLOUD_TASKS_EMULATOR_HOST: the Cloud Tasks emulator, spoken to over insecure gRPC;
- PROVIDER_SANDBOX_URL: Twilio's and SendGrid's API hosts replaced by the local provider sandbox;
- MEDSPA_CLOCK_FILE: a clock file that moves "now" (a demo or a test can stand on the eve of a DST change).
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from shared.platform import env as envvars
from shared.platform.errors import ConfigError

EMULATOR_VARIABLES = ("FIRESTORE_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST")


def on_emulator(env: envvars.Environ | None = None) -> bool:
    """True only on the local stack: every Google service we write to is an emulator."""
    source = envvars.environ(env)
    return all(source.get(name, "").strip() for name in EMULATOR_VARIABLES)


def tasks_emulator_host(env: envvars.Environ | None = None) -> str | None:
    host = envvars.text(envvars.environ(env), "CLOUD_TASKS_EMULATOR_HOST")
    return host or None


def sandbox_url(env: envvars.Environ | None = None) -> str | None:
    """The provider sandbox's base URL, or None in production. Refuses to half-apply."""
    source = envvars.environ(env)
    url = envvars.text(source, "PROVIDER_SANDBOX_URL").rstrip("/")
    if not url:
        return None
    if not on_emulator(source):
        raise ConfigError("PROVIDER_SANDBOX_URL is set but the emulator variables are not: refusing to guess")
    return url


# ------------------------------------------------------------------------------------ the local clock
# File format: {"base": ISO instant, "set_at": epoch seconds}; now = base + (real now - set_at).


class ClockFile:
    """The moved clock's offset from real time, re-read only when the file changes: `now()` runs on every
    request, and a stat is far cheaper than opening and parsing the file each time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple[str, int, int, int] | None = None
        self._offset = timedelta(0)

    def offset(self) -> timedelta:
        path = os.environ.get("MEDSPA_CLOCK_FILE", "")
        if not path or not on_emulator():
            return timedelta(0)
        try:
            stat = os.stat(path)
        except OSError:
            return timedelta(0)
        # set_local_clock replaces the file (a new inode); an edit in place changes its mtime or size
        stamp = (path, stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._offset, self._stamp = read_clock_offset(Path(path)), stamp
            return self._offset


def read_clock_offset(path: Path) -> timedelta:
    """How far the clock file moves "now" from real time (zero when it is missing or unreadable)."""
    try:
        state = json.loads(path.read_text())
        base = datetime.fromisoformat(state["base"])
        return base - datetime.fromtimestamp(float(state["set_at"]), timezone.utc)
    except (OSError, ValueError, KeyError, TypeError):
        return timedelta(0)


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
