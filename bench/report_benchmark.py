"""Report benchmark (a script, not a test): the weekly report of one clinic with 50,000 appointments in the
week, built the way report_builder builds it beside a naive read-everything baseline, on the running
local stack's Firestore emulator.

    make up            # or: .venv/bin/python -m local.stack up (only its Firestore emulator is used)
    .venv/bin/python bench/report_benchmark.py [--appointments 50000] [--keep]

- streamed   shared.reports.metrics.MetricsReader: aggregation queries for the totals, one streamed query
             of six fields for the per-provider and per-day figures, folded as it streams;
- naive      every appointment, ledger and offer document of the clinic read whole into lists, then the
             same figures computed in Python.

Each variant runs in a child process of its own, so each peak resident set size (ru_maxrss) is its own;
the figures printed are wall time, the process's peak RSS, and its RSS before the build (imports and
client), beside the function's configured memory (deploy/registry.py). The data lives in a project of its
own (`medspa-bench-<run>`) on the emulator and is deleted afterwards unless --keep. Nothing is asserted
about time: this prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local import config as stack_config  # noqa: E402
from local.standins import is_listening  # noqa: E402

ZONE = ZoneInfo("America/New_York")
MONDAY = date(2026, 10, 26)  # a week with New York's fall-back: 169 hours
CLINIC = "clinic-bench"
BATCH = 500
PROVIDERS = [(f"prov-{n:02d}", f"Provider {n:02d}") for n in range(1, 13)]
STATUSES = ("booked", "confirmed", "completed", "completed", "completed", "cancelled", "no_show")


def mib(kilobytes: int) -> float:
    return kilobytes / 1024  # ru_maxrss is in KiB on Linux


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def seed(db: Any, appointments: int) -> None:
    """One clinic; `appointments` in the week, a few hundred in the week before; ledger docs and offers."""
    rng = random.Random(50_000)
    start = datetime.combine(MONDAY, datetime.min.time(), tzinfo=ZONE).astimezone(timezone.utc)
    seconds = int(timedelta(hours=169).total_seconds())
    batch, pending = db.batch(), 0

    def add(collection: str, doc_id: str, fields: dict[str, Any]) -> None:
        nonlocal batch, pending
        batch.set(db.collection(collection).document(doc_id), fields)
        pending += 1
        if pending == BATCH:
            batch.commit()
            batch, pending = db.batch(), 0

    db.collection("clinics").document(CLINIC).set(
        {"name": "Bench Clinic", "timezone": ZONE.key, "phone": "+12125550100", "email_from": "b@bench.example.com"}
    )
    for n in range(appointments + appointments // 100):
        at = (
            start
            + timedelta(seconds=rng.randrange(seconds))
            - (timedelta(days=7) if n >= appointments else timedelta())
        )
        provider = rng.choice(PROVIDERS)
        add(
            "appointments",
            f"appt-{n:06d}",
            {
                "clinic_id": CLINIC,
                "patient_id": f"pat-{n % 5000:05d}",
                "provider_id": provider[0],
                "provider_name": provider[1],
                "service_name": "HydraFacial",
                "requires_prep": False,
                "prep_instructions": "A prep note that the report never reads, as a real document carries one. " * 3,
                "start": at,
                "end": at + timedelta(minutes=rng.choice((30, 45, 60))),
                "status": rng.choice(STATUSES),
                "price_cents": rng.randint(50, 900) * 100,
                "created_at": at - timedelta(days=rng.randint(0, 20)),
                "updated_at": at,
            },
        )
    for n in range(appointments // 10):
        add(
            "notifications",
            f"n-{n:06d}",
            {
                "clinic_id": CLINIC,
                "kind": rng.choice(("appointment_reminder", "booking_confirmation")),
                "channel": rng.choice(("sms", "email")),
                "state": rng.choice(("sent", "delivered", "delivered", "failed")),
                "send_at": start + timedelta(seconds=rng.randrange(seconds)),
                "appointment_id": f"appt-{n:06d}",
            },
        )
    for n in range(appointments // 100):
        created = start + timedelta(seconds=rng.randrange(seconds - 86400))
        add(
            "slot_offers",
            f"o-{n:05d}",
            {
                "clinic_id": CLINIC,
                "status": "filled",
                "created_at": created,
                "filled_at": created + timedelta(minutes=rng.randint(2, 300)),
            },
        )
    if pending:
        batch.commit()


def naive(store: Any) -> dict[str, Any]:
    """Read everything whole, then count: what the report would cost without aggregations or projections."""
    from shared.reports.periods import period_of

    period = period_of("weekly", MONDAY, ZONE)
    before = period.previous()
    appointments = [doc.data for doc in store.query("appointments", where=[("clinic_id", "==", CLINIC)])]
    ledger = [doc.data for doc in store.query("notifications", where=[("clinic_id", "==", CLINIC)])]
    offers = [doc.data for doc in store.query("slot_offers", where=[("clinic_id", "==", CLINIC)])]
    inside = [a for a in appointments if period.start <= a["start"] < period.end]
    counts = Counter(a["status"] for a in inside)
    providers: dict[str, list[float]] = {}
    for a in inside:
        if a["status"] != "cancelled":
            p = providers.setdefault(a["provider_id"], [0, 0.0, 0])
            p[0] += 1
            p[1] += (a["end"] - a["start"]).total_seconds() / 3600
            p[2] += a["price_cents"] if a["status"] == "completed" else 0
    return {
        "appointments": {"total": len(inside), **counts},
        "revenue_cents": sum(a["price_cents"] for a in inside if a["status"] == "completed"),
        "previous_total": sum(before.start <= a["start"] < before.end for a in appointments),
        "providers": len(providers),
        "ledger_in_week": sum(period.start <= d["send_at"] < period.end for d in ledger),
        "offers": len(offers),
    }


def child(variant: str, project: str) -> None:
    """One variant in this process: build, then print seconds and memory as JSON."""
    os.environ["GOOGLE_CLOUD_PROJECT"] = project
    from shared.platform import clients
    from shared.reports.metrics import MetricsReader
    from shared.reports.periods import period_of

    store = clients.store()
    next(iter(store.query("clinics", limit=1)), None)  # the client and its channel are up before timing
    before = rss_kib()
    started = time.perf_counter()
    if variant == "streamed":
        metrics = MetricsReader(store).build(CLINIC, period_of("weekly", MONDAY, ZONE)).to_doc()
        headline = {"appointments": metrics["appointments"], "revenue_cents": metrics["revenue_cents"]}
    else:
        headline = naive(store)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"variant": variant, "seconds": seconds, "rss_before_kib": before, "peak_kib": peak, **headline}))


def wipe(db: Any) -> None:
    for name in ("clinics", "appointments", "notifications", "slot_offers"):
        while docs := list(db.collection(name).limit(BATCH).stream()):
            batch = db.batch()
            for snapshot in docs:
                batch.delete(snapshot.reference)
            batch.commit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=50_000)
    parser.add_argument("--keep", action="store_true", help="leave the bench project's documents in place")
    parser.add_argument("--variant", choices=("streamed", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = stack_config.load()
    os.environ.update({k: v for k, v in config.function_env().items() if k.endswith("_EMULATOR_HOST")})
    if args.variant:
        child(args.variant, args.project)
        return 0
    if not is_listening(config.host, config.firestore_port):
        print(f"no Firestore emulator on {config.host}:{config.firestore_port}: `make up` first", file=sys.stderr)
        return 2
    from google.cloud import firestore

    from deploy.registry import function

    project = f"medspa-bench-{uuid.uuid4().hex[:8]}"
    db = firestore.Client(project=project)
    started = time.perf_counter()
    seed(db, args.appointments)
    took = time.perf_counter() - started
    print(f"seeded {args.appointments:,} appointments in the week (+1 % the week before) in {took:.1f} s")
    results = []
    try:
        for variant in ("streamed", "naive"):
            out = subprocess.run(  # noqa: S603 - this interpreter running this file
                [sys.executable, __file__, "--variant", variant, "--project", project],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        if not args.keep:
            wipe(db)
    limit = function("report-builder").memory
    print(f"report-builder's configured memory: {limit}")
    print(
        f"{'variant':<10} {'seconds':>8} {'peak RSS MiB':>13} {'RSS before MiB':>15} {'growth MiB':>11}  appointments"
    )
    for row in results:
        growth = mib(row["peak_kib"] - row["rss_before_kib"])
        print(
            f"{row['variant']:<10} {row['seconds']:>8.1f} {mib(row['peak_kib']):>13.0f} "
            f"{mib(row['rss_before_kib']):>15.0f} {growth:>11.0f}  {row['appointments']['total']:,}"
        )
    same = results[0]["appointments"] == results[1]["appointments"] and (
        results[0]["revenue_cents"] == results[1]["revenue_cents"]
    )
    print(f"both variants count the same appointments and revenue: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
