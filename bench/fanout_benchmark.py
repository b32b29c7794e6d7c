"""Fan-out benchmark (a script, not a test): N appointments across M clinics on the running local stack.

    make up            # or: .venv/bin/python -m local.stack up (only its Firestore and Tasks emulators are used)
    .venv/bin/python bench/fanout_benchmark.py [--appointments 10000] [--clinics 50] [--latency-ms 25]

Four variants, timed in one run on the same stack:
- fanout            shared.fanout.run_tick: reads, ledger docs, tasks with bounded concurrency;
- sequential        the naive loop: the same reads and plan, then one create_task after another, no ledger;
- both again with --latency-ms added to every Cloud Tasks call, modelling production's round trip (the
  emulator answers in about a millisecond and serves one create at a time, so only latency shows what
  concurrency buys).

Isolation: each variant runs in its own project (`medspa-bench-<run>-<variant>`): its own Firestore
database (seeded with the same data, untimed) and its own Cloud Tasks queues `bench-<variant>-sms` /
`-email`, created for the run and paused at once, so the emulator dispatches nothing. The tick targets
a day three days ahead, so every message is in the future, and nothing would be due anyway. Afterwards
the script checks each variant's queues hold exactly the tasks it reports (none dispatched, none
duplicated), then deletes the queues and wipes the bench databases.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local import config as stack_config  # noqa: E402
from local.standins import is_listening  # noqa: E402

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
)
PATIENTS_PER_CLINIC = 40
BATCH = 500


class RpcLatency:
    """A Cloud Tasks client that waits before every RPC, like production's network round trip."""

    def __init__(self, client: Any, seconds: float) -> None:
        self.client, self.seconds = client, seconds

    def queue_path(self, *parts: str) -> str:  # local string formatting, not an RPC
        return self.client.queue_path(*parts)

    def create_task(self, **request: Any) -> Any:
        time.sleep(self.seconds)
        return self.client.create_task(**request)


def listing_client(address: str) -> Any:
    """A Cloud Tasks client for counting: the emulator answers ListTasks with every task in one message
    (no pages), over gRPC's default 4 MiB limit past about 7,000 tasks."""
    import grpc
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)])
    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))


def seed(db: Any, clinics: int, appointments: int, day: date) -> None:
    """Clinics in six zones, 40 patients each (a tenth prefer email, one in fifty opted out of everything),
    appointments spread over each clinic's local `day` from 08:00, a tenth needing prep."""
    from shared.contract.clinic_time import local_day_range

    docs: list[tuple[str, str, dict[str, Any]]] = []
    per_clinic = -(-appointments // clinics)
    made = 0
    for c in range(clinics):
        clinic_id, zone = f"clinic-{c:03d}", ZONES[c % len(ZONES)]
        docs.append(
            (
                "clinics",
                clinic_id,
                {
                    "name": f"Bench Clinic {c}",
                    "timezone": zone,
                    "phone": "+12125550100",
                    "sms_from": "+12125550199",
                    "email_from": "reminders@bench.example.com",
                    "reminder_offsets_hours": [24, 2],
                    "quiet_hours": {"start": "21:00", "end": "08:00"},
                },
            )
        )
        for p in range(PATIENTS_PER_CLINIC):
            opted_out = p % 50 == 7
            docs.append(
                (
                    "patients",
                    f"{clinic_id}-p{p:02d}",
                    {
                        "clinic_id": clinic_id,
                        "first_name": "Bench",
                        "last_name": f"Patient {p}",
                        "phone": f"+1212555{p:04d}",
                        "email": f"p{p}@bench.example.com",
                        "preferred_channel": "email" if p % 10 == 3 else "sms",
                        "sms_opt_out": opted_out,
                        "email_opt_out": opted_out,
                    },
                )
            )
        day_start = local_day_range(day, ZoneInfo(zone))[0]
        for i in range(min(per_clinic, appointments - made)):
            start = day_start + timedelta(hours=8) + timedelta(minutes=15 * (i % 48))
            docs.append(
                (
                    "appointments",
                    f"{clinic_id}-a{i:04d}",
                    {
                        "clinic_id": clinic_id,
                        "patient_id": f"{clinic_id}-p{i % PATIENTS_PER_CLINIC:02d}",
                        "provider_id": f"prov-{i % 4}",
                        "provider_name": "Bench Provider",
                        "service_name": "Botox",
                        "requires_prep": i % 10 == 0,
                        "prep_instructions": "",
                        "start": start,
                        "end": start + timedelta(minutes=30),
                        "status": "confirmed" if i % 3 else "booked",
                        "price_cents": 42000,
                    },
                )
            )
            made += 1
    for start in range(0, len(docs), BATCH):
        batch = db.batch()
        for collection, doc_id, fields in docs[start : start + BATCH]:
            batch.set(db.collection(collection).document(doc_id), fields)
        batch.commit()


def sequential(db: Any, queue: Any, settings: Any, day: date, now: datetime) -> int:
    """The naive loop: the same reads and plan as the fan-out, then one task created after the other."""
    from google.cloud.firestore_v1.base_query import FieldFilter

    from shared.contract.models import Appointment, Clinic, Patient
    from shared.reminders.plan import PlannedMessage, channel_for, plan_reminders, reminder_window
    from shared.tasks.queue import TaskSpec

    created = 0
    for clinic_snap in list(db.collection("clinics").stream()):  # not held open for minutes
        clinic = Clinic.from_doc(clinic_snap.id, clinic_snap.to_dict())
        first, end, horizon = reminder_window(clinic, day)
        query = (
            db.collection("appointments")
            .where(filter=FieldFilter("clinic_id", "==", clinic.id))
            .where(filter=FieldFilter("start", ">=", first))
            .where(filter=FieldFilter("start", "<", end))
        )
        appointments = [Appointment.from_doc(s.id, s.to_dict()) for s in query.stream()]
        refs = [db.collection("patients").document(pid) for pid in sorted({a.patient_id for a in appointments})]
        patients = {
            s.id: Patient.from_doc(s.id, s.to_dict())
            for i in range(0, len(refs), 300)
            for s in db.get_all(refs[i : i + 300])
        }
        for appointment in appointments:
            for message in plan_reminders(appointment, clinic, now=now, horizon=horizon):
                if not isinstance(message, PlannedMessage):
                    continue
                channel, _ = channel_for(patients[appointment.patient_id], clinic)
                if channel is None:
                    continue
                queue.create(
                    TaskSpec(
                        queue=settings.queue_sms if channel == "sms" else settings.queue_email,
                        business_key=message.key,
                        payload=message.task.to_json(),
                        schedule_time=message.task.send_at,
                    )
                )
                created += 1
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=10_000)
    parser.add_argument("--clinics", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=25.0)
    parser.add_argument(
        "--skip-slow-baseline",
        action="store_true",
        help="leave out the sequential run with latency (about N x 2.1 x latency seconds)",
    )
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
    from google.cloud import firestore

    from shared.contract.events import TickRequest
    from shared.platform import clients
    from shared.platform.clock import system_clock
    from shared.platform.settings import Settings
    from shared.reminders.fanout import run_tick
    from shared.tasks.queue import CloudTasksQueue

    tasks_client = clients.tasks()
    lister = listing_client(f"{config.host}:{config.tasks_port}")
    now = system_clock.now()
    day = now.date() + timedelta(days=3)
    run = uuid.uuid4().hex[:6]
    latency = args.latency_ms / 1000
    variants: list[tuple[str, float]] = [("fanout", 0.0), ("sequential", 0.0), ("fanout", latency)]
    if not args.skip_slow_baseline:
        variants.append(("sequential", latency))
    print(
        f"seeding {args.appointments} appointments across {args.clinics} clinics per variant; tick date {day}; "
        f"run {run}",
        flush=True,
    )

    rows = []
    for kind, delay in variants:
        name = f"{kind}{f'+{args.latency_ms:g}ms' if delay else ''}"
        label = f"{kind}-{int(delay * 1000)}ms"
        project = f"medspa-bench-{run}-{label}"
        settings = Settings.from_env(
            {
                **os.environ,
                "GOOGLE_CLOUD_PROJECT": project,
                "QUEUE_SMS": f"bench-{label}-sms",
                "QUEUE_EMAIL": f"bench-{label}-email",
            }
        )
        parent = f"projects/{project}/locations/{settings.tasks_location}"
        queues = [f"{parent}/queues/{settings.queue_sms}", f"{parent}/queues/{settings.queue_email}"]
        for queue in queues:
            tasks_client.create_queue(parent=parent, queue={"name": queue})
            tasks_client.pause_queue(name=queue)
        db = firestore.Client(project=project)
        seed(db, args.clinics, args.appointments, day)
        client = RpcLatency(tasks_client, delay) if delay else tasks_client
        queue = CloudTasksQueue(client, settings, system_clock)

        started = time.monotonic()
        if kind == "fanout":
            report = run_tick(TickRequest(date=day), db=db, tasks=queue, settings=settings, clock=system_clock)
            created, detail = report.created, report.summary()
        else:
            created, detail = sequential(db, queue, settings, day, system_clock.now()), {}
        seconds = time.monotonic() - started

        listed = sum(len(list(lister.list_tasks(parent=q))) for q in queues)
        paused = all(tasks_client.get_queue(name=q).state.name == "PAUSED" for q in queues)
        ledger = db.collection("notifications").count().get()[0][0].value if kind == "fanout" else None
        rows.append((name, seconds, created, listed, paused, ledger))
        print(
            f"{name:<22} {seconds:8.2f} s  tasks created {created}  listed in queues {listed}  "
            f"queues paused {paused}  ledger docs {ledger if ledger is not None else '-'}  {detail}",
            flush=True,
        )
        if kind == "fanout":  # the same tick redelivered: everything is already there, nothing is added
            started = time.monotonic()
            again = run_tick(TickRequest(date=day), db=db, tasks=queue, settings=settings, clock=system_clock)
            rerun = time.monotonic() - started
            relisted = sum(len(list(lister.list_tasks(parent=q))) for q in queues)
            print(f"{name + ' re-run':<22} {rerun:8.2f} s  {again.summary()}  listed in queues {relisted}", flush=True)
            rerun_ok = again.created == again.recovered == again.failed == 0 and relisted == listed
            rows.append((f"{name} re-run", rerun, again.already_present, listed if rerun_ok else -1, paused, ledger))
        for queue in queues:
            tasks_client.delete_queue(name=queue)
        requests.delete(
            f"http://{config.host}:{config.firestore_port}/emulator/v1/projects/{project}"
            "/databases/(default)/documents",
            timeout=30,
        )

    print()
    print(f"{args.appointments} appointments, {args.clinics} clinics, tick {day}; local stack {config.host}")
    print(f"{'variant':<22} {'seconds':>8} {'tasks':>7} {'tasks/s':>8} {'vs fanout':>10}  check")
    by_name = {row[0]: row for row in rows}
    for name, seconds, created, listed, paused, _ledger in rows:
        twin = by_name.get(name.replace("sequential", "fanout"))
        ratio = f"{seconds / twin[1]:9.1f}x" if twin and "re-run" not in name else f"{'-':>10}"
        ok = "ok" if listed == created and paused else f"MISMATCH listed {listed} paused {paused}"
        print(f"{name:<22} {seconds:8.2f} {created:7d} {created / seconds:8.0f} {ratio}  {ok}")
    print(
        "tasks = tasks created (re-run: messages found already scheduled); check = the queues hold exactly those "
        "tasks (none dispatched, none duplicated) and stayed paused"
    )
    return 0 if all(row[2] == row[3] and row[4] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
