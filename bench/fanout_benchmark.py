"""Fan-out benchmark on the running local stack (a script, not a test): N appointments across M clinics.

    python -m local.stack up           # with your MEDSPA_PORT_BASE / MEDSPA_STATE_DIR
    python bench/fanout_benchmark.py [--appointments 10000] [--clinics 50] [--skip-sequential]

Variants, timed in one run on the same stack, each writing the same ledger and the same tasks:
- floor       what no fan-out can do without on this stack: the reads the plan needs (the clinics, each
              clinic's windows of appointments, its patients), the ledger docs as creates in commits of
              500, and the same tasks as raw `create_task` calls with the fan-out's concurrency; the
              ledger docs and Task dicts are computed before the clock starts;
- fanout      the reminders tick as the cloud runs it, in process: the coordinator, then each unit it
              enqueued (shared.reminders.fanout), one after another;
- replay      the tick again at another instant (an operator's replay): every unit runs again, finds every
              message already there and adds nothing;
- sequential  the naive loop, made fair: the same reads and plan, then per message one ledger create and
              one create_task, one after the other.

The "CPU ms" column is this process's CPU (time.process_time) over the variant: the emulators run in
other processes, so it is the client side's own work; per planned message = per ledger doc written.

Isolation: each variant runs in its own project (`medspa-bench-<run>-<variant>`): its own Firestore
database (seeded with the same data, untimed) and its own Cloud Tasks queues, created for the run and
paused at once, so the emulator dispatches nothing. The tick targets each clinic's day three days ahead
(every message in the future), and the day before it is recorded as planned (the steady state, no
catch-up). Afterwards the script checks that every variant's queues hold exactly the same task names,
that each ledger holds the same documents, then deletes the queues and wipes the bench databases.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench import fanout_data  # noqa: E402
from bench.baselines import Expected, expected_plan, sequential  # noqa: E402
from local import config as stack_config  # noqa: E402
from local.standins import is_listening  # noqa: E402

BATCH = 500


def listing_client(address: str) -> Any:
    """A Cloud Tasks client for counting: the emulator answers ListTasks with every task in one message
    (no pages), over gRPC's default 4 MiB limit past about 7,000 tasks."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def bench_docs(clinics: int, appointments: int, day: date) -> list[fanout_data.Doc]:
    """fanout_data's world for `day` (each clinic's appointments on its local `day`), the day before planned."""
    from shared.contract.clinic_time import local_day_range

    docs: list[fanout_data.Doc] = []
    for index, count in enumerate(fanout_data.sizes(clinics, appointments)):
        docs += fanout_data.clinic_docs(index)
        zone = ZoneInfo(fanout_data.ZONES[index % len(fanout_data.ZONES)])
        # appointment_docs plans for the clinic's local tomorrow at `now`: stand on the eve of `day`
        eve = local_day_range(day, zone)[0] - timedelta(hours=12)
        docs += fanout_data.appointment_docs(index, count, eve)
        cid = fanout_data.clinic_id(index)
        before = (day - timedelta(days=1)).isoformat()
        docs.append(("fanout_runs", f"{cid}_{before}", {"clinic_id": cid, "date": before, "created": 0}))
    return docs


def seed(db: Any, docs: list[fanout_data.Doc]) -> None:
    for start in range(0, len(docs), BATCH):
        batch = db.batch()
        for collection, doc_id, fields in docs[start : start + BATCH]:
            batch.set(db.collection(collection).document(doc_id), fields)
        batch.commit()


def floor(db: Any, client: Any, expected: Expected, concurrency: int) -> int:
    """The reads, the minimum ledger writes and the raw creates, clinic by clinic."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    created = 0
    clinics = [snap.to_dict() for snap in db.collection("clinics").stream()]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for clinic_id in sorted(expected.ledger):
            for first, end in expected.reads[clinic_id]:
                query = (
                    db.collection("appointments")
                    .where(filter=FieldFilter("clinic_id", "==", clinic_id))
                    .where(filter=FieldFilter("start", ">=", first))
                    .where(filter=FieldFilter("start", "<", end))
                )
                [snap.to_dict() for snap in query.stream()]
            refs = [db.collection("patients").document(pid) for pid in expected.patients[clinic_id]]
            [snap.to_dict() for snap in db.get_all(refs)]
            docs = expected.ledger[clinic_id]
            for start in range(0, len(docs), BATCH):
                batch = db.batch()
                for key, doc in docs[start : start + BATCH]:
                    batch.create(db.collection("notifications").document(key), doc)
                batch.commit()
            tasks = expected.tasks[clinic_id]
            created += sum(1 for _ in pool.map(lambda item: client.create_task(parent=item[0], task=item[1]), tasks))
    del clinics
    return created


class Recorded:
    """The units' TaskQueue: creates each task in the (paused) emulator queue and keeps its body to run it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.bodies: list[dict[str, Any]] = []  # each created unit's TaskSpec.payload

    def create(self, spec: Any) -> bool:
        created = self.real.create(spec)
        if created:
            self.bodies.append(spec.payload)
        return created


def run_fanout(
    store: Any, queue: Any, unit_queue: str, queues: Any, client: Any, settings: Any, day: date, now: datetime
) -> Any:
    """The tick as the cloud runs it, in this process: the coordinator, then every unit it (or a split)
    enqueued, one after another, each from its task body."""
    import json

    from shared.contract.events import TickRequest
    from shared.platform.clock import system_clock
    from shared.reminders.coordinator import coordinate_tick
    from shared.reminders.fanout import UNIT_BODIES, Fanout, UnitQueue, run_unit
    from shared.reminders.fanout_summary import FanoutSummary
    from shared.tasks.payload import decode, parse
    from shared.tasks.queue import CloudTasksQueue, Target

    units = Recorded(CloudTasksQueue(client, settings, target=Target("http://127.0.0.1:9/unit", "unit")))
    service = Fanout(store=store, tasks=queue, queues=queues, clock=system_clock, units=UnitQueue(units, unit_queue))
    total = FanoutSummary(trigger="tick")
    total.merge(coordinate_tick(TickRequest(date=day), service, now=now))
    total.clinics = 0  # counted by the units: each clinic-day once, when it completes (a split's last shard)
    done = 0
    while done < len(units.bodies):
        body = units.bodies[done]
        done += 1
        total.merge(run_unit(parse(decode(json.dumps(body).encode()), UNIT_BODIES), service))
    return total


@dataclass
class Row:
    name: str
    seconds: float
    cpu: float
    tasks: int
    ledger: int
    names: frozenset[str]
    paused: bool
    detail: str = ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--clinics", type=int, default=50)
    parser.add_argument("--skip-sequential", action="store_true", help="leave out the naive loop")
    parser.add_argument("--only", action="append", default=[], help="run only these variants (repeat)")
    args = parser.parse_args(argv)

    config = stack_config.load()
    if not all(is_listening(config.host, port) for port in (config.firestore_port, config.tasks_port)):
        print(
            "the local stack's Firestore and Cloud Tasks emulators are not running: start the stack with "
            "`make up` (or python -m local.stack up)",
            file=sys.stderr,
        )
        return 2
    os.environ.update(config.function_env())

    import requests
    from google.cloud import firestore, tasks_v2

    from shared.platform import clients
    from shared.platform.clock import system_clock
    from shared.platform.settings import Settings
    from shared.platform.store import FirestoreStore
    from shared.reminders.scheduler import Queues
    from shared.tasks.queue import DEFAULT_CONCURRENCY, CloudTasksQueue

    tasks_client = clients.tasks()
    lister = listing_client(f"{config.host}:{config.tasks_port}")
    now = system_clock.now()
    day = now.date() + timedelta(days=3)
    run = uuid.uuid4().hex[:6]
    docs = bench_docs(args.clinics, args.appointments, day)
    names = ["floor", "fanout", "replay"] + ([] if args.skip_sequential else ["sequential"])
    if args.only:
        names = [n for n in names if n in args.only or (n == "replay" and "fanout" in args.only)]
    print(
        f"{args.appointments} appointments across {args.clinics} clinics per variant; tick date {day}; run {run}; "
        f"variants {', '.join(names)}",
        flush=True,
    )

    rows: list[Row] = []
    project_of: dict[str, str] = {}
    for name in names:
        label = "fanout" if name == "replay" else name
        project = f"medspa-bench-{run}-{label}"
        project_of[name] = project
        settings = Settings.from_env(
            {
                **os.environ,
                "GOOGLE_CLOUD_PROJECT": project,
                "QUEUE_SMS": f"bench-{label}-sms",
                "QUEUE_EMAIL": f"bench-{label}-email",
                "QUEUE_FANOUT": f"bench-{label}-fanout",
            }
        )
        parent = f"projects/{project}/locations/{settings.tasks_location}"
        unit_queue = f"bench-{label}-fanout"
        queue_names = [settings.queue_sms, settings.queue_email, unit_queue]
        queues = [f"{parent}/queues/{q}" for q in queue_names]
        db = firestore.Client(project=project)
        store = FirestoreStore(db)
        queue = CloudTasksQueue(tasks_client, settings)
        reminder_queues = Queues(sms=settings.queue_sms, email=settings.queue_email)
        if name != "replay":
            for path in queues:
                tasks_client.create_queue(parent=parent, queue=tasks_v2.Queue(name=path))
                tasks_client.pause_queue(name=path)
            seed(db, docs)
        expected = expected_plan(docs, now, queue, reminder_queues, day=day) if name == "floor" else None
        print(f"  {name}: seeded; running", flush=True)
        quiet = io.StringIO()
        started, cpu = time.monotonic(), time.process_time()
        with contextlib.redirect_stdout(quiet):  # the services' JSON log lines
            if name == "floor":
                assert expected is not None
                created, detail = floor(db, tasks_client, expected, DEFAULT_CONCURRENCY), ""
            elif name in ("fanout", "replay"):
                at = now if name == "fanout" else now + timedelta(seconds=1)
                report = run_fanout(store, queue, unit_queue, reminder_queues, tasks_client, settings, day, at)
                created = report.created + report.recovered
                detail = f"{report.summary()}"
            else:
                created, detail = sequential(store, queue, reminder_queues, now, day=day), ""
        seconds, spent = time.monotonic() - started, time.process_time() - cpu
        listed = frozenset(
            t.name.rsplit("/", 1)[-1]
            for q in queues[:2]
            for t in lister.list_tasks(parent=q)  # reminder queues only
        )
        paused = all(tasks_client.get_queue(name=q).state.name == "PAUSED" for q in queues)
        ledger = db.collection("notifications").count().get()[0][0].value
        rows.append(Row(name, seconds, spent, created, ledger, listed, paused, detail))
        print(
            f"  {name:<11} {seconds:8.2f} s  cpu {spent:7.2f} s  tasks {created}  listed {len(listed)}  "
            f"ledger {ledger}  {detail[:300]}",
            flush=True,
        )
        if name in ("floor", "sequential", "replay") or "replay" not in names:
            for path in queues:
                tasks_client.delete_queue(name=path)
            requests.delete(
                f"http://{config.host}:{config.firestore_port}/emulator/v1/projects/{project}"
                "/databases/(default)/documents",
                timeout=60,
            )

    print()
    print(f"{args.appointments} appointments, {args.clinics} clinics, tick {day}; local stack {config.host}")
    by_name = {row.name: row for row in rows}
    base = by_name.get("floor")
    print(
        f"{'variant':<11} {'seconds':>8} {'x floor':>8} {'CPU s':>7} {'CPU ms/msg':>10} {'tasks':>7} "
        f"{'ledger':>7} {'tasks/s':>8}  check"
    )
    reference = by_name.get("fanout", base)
    ok_all = True
    for row in rows:
        ratio = f"{row.seconds / base.seconds:7.2f}x" if base else f"{'-':>8}"
        per_msg = row.cpu / row.ledger * 1000 if row.ledger else 0.0
        same = reference is None or row.names == reference.names
        ok = row.paused and same and (row.name == "replay" or len(row.names) == row.tasks)
        ok_all &= ok
        check = "ok" if ok else f"MISMATCH (listed {len(row.names)}, paused {row.paused}, same names {same})"
        print(
            f"{row.name:<11} {row.seconds:8.2f} {ratio} {row.cpu:7.2f} {per_msg:10.3f} {row.tasks:7d} "
            f"{row.ledger:7d} {row.tasks / row.seconds if row.seconds else 0:8.0f}  {check}"
        )
    if base and "fanout" in by_name:
        print(f"fan-out / floor: {by_name['fanout'].seconds / base.seconds:.2f}x (target <= 1.3x)")
    if "sequential" in by_name and "fanout" in by_name:
        print(f"sequential / fan-out: {by_name['sequential'].seconds / by_name['fanout'].seconds:.2f}x")
    print(
        "tasks = tasks created (replay: recovered + created, i.e. 0); check = the reminder queues hold exactly the "
        "fan-out's task names, stayed paused; CPU = this process (the emulators are other processes)"
    )
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
