"""make chaos: a Jepsen-style run of the reminders pipeline on a local stack of its own, then a verdict
read from the sandbox outbox and Firestore alone.

    python -m tests.chaos [--clinics 4] [--appointments 60] [--seed 1] [--port-base N] [--keep-stack]

Its stack's ports: --port-base, else MEDSPA_CHAOS_PORT_BASE, else a free block inside the hundred ports of
your own stack's MEDSPA_PORT_BASE (tests/spare_ports.py), so it collides with no other stack on the
machine; its state: --state-dir, else chaos-stack/ under MEDSPA_STATE_DIR (.local by default).

What it does to the system (every operation is logged as a JSON line in <state>/chaos/operations.jsonl):
- seeds several clinics (zones around the world) and hundreds of appointments over the next day;
- the provider sandbox fails sends at random: ~30 % 5xx, ~10 % 429, ~5 % timeouts (half of them "accepted
  but the answer lost"), ~2 % permanent errors, on SMS and email alike;
- the Cloud Tasks wrapper delivers every dispatch twice, at once (at-least-once delivery);
- the reminders tick is published three times at once;
- the fan-out function is killed (SIGKILL) at a random point and restarted; the task handler is killed
  mid-dispatch several times and restarted.
Once no task is left, a message whose every attempt was spent while the handler was down (connection
refused counts as an attempt, as in Cloud Tasks) is still scheduled or sending with nothing to finish it:
the retry-sweep's stuck scan records it in failed_tasks an hour later in production; the run does that
scan at once (the same code, `record_stuck` with no wait) and counts what it recorded.
What it checks, once everything settled: every intended message (one per appointment and reminder
offset) was delivered exactly once or recorded exactly once in failed_tasks; 0 duplicates at the sandbox
(two accepted messages for one ledger key); 0 lost; every ledger doc in a terminal state that matches the
outbox; and no seeded name, phone, email or treatment in any log line, ledger doc, failed_tasks doc or
task body it saw. It prints the figures and exits 1 on any loss, duplicate, mismatch or PHI hit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from local import config as stack_config
from local import stack as local_stack
from local.config import StackConfig
from local.processes import ProcessDir, wait_until
from ops import outbox as provider_outbox
from shared.platform import env as envvars
from shared.platform.errors import ConfigError
from tests.spare_ports import spare_port_base

ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Honolulu",
    "Asia/Kathmandu",
)
FIRST_NAMES = ("Quenby", "Ysolde", "Marisol", "Thaddeus", "Ottoline", "Peregrine", "Zuleika", "Evander")
LAST_NAMES = ("Vantongeren", "Oyelaran", "Przybylski", "Castellanos", "Nakashima", "Achterberg")
TREATMENTS = ("Hyaluronic lip augmentation", "Microneedling with PRP", "Fractional CO2 resurfacing")
OFFSETS = (24, 2)
TERMINAL = ("sent", "delivered", "skipped", "failed")
SETTLE_SECONDS = 6.0  # nothing moved for this long: the run is over


def fault_rules(seed: int) -> list[dict[str, Any]]:
    """The fault mix, as sandbox rules. A rule fires with its own rate among the requests the rules
    before it let through, so each rule's rate is its overall share divided by what is left."""
    mix: list[tuple[str, dict[str, Any], float]] = [  # (kind, its fields, overall share)
        ("http", {"status": 503}, 0.20),
        ("http", {"status": 500}, 0.10),
        ("throttle", {}, 0.10),
        ("timeout", {"accept": False}, 0.025),
        ("timeout", {"accept": True}, 0.025),
        ("permanent", {}, 0.02),
    ]
    rules, left = [], 1.0
    for channel in ("sms", "email"):
        left = 1.0
        for kind, extra, share in mix:
            rate = round(share / left, 4)
            left -= share
            if kind == "throttle":
                rule = {"kind": "twilio_code", "code": 20429} if channel == "sms" else {"kind": "http", "status": 429}
            elif kind == "permanent":
                rule = {"kind": "twilio_code", "code": 21602} if channel == "sms" else {"kind": "http", "status": 403}
            elif kind == "timeout":
                rule = {"kind": "timeout", "seconds": 2.5, **extra}
            else:
                rule = {"kind": "http", **extra}
            rules.append({"channel": channel, "rate": rate, **rule})
    return rules


@dataclass
class World:
    clinics: dict[str, dict[str, Any]] = field(default_factory=dict)
    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    appointments: dict[str, dict[str, Any]] = field(default_factory=dict)

    def phi(self) -> set[str]:
        """Every value that must never leave Firestore's contract documents."""
        values = set(TREATMENTS)
        for patient in self.patients.values():
            values |= {patient["first_name"], patient["last_name"]}
            values |= {v for v in (patient.get("phone"), patient.get("email")) if v}
        return values


def build_world(rng: random.Random, clinics: int, per_clinic: int, now: datetime) -> World:
    world = World()
    run = uuid.uuid4().hex[:6]
    for c in range(clinics):
        clinic_id = f"chaos-{run}-c{c}"
        world.clinics[clinic_id] = {
            "name": f"Chaos Clinic {c}",
            "timezone": ZONES[c % len(ZONES)],
            "phone": "+12125550100",
            "sms_from": f"+1212555{1000 + c:04d}",
            "email_from": f"clinic{c}@chaos.example.com",
            "locale": "en",
            "reminder_offsets_hours": list(OFFSETS),
        }
        for a in range(per_clinic):
            patient_id = f"{clinic_id}-p{a}"
            role = rng.random()
            world.patients[patient_id] = {
                "clinic_id": clinic_id,
                "first_name": rng.choice(FIRST_NAMES) + f"{a}",
                "last_name": rng.choice(LAST_NAMES),
                "phone": f"+1917{rng.randint(2000000, 9999999)}",
                "email": f"{patient_id}@patients.example.com",
                "preferred_channel": "email" if role < 0.35 else "sms",
                "sms_opt_out": 0.35 <= role < 0.40,
                "email_opt_out": 0.40 <= role < 0.43,
            }
            if 0.43 <= role < 0.45:  # opted out of everything: skipped, never sent
                world.patients[patient_id].update(sms_opt_out=True, email_opt_out=True)
            # Starts 3 to 26 hours ahead: the 24 h reminder is overdue (sent at once while useful), the 2 h one ahead.
            start = (now + timedelta(minutes=rng.randint(180, 26 * 60))).replace(second=0, microsecond=0)
            world.appointments[f"{clinic_id}-a{a}"] = {
                "clinic_id": clinic_id,
                "patient_id": patient_id,
                "provider_id": "prov-1",
                "provider_name": "Dr. Chaos",
                "service_name": rng.choice(TREATMENTS),
                "requires_prep": False,
                "prep_instructions": "",
                "start": start,
                "end": start + timedelta(hours=1),
                "status": rng.choice(("booked", "confirmed")),
                "price_cents": 10000,
                "created_at": now - timedelta(days=3),
                "updated_at": now - timedelta(days=1),
            }
    return world


class Chaos:
    def __init__(self, config: StackConfig, args: argparse.Namespace) -> None:
        self.config, self.args = config, args
        self.rng = random.Random(args.seed)
        self.log_path = config.state_dir / "chaos" / "operations.jsonl"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")
        self.task_bodies: list[str] = []
        self.lock = threading.Lock()
        self.stuck_recorded: int | None = None  # what the stuck scan recorded, once it ran

    def op(self, operation: str, **fields: Any) -> None:
        entry = {"at": datetime.now(timezone.utc).isoformat(), "op": operation, **fields}
        with self.lock, open(self.log_path, "a") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    # ------------------------------------------------------------------------------------ the run

    def run(self) -> int:
        from shared.platform import clients

        config = self.config
        os.environ.update(config.function_env())
        clients.reset()
        db = clients.firestore()
        requests.delete(
            f"http://{config.host}:{config.firestore_port}/emulator/v1/projects/{config.project}"
            "/databases/(default)/documents",
            timeout=30,
        )
        requests.delete(f"{config.sandbox_url}/_sandbox/messages", timeout=10)
        requests.delete(f"{config.sandbox_url}/_sandbox/faults?seed={self.args.seed}", timeout=10)
        now = datetime.now(timezone.utc)
        world = build_world(self.rng, self.args.clinics, self.args.appointments, now)
        batch, count = db.batch(), 0
        for collection, docs in (
            ("clinics", world.clinics),
            ("patients", world.patients),
            ("appointments", world.appointments),
        ):
            for doc_id, data in docs.items():
                batch.set(db.collection(collection).document(doc_id), data)
                count += 1
                if count % 400 == 0:
                    batch.commit()
                    batch = db.batch()
        batch.commit()
        self.op(
            "seeded", clinics=len(world.clinics), patients=len(world.patients), appointments=len(world.appointments)
        )
        for rule in fault_rules(self.args.seed):
            response = requests.post(f"{config.sandbox_url}/_sandbox/faults", json=rule, timeout=10)
            response.raise_for_status()
            self.op("fault", **rule)

        topic = clients.publisher().topic_path(config.project, "reminders-tick")
        futures = [clients.publisher().publish(topic, b"{}") for _ in range(3)]
        self.op("published", topic="reminders-tick", message_ids=[f.result(timeout=30) for f in futures])
        started = time.monotonic()
        killer = threading.Thread(target=self.kill_loop, args=(started,), daemon=True)
        killer.start()
        settled = self.wait_settled(db, started)
        killer.join(timeout=30)
        verdict = self.verify(db, world)
        verdict["settled"] = settled
        verdict["recorded_by_stuck_scan"] = self.stuck_recorded or 0
        verdict["seconds"] = round(time.monotonic() - started, 1)
        self.op("verdict", **verdict)
        self.print_verdict(verdict)
        failed = verdict["lost"] or verdict["duplicates"] or verdict["mismatches"] or verdict["phi_hits"] or not settled
        return 1 if failed else 0

    def kill(self, name: str) -> None:
        running = ProcessDir(self.config.state_dir).running(name)
        if running is None:
            return
        try:
            os.killpg(running.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.op("killed", component=name, pid=running.pid)
        wait_until(lambda: ProcessDir(self.config.state_dir).running(name) is None, 10)
        local_stack.up(self.config)
        self.op("restarted", component=name)

    def kill_loop(self, started: float) -> None:
        """The fan-out once, early; the handler every few seconds while messages are being dispatched."""
        time.sleep(self.rng.uniform(0.3, 2.0))
        self.kill("reminder-fanout")
        for _ in range(self.args.handler_kills):
            self.sample_task_bodies()
            time.sleep(self.rng.uniform(2.0, 6.0))
            self.kill("task-handler")

    def sample_task_bodies(self) -> None:
        """What the queues hold right now: the PHI scan reads every body it sees."""
        from shared.platform import clients

        try:
            for queue in ("reminders-sms", "reminders-email"):
                for task in clients.tasks().list_tasks(parent=self.config.queue_path(queue)):
                    self.task_bodies.append(task.http_request.body.decode("utf-8", "replace"))
        except Exception as exc:  # noqa: BLE001 - a sample missed is a sample missed; the run goes on
            self.op("sample_failed", error=type(exc).__name__)

    def queued(self) -> int:
        """Tasks the reminder queues still hold (waiting for their time, or for a retry)."""
        from shared.platform import clients

        try:
            return sum(
                len(list(clients.tasks().list_tasks(parent=self.config.queue_path(queue))))
                for queue in ("reminders-sms", "reminders-email")
            )
        except Exception:  # noqa: BLE001 - the emulator is being restarted: count as busy
            return 1

    def wait_settled(self, db: Any, started: float) -> bool:
        """Until no task is left and nothing moved for SETTLE_SECONDS (or the timeout)."""
        previous: Counter[str] = Counter()
        stable_since = time.monotonic()
        deadline = started + self.args.timeout
        while time.monotonic() < deadline:
            states = Counter(str((s.to_dict() or {}).get("state")) for s in db.collection("notifications").stream())
            outbox = len(requests.get(f"{self.config.sandbox_url}/_sandbox/messages", timeout=10).json())
            queued = self.queued()
            snapshot = states + Counter({"outbox": outbox, "queued": queued})
            if snapshot != previous:
                previous, stable_since = snapshot, time.monotonic()
                self.op("progress", **{str(k): v for k, v in snapshot.items()})
            unfinished = states["scheduled"] + states["sending"]
            if states and not queued and time.monotonic() - stable_since > SETTLE_SECONDS:
                if not unfinished or self.stuck_recorded is not None:
                    return True
                self.stuck_recorded = self.scan_stuck()  # nothing left to finish them: as the sweep would
                stable_since = time.monotonic()
            time.sleep(1.0)
        return False

    def scan_stuck(self) -> int:
        """The retry-sweep's stuck scan, as it runs once STUCK_AFTER has passed: what it recorded."""
        from shared.messaging.ledger import Ledger
        from shared.messaging.stuck import record_stuck
        from shared.platform import clients
        from shared.platform.clock import system_clock
        from shared.tasks.failed_tasks import FailedTasks
        from shared.wiring.task_handler import task_types

        store = clients.store()
        ledger, failures = Ledger(store, system_clock), FailedTasks(store, system_clock)
        outcome = record_stuck(ledger, failures, task_types(), system_clock, after=timedelta(0))
        self.op("stuck_scan", **outcome)
        return outcome.get("recorded", 0)

    # ---------------------------------------------------------------------------------- the verdict

    def verify(self, db: Any, world: World) -> dict[str, Any]:
        ledger = {s.id: s.to_dict() or {} for s in db.collection("notifications").stream()}
        failed_tasks = {s.id: s.to_dict() or {} for s in db.collection("failed_tasks").stream()}
        outbox = requests.get(f"{self.config.sandbox_url}/_sandbox/messages", timeout=10).json()
        sent_for: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in outbox:
            if message["direction"] != "outbound":
                continue
            key = provider_outbox.sent_for(message)[0]
            sent_for[key or "?"].append(message)
        by_appointment: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for key, doc in ledger.items():
            by_appointment[str(doc.get("appointment_id"))].append({**doc, "key": key})
        missing = [
            (a, o)
            for a in world.appointments
            for o in OFFSETS
            if not any(d.get("offset_hours") == o for d in by_appointment.get(a, []))
        ]
        intended = [k for k, d in ledger.items() if d.get("state") != "skipped"]
        delivered = [k for k in intended if ledger[k].get("state") in ("sent", "delivered")]
        # Recorded: nothing went out, or the record says it may have (an answer lost and never reconciled,
        # one message at the provider): an operator's retry reconciles before sending again.
        recorded = [
            k
            for k in intended
            if k in failed_tasks
            and (not sent_for.get(k) or (ledger[k].get("state") == "unconfirmed" and len(sent_for[k]) == 1))
        ]
        duplicates = {k: len(v) for k, v in sent_for.items() if len(v) > 1}
        mismatches = []
        for key in intended:
            doc, messages = ledger[key], sent_for.get(key, [])
            state = doc.get("state")
            if state in ("sent", "delivered"):
                if len(messages) != 1 or messages[0]["id"] != doc.get("provider_message_id"):
                    mismatches.append((key, state, len(messages)))
            elif state == "failed":
                if messages or key not in failed_tasks:
                    mismatches.append((key, state, len(messages)))
            elif key not in failed_tasks:  # not terminal and nothing recorded: lost below
                continue
        lost = sorted(
            {k for k in intended if k not in delivered and k not in recorded} | {f"{a}@{o}h" for a, o in missing}
        )
        stray = [k for k in sent_for if k not in ledger]
        phi_hits = self.scan_phi(world, ledger, failed_tasks)
        return {
            "appointments": len(world.appointments),
            "ledger_docs": len(ledger),
            "intended": len(intended),
            "delivered": len(delivered),
            "failed_tasks": len(recorded),
            "failed_tasks_docs": len(failed_tasks),
            "skipped": Counter(str(d.get("reason")) for d in ledger.values() if d.get("state") == "skipped"),
            "states": Counter(str(d.get("state")) for d in ledger.values()),
            "duplicates": len(duplicates),
            "duplicate_keys": list(duplicates)[:10],
            "lost": len(lost),
            "lost_keys": lost[:10],
            "mismatches": len(mismatches) + len(stray),
            "mismatch_examples": (mismatches + [(k, "not in ledger", 0) for k in stray])[:10],
            "outbox": len(outbox),
            "task_bodies_scanned": len(self.task_bodies),
            "phi_hits": len(phi_hits),
            "phi_examples": phi_hits[:5],
        }

    def scan_phi(self, world: World, ledger: dict[str, Any], failed_tasks: dict[str, Any]) -> list[str]:
        texts: list[tuple[str, str]] = []
        for path in sorted((self.config.state_dir / "logs").glob("*.log")):
            if path.name.startswith("sandbox"):
                continue  # the provider's own outbox log: what the patient receives is not PHI leaving us
            texts.append((path.name, path.read_text(errors="replace")))
        texts.append(("notifications", json.dumps(ledger, default=str)))
        texts.append(("failed_tasks", json.dumps(failed_tasks, default=str)))
        texts.append(("task bodies", "\n".join(self.task_bodies)))
        hits = []
        for value in sorted(world.phi(), key=len, reverse=True):
            for where, text in texts:
                if value and value in text:
                    hits.append(f"{where}: {value[:3]}…")
        return hits

    def print_verdict(self, verdict: dict[str, Any]) -> None:
        print("\n== chaos verdict")
        for name in (
            "appointments",
            "ledger_docs",
            "intended",
            "delivered",
            "failed_tasks",
            "recorded_by_stuck_scan",
            "duplicates",
            "lost",
            "mismatches",
            "outbox",
            "task_bodies_scanned",
            "phi_hits",
            "settled",
            "seconds",
        ):
            print(f"  {name:20} {verdict[name]}")
        print(f"  {'states':20} {dict(verdict['states'])}")
        print(f"  {'skipped':20} {dict(verdict['skipped'])}")
        for name in ("duplicate_keys", "lost_keys", "mismatch_examples", "phi_examples"):
            if verdict[name]:
                print(f"  {name:20} {verdict[name]}")
        print(f"  operations log       {self.log_path}")


def chaos_config(port_base: int, state_dir: Path) -> StackConfig:
    overrides = {
        "MEDSPA_PORT_BASE": str(port_base),
        "MEDSPA_STATE_DIR": str(state_dir),
        "MEDSPA_DEMO_TIME_SCALE": "2880",
        "MEDSPA_DUPLICATE_DELIVERIES": "1",
        "MEDSPA_TASKS_MIN_BACKOFF": "0.5",
        "MEDSPA_TASKS_MAX_BACKOFF": "5",
        "MEDSPA_FN_PROVIDER_TIMEOUT_SECONDS": "1.5",
        "MEDSPA_FN_LEDGER_LEASE_SECONDS": "5",
        "MEDSPA_FN_UNCONFIRMED_WAIT_SECONDS": "10",
    }
    return stack_config.load({**os.environ, **overrides})


def default_stack(environ: Mapping[str, str]) -> tuple[int, Path]:
    """(port base, state dir) of a run's own stack: MEDSPA_CHAOS_PORT_BASE, else a free block inside the
    block of MEDSPA_PORT_BASE; the state under MEDSPA_STATE_DIR."""
    yours = stack_config.load(environ)
    chosen = envvars.integer(environ, "MEDSPA_CHAOS_PORT_BASE", 0)
    return chosen or spare_port_base(yours), yours.state_dir / "chaos-stack"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--clinics", type=int, default=4)
    parser.add_argument("--appointments", type=int, default=60, help="per clinic")
    parser.add_argument("--handler-kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port-base", type=int, help="default: MEDSPA_CHAOS_PORT_BASE, else free inside yours")
    parser.add_argument("--state-dir", type=Path, help="default: MEDSPA_STATE_DIR/chaos-stack")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the run to settle")
    parser.add_argument("--keep-stack", action="store_true", help="leave the chaos stack up afterwards")
    args = parser.parse_args(argv)
    if args.port_base is None or args.state_dir is None:
        try:
            port_base, state_dir = default_stack(os.environ)
        except (ConfigError, AssertionError) as exc:
            print(f"chaos: {exc}", file=sys.stderr)
            return 2
        args.port_base = port_base if args.port_base is None else args.port_base
        args.state_dir = state_dir if args.state_dir is None else args.state_dir
    config = chaos_config(args.port_base, args.state_dir)
    print(f"chaos: stack on port base {args.port_base}, state in {args.state_dir}", flush=True)
    local_stack.up(config)
    saved = dict(os.environ)
    try:
        return Chaos(config, args).run()
    finally:
        os.environ.clear()  # the run points the clients at its own stack: give the caller's environment back
        os.environ.update(saved)
        from shared.platform import clients

        clients.reset()
        if not args.keep_stack:
            local_stack.down(config)


if __name__ == "__main__":
    sys.exit(main())
