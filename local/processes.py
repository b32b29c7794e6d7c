"""Process groups of the local stack: start one with its log and pid file, find it again, stop it.

Every component runs in its own session (so its own process group): `gcloud` starts java, gunicorn
forks workers, and signalling the group reaches all of them. A pid file records the leader's pid and
a key describing what it runs, so a later `up` can tell a running component from a changed one.

PID 1 on these machines does not reap orphans, so a stopped component can linger as zombies: a group
counts as alive only while one of its members is not a zombie (read from /proc).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class Running:
    """What a pid file says about a started component."""

    name: str
    pid: int
    key: str  # what the component was started as (the stack restarts it when its key changes)


class ProcessDir:
    """The logs/ and pids/ folders of one state dir (.local/ by default)."""

    def __init__(self, state_dir: Path) -> None:
        self.logs = state_dir / "logs"
        self.pids = state_dir / "pids"

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_path(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def start(self, name: str, key: str, command: list[str], *, env: dict[str, str], cwd: Path) -> Running:
        """Start `command` as its own process group, output appended to logs/<name>.log."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = Running(name, process.pid, key)
        self.pid_path(name).write_text(json.dumps({"pid": process.pid, "key": key, "command": command}) + "\n")
        return running

    def running(self, name: str) -> Running | None:
        """The component's pid file, if it names a live process group."""
        try:
            state = json.loads(self.pid_path(name).read_text())
            running = Running(name, int(state["pid"]), str(state["key"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return running if group_alive(running.pid) else None

    def names(self) -> list[str]:
        """Every component with a pid file, alive or not."""
        return sorted(path.stem for path in self.pids.glob("*.pid")) if self.pids.is_dir() else []

    def stop(self, names: list[str], grace: float = STOP_GRACE_SECONDS) -> list[str]:
        """SIGTERM the components' groups, SIGKILL what is left after `grace`; the names that survived."""
        groups = {}
        for name in names:
            try:
                groups[name] = int(json.loads(self.pid_path(name).read_text())["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                self.pid_path(name).unlink(missing_ok=True)
        survivors = stop_groups(list(groups.values()), grace)
        for name, pgid in groups.items():
            if pgid not in survivors:
                self.pid_path(name).unlink(missing_ok=True)
        return [name for name, pgid in groups.items() if pgid in survivors]


def _members(pgid: int) -> list[int]:
    """Pids of the group's processes that are not zombies (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    _reap(pgid)
    if not Path("/proc/self/stat").exists():  # not Linux: fall back to the kernel's view, zombies included
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return bool(_members(pgid))


def _reap(pid: int) -> None:
    """Collect the exit status if the leader is our own child (tests start stacks in-process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def stop_groups(pgids: list[int], grace: float = STOP_GRACE_SECONDS) -> list[int]:
    """SIGTERM every group, wait up to `grace`, SIGKILL the rest; the groups with a member left."""
    for pgid in pgids:
        _signal_group(pgid, signal.SIGTERM)
    wait_until(lambda: not any(group_alive(pgid) for pgid in pgids), grace)
    stubborn = [pgid for pgid in pgids if group_alive(pgid)]
    for pgid in stubborn:
        _signal_group(pgid, signal.SIGKILL)
    wait_until(lambda: not any(group_alive(pgid) for pgid in stubborn), 5.0)
    return [pgid for pgid in stubborn if group_alive(pgid)]


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
