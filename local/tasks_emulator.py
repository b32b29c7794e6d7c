"""The local Cloud Tasks emulator: PyPI `gcloud-tasks-emulator` 0.6.2 in its own venv (.venv-tasks).

It pins protobuf<5, so it cannot share .venv; `ensure_venv()` creates .venv-tasks from
local/requirements-tasks.txt on demand (stamped with that file's hash). `command()` is the argv the
stack runs: this module's `main()`, executed by .venv-tasks' python, which serves the emulator with
the stack's queues already created, on loopback.

What the emulator does (read in gcloud_tasks_emulator/server.py, 0.6.2):
- Dispatches an http_request task as a real request (urllib) to the task's own URL with the task's
  method (POST by default), body and headers, plus X-CloudTasks-QueueName, -TaskName (short id),
  -TaskRetryCount and -TaskExecutionCount (both dispatch_count - 1) and -TaskETA (schedule_time as
  epoch seconds, "" when the task has none). No Authorization header: OIDC tokens are not minted.
  No X-CloudTasks-TaskPreviousResponse / -TaskRetryReason; User-Agent is Python-urllib; without a
  Content-Type task header urllib sends application/x-www-form-urlencoded (the cloud sends
  application/octet-stream), so set Content-Type on the task.
- Honours schedule_time: a task due in the future is moved to the back of its queue and retried on
  the 0.1 s processor loop. A task without schedule_time is due at once (the cloud sets it to now).
- Retries every status >= 400 and connection errors, at once (no backoff), up to --max-retries
  (default: forever). Ignores the queue's rate limits and retry config. One thread per queue,
  dispatching one task at a time.
- Task names: generates `.../tasks/<microseconds>` when none is given; does NOT reject a duplicate
  name (no AlreadyExists, no tombstones). Creating a task in a missing queue → FAILED_PRECONDITION
  (the cloud says NOT_FOUND). GetTask / DeleteTask are not implemented (UNIMPLEMENTED).
- Queues: `-Q queue.yaml` (names only), `-d projects/P/locations/L/queues/Q`, or CreateQueue over the
  API; all kept in memory.

What this launcher changes, to match the cloud where code depends on it:
- binds host:port (upstream binds [::]:port, every interface);
- X-CloudTasks-QueueName is the short queue id, as in the cloud (upstream sends the full path);
- max attempts = the queues' max attempts (settings.queue_max_attempts), so "last attempt" logic runs;
- a dispatch times out after 10 minutes (the cloud's default dispatch deadline; upstream waits forever);
- drops the per-0.1 s "scheduled for future execution" log lines.

    python -m local.tasks_emulator --host 127.0.0.1 --port 8603 --queue projects/P/locations/L/queues/Q ...
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from local.config import REPO_ROOT, StackConfig

REQUIREMENTS = REPO_ROOT / "local" / "requirements-tasks.txt"
DISPATCH_DEADLINE_SECONDS = 600
_NOISY_MESSAGES = ("[TASKS] Processing next task", "is scheduled for future execution")


class TasksVenvError(RuntimeError):
    """.venv-tasks could not be created; the message holds pip's output."""


def venv_dir() -> Path:
    return REPO_ROOT / ".venv-tasks"


def _stamp() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def _python() -> Path:
    return venv_dir() / "bin" / "python"


def _ready() -> bool:
    try:
        return _python().exists() and (venv_dir() / ".stamp").read_text().strip() == _stamp()
    except OSError:
        return False


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """Serialise creation between processes (a developer's `up` and a test's stack may race)."""
    path = REPO_ROOT / ".local" / "venv-tasks.lock"  # not inside the venv: creation starts by deleting it
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_venv() -> Path:
    """Create or refresh .venv-tasks from local/requirements-tasks.txt; return its python."""
    if _ready():
        return _python()
    with _lock():
        if _ready():
            return _python()
        print(f"creating {venv_dir()} for the Cloud Tasks emulator (once, ~20 s)...", flush=True)
        shutil.rmtree(venv_dir(), ignore_errors=True)
        for step in (
            [sys.executable, "-m", "venv", str(venv_dir())],
            [str(_python()), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
        ):
            result = subprocess.run(step, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
                raise TasksVenvError(f"{' '.join(step)} failed (exit {result.returncode}):\n{tail}")
        (venv_dir() / ".stamp").write_text(_stamp() + "\n")
    return _python()


def command(config: StackConfig, queues: tuple[str, ...], max_attempts: int) -> list[str]:
    """Argv serving the emulator on the stack's tasks port with `queues` created."""
    argv = [str(ensure_venv()), "-m", "local.tasks_emulator", "--host", config.host,
            "--port", str(config.tasks_port), "--max-attempts", str(max_attempts)]
    for queue in queues:
        argv += ["--queue", config.queue_path(queue)]
    return argv


# ---------------------------------------------------------------- runs inside .venv-tasks from here


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in str(record.msg) for text in _NOISY_MESSAGES)


def serve(host: str, port: int, queues: list[str], max_attempts: int) -> int:
    """Run the emulator in the foreground until SIGTERM/SIGINT."""
    import socket
    from concurrent import futures

    import grpc
    from gcloud_tasks_emulator import server as emulator

    upstream_request = emulator._make_task_request

    def dispatch(queue_name: str, task: object, target_host: str, target_port: int) -> object:
        return upstream_request(queue_name.rsplit("/", 1)[-1], task, target_host, target_port)

    emulator._make_task_request = dispatch  # looked up at call time by QueueState.submit_task
    socket.setdefaulttimeout(DISPATCH_DEADLINE_SECONDS)  # urllib's dispatch; gRPC does not use it

    class LoopbackApi:
        """Replaces upstream's APIThread, which binds [::]:port; bind errors surface here, at start."""

        def __init__(self, state: object) -> None:
            self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            emulator.add_CloudTasksServicer_to_server(emulator.Greeter(state), self._server)
            if self._server.add_insecure_port(f"{host}:{port}") == 0:
                raise RuntimeError(f"cannot bind {host}:{port}")

        def start(self) -> None:
            self._server.start()

        def join(self, timeout: float | None = None) -> None:
            self._server.stop(grace=0)

    server = emulator.create_server(host, port, host, 80, queues, max_attempts - 1)
    server._api = LoopbackApi(server._state)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # Server.run() stops its threads on KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    print(f"tasks emulator on {host}:{port}; queues: {', '.join(queues)}; max attempts {max_attempts}",
          flush=True)
    server.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = argparse.ArgumentParser(prog="python -m local.tasks_emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", action="append", default=[], help="full queue name; repeat")
    parser.add_argument("--max-attempts", type=int, default=0, help="0 = retry forever")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_QuietFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], format="%(asctime)s %(message)s")
    return serve(args.host, args.port, args.queue, args.max_attempts)


if __name__ == "__main__":
    raise SystemExit(main())
