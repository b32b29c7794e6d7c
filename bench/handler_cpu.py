"""The task handler's CPU per delivered reminder, in process, on the running local stack (a script, not a test).

    python -m local.stack up        # with your MEDSPA_PORT_BASE / MEDSPA_STATE_DIR
    python bench/handler_cpu.py [--deliveries 150] [--channel sms|email|both] [--against REF] [--rounds 3]
    python bench/handler_cpu.py --profile [--channel sms]
    python bench/handler_cpu.py --worker [--deliveries 300]
    python bench/handler_cpu.py --store [--rounds 3]

The real entry point (functions/task_handler/main.py handle_task, through functions-framework's Flask app
and its test client: the framework's own request handling counts) delivers `--deliveries` distinct
reminders, one after another, to the stack's Firestore emulator and provider sandbox, which run in other
processes: this process's CPU (time.process_time) over the deliveries is the handler's own. Warm-up
deliveries first (imports, client construction, the clinic cache), so it is the steady state an
instance serving traffic has. Each measurement runs in a fresh process.

--against REF measures git revision REF (checked out in a temporary worktree, this script copied in) and
this tree in alternating rounds against the same stack, and prints both medians and their ratio: on a
shared machine only a same-run comparison is fair. --profile runs once under py-spy (pip install py-spy)
and folds the samples by handler step. --worker posts to the stack's own task-handler process (werkzeug's
HTTP server in front of the same app) and reads that process's CPU from /proc: CPU per delivered reminder
as one worker spends it, and the requests/s that CPU allows one worker. --store times the handler's
Firestore steps alone (the batched read, a versioned update) through the plain library, through this
client with its direct read switched off (as before it) and as it is, alternating in one process: the
least noisy before/after.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local import config as stack_config  # noqa: E402
from local.standins import is_listening  # noqa: E402

WARM_UP = 5

# Handler steps, for --profile: a sample counts for the innermost frame that names one.
STEPS: tuple[tuple[str, str], ...] = (
    ("provider send: Twilio", r"^TwilioSms\.send_sms "),
    ("provider send: SendGrid", r"^SendGridEmail\.send_email "),
    ("claim (ledger create/update)", r"^Ledger\.claim "),
    ('"sent" update (Ledger.mark_sent)', r"^Ledger\.mark_sent "),
    ("batched read (ledger, appointment, patient)", r"^AppointmentMessages\._read "),
    ("rendering", r"^(render|render_sms|AppointmentMessages\.deliver\.<locals>\.render_for) "),
    ("rest of the delivery service", r"^AppointmentMessages\.deliver "),
    ("router, auth, body, log", r"^TaskRouter\.handle "),
    ("framework (Flask, functions-framework)", r"^measured "),
)


def seed(db: Any, count: int, channel: str) -> list[dict[str, Any]]:
    """One clinic, `count` appointments of one patient each, a scheduled 24 h reminder for each."""
    from shared.messaging.keys import message_key
    from shared.messaging.ledger import Ledger, Planned
    from shared.platform import clients
    from shared.platform.clock import system_clock

    run = uuid.uuid4().hex[:6]
    clinic_id = f"bench-cpu-{run}"
    db.collection("clinics").document(clinic_id).set(
        {
            "name": "Bench Clinic",
            "timezone": "America/New_York",
            "phone": "+12125550142",
            "sms_from": "+12125550100",
            "email_from": "bench@clinic.example.com",
        }
    )
    start = (system_clock.now() + timedelta(days=2)).replace(microsecond=0)
    bodies, planned = [], []
    batch = db.batch()
    for index in range(count):
        patient_id, appointment_id = f"{clinic_id}-p{index}", f"{clinic_id}-a{index}"
        batch.set(
            db.collection("patients").document(patient_id),
            {
                "clinic_id": clinic_id,
                "first_name": "Bench",
                "phone": f"+1212555{index % 10000:04d}",
                "email": f"bench{index}@example.com",
                "preferred_channel": channel,
            },
        )
        batch.set(
            db.collection("appointments").document(appointment_id),
            {
                "clinic_id": clinic_id,
                "patient_id": patient_id,
                "service_name": "Botox",
                "status": "booked",
                "start": start,
                "end": start + timedelta(hours=1),
            },
        )
        if index % 200 == 199:
            batch.commit()
            batch = db.batch()
        key = message_key("appointment_reminder", appointment_id, start, 24)
        planned.append(Planned(key, {"kind": "appointment_reminder", "channel": channel}))
        bodies.append(
            {
                "type": "appointment_reminder",
                "v": 1,
                "appointment_id": appointment_id,
                "clinic_id": clinic_id,
                "patient_id": patient_id,
                "dedup_key": key,
                "send_at": system_clock.now().isoformat(),
                "appointment_start": start.isoformat(),
                "offset_hours": 24,
            }
        )
    batch.commit()
    ledger = Ledger(clients.store(), system_clock)
    for offset in range(0, len(planned), 400):
        ledger.schedule(planned[offset : offset + 400])
    return bodies


def headers_for(index: int, channel: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-CloudTasks-TaskName": f"bench-{uuid.uuid4().hex[:8]}-{index}",
        "X-CloudTasks-TaskRetryCount": "0",
        "X-CloudTasks-QueueName": f"reminders-{channel}",
    }


def check(index: int, status: int, answer: Any) -> None:
    if status != 200 or not isinstance(answer, dict) or answer.get("outcome") != "sent":
        raise SystemExit(f"delivery {index} answered {status} {str(answer)[:200]}")


def caller_auth(config: Any) -> dict[str, str]:
    """The headers Cloud Tasks sends the task handler: its OIDC token for the tasks account, and the ingress header."""
    from local import identity

    url = config.function_env()["TASK_HANDLER_URL"]
    return identity.caller_headers(
        Path(config.state_dir), email=config.function_env()["TASKS_SERVICE_ACCOUNT"], audience=url
    )


def forwarded_auth(config: Any) -> dict[str, str]:
    """What the handler receives deployed behind IAM (INVOKER_IAM_CHECK=on): Cloud Run's front end checked the
    token and replaced its signature (local/front.py does the same on the stack)."""
    from local.front import SIGNATURE_REMOVED

    signed = caller_auth(config)["Authorization"]
    return {"Authorization": signed.rpartition(".")[0] + "." + SIGNATURE_REMOVED}


def deliver(client: Any, bodies: list[dict[str, Any]], channel: str) -> None:
    auth = forwarded_auth(stack_config.load())
    for index, body in enumerate(bodies):
        answer = client.post("/", data=json.dumps(body), headers={**auth, **headers_for(index, channel)})
        check(index, answer.status_code, answer.get_json())


def measured(client: Any, bodies: list[dict[str, Any]], channel: str) -> tuple[float, float]:
    """(CPU seconds, wall seconds) this process spends delivering `bodies`."""
    started, cpu = time.perf_counter(), time.process_time()
    deliver(client, bodies, channel)
    return time.process_time() - cpu, time.perf_counter() - started


def measure(deliveries: int, channel: str) -> dict[str, float]:
    """One measurement, in this process: ms of CPU and of wall time per delivered reminder."""
    import functions_framework

    from shared.platform import clients

    os.environ["INVOKER_IAM_CHECK"] = "on"  # as the stack's task-handler runs, behind its front
    app = functions_framework.create_app(
        target="handle_task", source=str(REPO_ROOT / "functions" / "task_handler" / "main.py")
    )
    client = app.test_client()
    bodies = seed(clients.firestore(), WARM_UP + deliveries, channel)
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's JSON log lines
        deliver(client, bodies[:WARM_UP], channel)
        spent, wall = measured(client, bodies[WARM_UP:], channel)
    return {"cpu_ms": spent / deliveries * 1000, "wall_ms": wall / deliveries * 1000}


def _child(tree: Path, deliveries: int, channel: str) -> dict[str, float]:
    """A measurement in a fresh interpreter, with `tree`'s code (its own copy of this script)."""
    command = [sys.executable, str(tree / "bench" / "handler_cpu.py"), "--child", "--deliveries", str(deliveries)]
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [*command, "--channel", channel], cwd=tree, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"measurement in {tree} failed:\n{done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(against: str, deliveries: int, channels: list[str], rounds: int) -> None:
    """REF and this tree in alternating rounds, medians side by side."""
    base = Path(tempfile.mkdtemp(prefix="handler-cpu-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(base), against], cwd=REPO_ROOT, check=True)  # noqa: S603,S607 - git, our revision
    try:
        shutil.copy(Path(__file__), base / "bench" / "handler_cpu.py")  # the same measurement on both trees
        for channel in channels:
            runs: dict[str, list[dict[str, float]]] = {against: [], "this tree": []}
            for _ in range(rounds):
                runs[against].append(_child(base, deliveries, channel))
                runs["this tree"].append(_child(REPO_ROOT, deliveries, channel))
            medians = {name: statistics.median(run["cpu_ms"] for run in found) for name, found in runs.items()}
            for name, found in runs.items():
                cpu = ", ".join(f"{run['cpu_ms']:.2f}" for run in found)
                wall = statistics.median(run["wall_ms"] for run in found)
                print(
                    f"{channel:5} {name:>12}: handler CPU {medians[name]:5.2f} ms per delivered reminder "
                    f"(median of {cpu}; wall {wall:.1f} ms)"
                )
            ratio = medians["this tree"] / medians[against]
            print(f"{channel:5} ratio this tree / {against}: {ratio:.2f} (target <= 8 ms per delivered reminder)")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO_ROOT, check=False)  # noqa: S603,S607 - git, our temporary tree


def fold(profile: Path) -> None:
    """py-spy's raw samples of the measured deliveries, by handler step, with each step's hottest frames."""
    steps: Counter[str] = Counter()
    frames: dict[str, Counter[str]] = {name: Counter() for name, _ in STEPS}
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stack_frames = stack.split(";")
        if not any(frame.startswith("measured (") for frame in stack_frames):
            continue  # seeding, imports, warm-up
        step = next(
            (name for frame in reversed(stack_frames) for name, pattern in STEPS if re.search(pattern, frame)),
            STEPS[-1][0],
        )
        steps[step] += int(count)
        frames[step][re.sub(r":\d+\)", ")", stack_frames[-1])] += int(count)
    total = sum(steps.values()) or 1
    print(f"{total} samples of the measured deliveries, by handler step (innermost step named in the stack):")
    for step, samples in steps.most_common():
        print(f"  {100 * samples / total:5.1f}%  {step}")
        for frame, inner in frames[step].most_common(4):
            print(f"            {100 * inner / total:4.1f}%  {frame}")


def worker(config: Any, deliveries: int, channel: str) -> None:
    """The stack's task-handler process: its CPU (from /proc) per delivered reminder, posted over HTTP."""
    import requests

    from shared.platform import clients

    pid = json.loads((Path(config.state_dir) / "pids" / "task-handler.pid").read_text())["pid"]
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds() -> float:
        """utime + stime of the function process and its children (functions-framework serves from gunicorn)."""
        stats = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                stats[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        family, grew = {pid}, True
        while grew:
            more = {child for child, (parent, _) in stats.items() if parent in family} - family
            family, grew = family | more, bool(more)
        return sum(stats[member][1] for member in family if member in stats) / ticks

    url = config.function_env()["TASK_HANDLER_URL"]
    # Through the front, as Cloud Tasks reaches it: the figure includes the handler's own token check.
    auth = caller_auth(config)
    bodies = seed(clients.firestore(), WARM_UP + deliveries, channel)
    session = requests.Session()

    def post(index: int, body: dict[str, Any]) -> None:
        headers = {**auth, **headers_for(index, channel)}
        answer = session.post(url, data=json.dumps(body), headers=headers, timeout=30)
        check(index, answer.status_code, answer.json() if answer.ok else answer.text)

    for index, body in enumerate(bodies[:WARM_UP]):
        post(index, body)
    started, cpu = time.perf_counter(), cpu_seconds()
    for index, body in enumerate(bodies[WARM_UP:]):
        post(index, body)
    spent, wall = cpu_seconds() - cpu, time.perf_counter() - started
    per = spent / deliveries * 1000
    print(
        f"{channel}: the task-handler worker (pid {pid}) spent {per:.2f} ms CPU per delivered reminder over "
        f"{deliveries} (wall {wall / deliveries * 1000:.1f} ms each): "
        f"one worker's CPU allows {1000 / per:.0f} requests/s"
    )


def store_steps(rounds: int, count: int = 150) -> None:
    """The handler's Firestore steps alone, the library's way beside the direct one, alternating in one process."""
    from datetime import datetime, timezone

    from google.cloud import firestore

    from shared.platform import clients, firestore_wire
    from shared.platform.store import FirestoreStore

    class Before(firestore_wire.client_class()):  # type: ignore[misc]
        """The client as it was before the direct read: the library's, with the direct write encoding."""

        read_documents = None

    project = os.environ["GOOGLE_CLOUD_PROJECT"]
    stores = {
        "library": FirestoreStore(firestore.Client()),
        "before": FirestoreStore(Before(project=project)),
        "direct": FirestoreStore(clients.firestore()),
    }
    run = uuid.uuid4().hex[:6]
    doc = {
        "state": "scheduled",
        "generation": 1,
        "kind": "appointment_reminder",
        "channel": "sms",
        "send_at": datetime.now(timezone.utc),
        "clinic_id": "c",
        "appointment_id": "a",
        "patient_id": "p",
    }
    paths = [f"bench_store_{run}/d{index}" for index in range(3)]  # ledger, appointment, patient
    for path in paths:
        stores["direct"].put(path, doc)

    def per_call(action: Any) -> float:
        started = time.process_time()
        for index in range(count):
            action(index)
        return (time.process_time() - started) / count * 1000

    figures: dict[str, dict[str, list[float]]] = {name: {"read": [], "update": []} for name in stores}
    for _ in range(rounds):
        for name, store in stores.items():
            figures[name]["read"].append(per_call(lambda _, store=store: store.get_all(paths)))
            version = [store.get(paths[0]).version]  # type: ignore[union-attr]

            def update(index: int, store: Any = store, version: list[Any] = version) -> None:
                version[0] = store.update(paths[0], {"state": "sending", "generation": index}, version=version[0])

            figures[name]["update"].append(per_call(update))
    print("ms CPU per call (median of rounds): the plain library, this client before the direct read, now")
    for step, label in (("read", "batched read of 3 docs"), ("update", "versioned update (claim, sent)")):
        library, before, direct = (statistics.median(figures[name][step]) for name in stores)
        print(f"  {label:31}: {library:.2f}  {before:.2f}  {direct:.2f}  (now / before {direct / before:.2f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=150)
    parser.add_argument("--channel", choices=("sms", "email", "both"), default="both")
    parser.add_argument("--against", help="a git revision to measure beside this tree, in alternating rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="run once under py-spy and fold the samples")
    parser.add_argument("--worker", action="store_true", help="measure the stack's task-handler process instead")
    parser.add_argument("--store", action="store_true", help="the Firestore steps alone: library beside direct")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    config = stack_config.load()
    if not all(is_listening(config.host, port) for port in (config.firestore_port, config.sandbox_port)):
        print("the local stack is not running: start it with python -m local.stack up", file=sys.stderr)
        return 2
    os.environ.update(config.function_env())
    channels = ["sms", "email"] if args.channel == "both" else [args.channel]
    if args.child:
        print(json.dumps(measure(args.deliveries, channels[0])))
    elif args.profile:
        out = Path(tempfile.gettempdir()) / "handler-cpu-profile.txt"
        spy = Path(sys.executable).with_name("py-spy")  # pip install py-spy (not a requirement)
        command = [sys.executable, __file__, "--child", "--deliveries", str(args.deliveries), "--channel", channels[0]]
        subprocess.run(  # noqa: S603 - our own interpreter and script
            [str(spy), "record", "--gil", "-r", "500", "-f", "raw", "-o", str(out), "--", *command], check=True
        )
        fold(out)
    elif args.store:
        store_steps(args.rounds)
    elif args.worker:
        for channel in channels:
            worker(config, args.deliveries, channel)
    elif args.against:
        compare(args.against, args.deliveries, channels, args.rounds)
    else:
        for channel in channels:
            result = measure(args.deliveries, channel)
            print(
                f"{channel:5}: {args.deliveries} reminders through handle_task: handler CPU {result['cpu_ms']:.2f} ms "
                f"per delivered reminder (target <= 8 ms), wall {result['wall_ms']:.1f} ms each"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
