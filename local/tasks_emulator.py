"""The local Cloud Tasks emulator: PyPI `gcloud-tasks-emulator` 0.6.2 in its own venv (.venv-tasks).

It pins protobuf<5, so it cannot share .venv; `ensure_venv()` creates .venv-tasks from
local/requirements-tasks.txt on demand (stamped with that file's hash). `command()` is the argv the
stack runs: this module's `main()`, executed by .venv-tasks' python, which serves the emulator with
the stack's queues already created, on loopback.

What the emulator does (read in gcloud_tasks_emulator/server.py, 0.6.2):
- Dispatches an http_request task as a real request (urllib) to the task's own URL with the task's
  method (POST by default), body and headers, plus X-CloudTasks-QueueName, -TaskName (short id),
  -TaskRetryCount and -TaskExecutionCount (both dispatch_count - 1) and -TaskETA (schedule_time as
  epoch seconds, "" when the task has none). No Authorization header: a task's oidc_token is ignored.
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

What this launcher changes, to match the cloud where the product depends on it (production code has no
branch for any emulator gap):
- a task name is refused with ALREADY_EXISTS while its task is queued and for an hour after it ran, was
  given up or its queue was purged or deleted, as Cloud Tasks does; the fan-out's "AlreadyExists = done"
  relies on it. Live names are kept in an index, so a create costs the same with 20 or 200,000 tasks
  queued (a scan of every queue per create made a 20,000-task fan-out quadratic);
- schedule_time is judged on the stack's clock: the local clock file (--clock-file, the one the
  functions read) moves "now", and --time-scale compresses each task's wait (the demo: one day in
  30 s), so a task is due when the functions' clock says it is, never earlier or a day late;
- binds host:port (upstream binds [::]:port, every interface);
- X-CloudTasks-QueueName is the short queue id, as in the cloud (upstream sends the full path);
- max attempts = the queues' max attempts (settings.queue_max_attempts), so "last attempt" logic runs;
- a failed task is retried after an exponential backoff (--min-backoff … --max-backoff, doubling
  --max-doublings times), as a queue's retry config does; upstream retries at once, which would burn
  every attempt while a crashed sender's claim lease is still live;
- with --duplicate-deliveries (the chaos run only) every dispatch is sent twice at once, as Cloud Tasks'
  at-least-once delivery may;
- a queue given a rate (--rate QUEUE=N, the stack's MEDSPA_QUEUE_RATES) starts at most N dispatches a second, as
  a queue's max_dispatches_per_second does (upstream ignores rate limits); the others dispatch as fast as
  their one thread can;
- a dispatch times out after 10 minutes (the cloud's default dispatch deadline; upstream waits forever);
- serves CreateTask on several threads (upstream: two);
- a task with an oidc_token is dispatched as Cloud Tasks does it: with `Authorization: Bearer <ID token>` for
  the token's service account and audience (the task's URL when it names none), signed by the stack's
  issuer (local/identity.py), from inside the project (the ingress header), so the front before a private
  function checks it as Cloud Run would (local/front.py);
- a purge while the queue's thread walks its copy of the task list skips the purged tasks (upstream raises
  NotFound for each, which ends the queue's thread: the queue then never dispatched again);
- ListTasks lists every task not yet done: upstream takes a task out of its queue each time it looks at it
  (every 0.1 s for a future task) and while it dispatches it, and a listing in that window missed it;
- drops the per-0.1 s "scheduled for future execution" log lines.

    python -m local.tasks_emulator --host 127.0.0.1 --port 8603 --queue projects/P/locations/L/queues/Q ...
        [--clock-file PATH] [--time-scale N]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.config import REPO_ROOT, StackConfig

if TYPE_CHECKING:
    from google.cloud.tasks_v2 import Task

REQUIREMENTS = REPO_ROOT / "local" / "requirements-tasks.txt"
DISPATCH_DEADLINE_SECONDS = 600
NAME_TOMBSTONE_SECONDS = 3600  # Cloud Tasks refuses a name for about an hour after its task ran or was deleted
API_THREADS = 8
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
    argv = [
        str(ensure_venv()),
        "-m",
        "local.tasks_emulator",
        "--host",
        config.host,
        "--port",
        str(config.tasks_port),
        "--max-attempts",
        str(max_attempts),
        "--clock-file",
        str(config.clock_file),
        "--time-scale",
        str(config.demo_time_scale),
        "--min-backoff",
        str(config.tasks_min_backoff),
        "--max-backoff",
        str(config.tasks_max_backoff),
        "--state-dir",
        str(config.state_dir),
    ]
    if config.duplicate_deliveries:
        argv.append("--duplicate-deliveries")
    for queue in queues:
        argv += ["--queue", config.queue_path(queue)]
    for queue, rate in config.queue_rates:
        argv += ["--rate", f"{queue}={rate:g}"]
    return argv


class Pacer:
    """A queue's max dispatches per second: each queue has one dispatching thread, so spacing the starts of
    its dispatches is the whole of it (a queue without a rate is not held back)."""

    def __init__(self, rates: dict[str, float], clock: Callable[[], float] = time.monotonic) -> None:
        self.intervals = {queue: 1.0 / rate for queue, rate in rates.items() if rate > 0}
        self.clock, self.next_start = clock, dict.fromkeys(self.intervals, 0.0)
        self.lock = threading.Lock()

    def wait(self, queue: str) -> float:
        """How long the next dispatch of `queue` must wait, its slot reserved."""
        interval = self.intervals.get(queue)
        if interval is None:
            return 0.0
        with self.lock:
            now = self.clock()
            start = max(now, self.next_start[queue])
            self.next_start[queue] = start + interval
            return start - now


def parse_rates(values: list[str]) -> dict[str, float]:
    """`QUEUE=N` pairs (short queue ids) as {queue: dispatches per second}."""
    rates = {}
    for value in values:
        queue, _, rate = value.partition("=")
        if not queue or float(rate or "0") <= 0:
            raise ValueError(f"--rate wants QUEUE=N with N > 0, got {value!r}")
        rates[queue] = float(rate)
    return rates


# ---------------------------------------------------------------- runs inside .venv-tasks from here


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in str(record.msg) for text in _NOISY_MESSAGES)


@dataclass(frozen=True)
class Retries:
    """A queue's retry config (real seconds: the time scale compresses schedule waits, not backoff)."""

    min_backoff: float = 0.1
    max_backoff: float = 1.0
    max_doublings: int = 4

    def after(self, dispatches: int) -> float:
        """Cloud Tasks' backoff before the next attempt: doubling, then growing linearly, capped."""
        doublings = min(max(0, dispatches - 1), self.max_doublings)
        linear = max(0, dispatches - 1 - self.max_doublings)
        wait = self.min_backoff * 2**doublings + linear * self.min_backoff * 2**self.max_doublings
        return min(self.max_backoff, wait)


class CloudLikeQueues:
    """ALREADY_EXISTS for a name Cloud Tasks would refuse, schedule times on the stack's clock, backoff."""

    def __init__(self, clock_file: Path | None, time_scale: int, retries: Retries) -> None:
        self.clock_file, self.time_scale, self.retries = clock_file, max(1, time_scale), retries
        self.lock = threading.Lock()
        self.finished: dict[str, float] = {}  # task name → when it ran for the last time or was given up
        self.live: dict[str, str] = {}  # name of every task still in a queue → its queue
        self.original_eta: dict[str, object] = {}
        self.in_transit: dict[str, tuple[str, Any]] = {}  # name → (queue, task) while upstream holds it out

    def patch(self, state: Any) -> None:
        from google.api_core.exceptions import AlreadyExists

        from shared.platform.emulator import read_clock_offset

        upstream_create = state.create_task
        upstream_submit = state.submit_task
        upstream_purge = state.purge_queue
        upstream_delete = state.delete_queue

        def still_queued(name: str) -> bool:
            queue = self.live.get(name)
            return queue is not None and any(task.name == name for task in state._queue_tasks.get(queue, ()))

        def create_task(queue: str, task: Task) -> Task:
            with self.lock:
                now = time.time()
                if task.name:
                    finished = self.finished.get(task.name)
                    # An index of live names, not a scan of every queue: a fan-out's creates stay O(1) each.
                    if task.name in self.live or (finished is not None and now - finished < NAME_TOMBSTONE_SECONDS):
                        raise AlreadyExists(f"Requested entity already exists: {task.name}")
                if "schedule_time" in task and task.schedule_time:
                    wanted = task.schedule_time
                    offset = read_clock_offset(self.clock_file) if self.clock_file else timedelta(0)
                    stack_now = datetime.now(timezone.utc) + offset
                    wait = max(0.0, (wanted - stack_now).total_seconds()) / self.time_scale
                    if offset or self.time_scale > 1:
                        task.schedule_time = datetime.fromtimestamp(now + wait, timezone.utc)
                        if task.name:
                            self.original_eta[task.name] = wanted
                created = upstream_create(queue, task)
                self.live[created.name] = queue
                return created

        def forget(queue_name: str) -> None:
            """A purged or deleted queue's tasks are gone: their names are tombstoned, as in the cloud."""
            now = time.time()
            for name in [name for name, queue in self.live.items() if queue == queue_name]:
                del self.live[name]
                self.finished[name] = now
                self.original_eta.pop(name, None)

        def purge_queue(queue_name: str) -> object:
            with self.lock:
                forget(queue_name)
                return upstream_purge(queue_name)

        def delete_queue(name: str) -> object:
            with self.lock:
                forget(name)
                return upstream_delete(name)

        def submit_task(task_name: str, force_run: bool = False) -> object:
            # Upstream takes the task out of its queue to look at it (and to dispatch it), then puts it back at
            # the end: meanwhile a listing would miss it. Cloud Tasks lists every task not yet done.
            queue_name = task_name.rsplit("/", 2)[0]
            held = next((t for t in list(state._queue_tasks.get(queue_name, ())) if t.name == task_name), None)
            if held is None and not force_run:
                # Purged (or run) since the queue's thread copied its task list: nothing to run. Upstream raises
                # NotFound here, which ends that queue's only thread and leaves the queue dispatching nothing
                # again; a purged Cloud Tasks queue goes on taking and running new tasks.
                return None
            before = int(held.dispatch_count) if held is not None else 0
            if held is not None:
                self.in_transit[task_name] = (queue_name, held)
            try:
                task = upstream_submit(task_name, force_run)
            finally:
                self.in_transit.pop(task_name, None)
            with self.lock:
                if not still_queued(task.name):
                    self.live.pop(task.name, None)
                    self.finished[task.name] = time.time()
                    self.original_eta.pop(task.name, None)
                elif task.dispatch_count > before:
                    # Just failed, and put back by upstream: not before its backoff has passed.
                    task.schedule_time = datetime.fromtimestamp(
                        time.time() + self.retries.after(task.dispatch_count), timezone.utc
                    )
            return task

        upstream_list = state.list_tasks

        def list_tasks(queue_name: str) -> list[object]:
            """Tasks as their creator sees them: schedule_time on the stack's clock, as it was asked for."""
            shown = []
            snapshot = list(upstream_list(queue_name))  # upstream hands out its live deque
            names = {task.name for task in snapshot}
            snapshot += [
                task
                for name, (queue, task) in list(self.in_transit.items())
                if queue == queue_name and name not in names
            ]
            for task in snapshot:
                eta = self.original_eta.get(task.name)
                if eta is not None:
                    task = type(task)(task)
                    task.schedule_time = eta
                shown.append(task)
            return shown

        state.create_task = create_task
        state.submit_task = submit_task
        state.list_tasks = list_tasks
        state.purge_queue = purge_queue
        state.delete_queue = delete_queue


def serve(
    host: str,
    port: int,
    queues: list[str],
    max_attempts: int,
    clock_file: Path | None = None,
    time_scale: int = 1,
    retries: Retries | None = None,
    duplicate_deliveries: bool = False,
    state_dir: Path | None = None,
    rates: dict[str, float] | None = None,
) -> int:
    """Run the emulator in the foreground until SIGTERM/SIGINT."""
    from concurrent import futures

    import grpc
    from gcloud_tasks_emulator import server as emulator

    from local import identity

    names = CloudLikeQueues(clock_file, time_scale, retries or Retries())
    upstream_request = emulator._make_task_request
    issuer = identity.Issuer.load(state_dir) if state_dir else None
    internal = identity.internal_headers(state_dir) if state_dir else {}
    pacer = Pacer(rates or {})

    def dispatch(queue_name: str, task: Any, target_host: str, target_port: int) -> object:
        eta = names.original_eta.get(task.name)
        oidc = task.http_request.oidc_token if "oidc_token" in task.http_request else None
        task = type(task)(task)  # headers and times are set on the dispatched copy, never on the queued task
        if eta is not None:  # the header says when the task was due on the stack's clock
            task.schedule_time = eta
        if issuer is not None:
            for name, value in internal.items():
                task.http_request.headers[name] = value
            if oidc is not None and oidc.service_account_email:
                # Minted per dispatch, as Cloud Tasks does: a retry an hour later still carries a live token.
                token = issuer.mint(email=oidc.service_account_email, audience=oidc.audience or task.http_request.url)
                task.http_request.headers["Authorization"] = f"Bearer {token}"
        short = queue_name.rsplit("/", 1)[-1]
        pause = pacer.wait(short)
        if pause > 0:
            time.sleep(pause)
        if duplicate_deliveries:
            twin = (upstream_request, short, type(task)(task), target_host, target_port)
            threading.Thread(target=_quietly, args=twin, daemon=True).start()
        return upstream_request(short, task, target_host, target_port)

    emulator._make_task_request = dispatch  # looked up at call time by QueueState.submit_task
    socket.setdefaulttimeout(DISPATCH_DEADLINE_SECONDS)  # urllib's dispatch; gRPC does not use it

    class LoopbackApi:
        """Replaces upstream's APIThread, which binds [::]:port; bind errors surface here, at start."""

        def __init__(self, state: object) -> None:
            self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=API_THREADS))
            emulator.add_CloudTasksServicer_to_server(emulator.Greeter(state), self._server)
            if self._server.add_insecure_port(f"{host}:{port}") == 0:
                raise RuntimeError(f"cannot bind {host}:{port}")

        def start(self) -> None:
            self._server.start()

        def join(self, timeout: float | None = None) -> None:
            self._server.stop(grace=0)

    server = emulator.create_server(host, port, host, 80, queues, max_attempts - 1)
    names.patch(server._state)
    server._api = LoopbackApi(server._state)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # Server.run() stops its threads on KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    print(
        f"tasks emulator on {host}:{port}; queues: {', '.join(queues)}; max attempts {max_attempts}; "
        f"time scale {time_scale}; rates {rates or 'none'}",
        flush=True,
    )
    server.run()
    return 0


def _quietly(request: Any, *args: Any) -> None:
    """The duplicate of a dispatch: its answer does not count, as a second delivery's would not."""
    try:
        request(*args).read()
    except Exception:  # noqa: BLE001,S110 - an error answer or a dropped connection: the first delivery decides
        pass


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = argparse.ArgumentParser(prog="python -m local.tasks_emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", action="append", default=[], help="full queue name; repeat")
    parser.add_argument("--max-attempts", type=int, default=0, help="0 = retry forever")
    parser.add_argument("--clock-file", type=Path, default=None, help="the stack's clock file")
    parser.add_argument("--time-scale", type=int, default=1, help="divide each task's wait by this")
    parser.add_argument("--min-backoff", type=float, default=Retries.min_backoff, help="seconds")
    parser.add_argument("--max-backoff", type=float, default=Retries.max_backoff, help="seconds")
    parser.add_argument("--max-doublings", type=int, default=Retries.max_doublings)
    parser.add_argument("--duplicate-deliveries", action="store_true", help="send every dispatch twice (chaos)")
    parser.add_argument("--rate", action="append", default=[], help="QUEUE=N dispatches per second; repeat")
    parser.add_argument("--state-dir", type=Path, default=None, help="the stack's state dir: its issuer signs tokens")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_QuietFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], format="%(asctime)s %(message)s")
    retries = Retries(args.min_backoff, args.max_backoff, args.max_doublings)
    return serve(
        args.host,
        args.port,
        args.queue,
        args.max_attempts,
        args.clock_file,
        args.time_scale,
        retries,
        args.duplicate_deliveries,
        args.state_dir,
        parse_rates(args.rate),
    )


if __name__ == "__main__":
    raise SystemExit(main())
