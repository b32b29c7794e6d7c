"""python -m ops: list, show (masked) and retry failed tasks; run the retry sweep; replay a reminders tick.

Talks to the project in GOOGLE_CLOUD_PROJECT with the caller's credentials (or to the local stack:
`. .local/env.sh` first). Output never holds PHI: failed_tasks docs hold IDs and codes, and whatever
is printed goes through the same masking as the logs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from typing import Any

from google.cloud.firestore_v1.base_query import FieldFilter

from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.log import scrub
from shared.tasks.failed_tasks import COLLECTION

STATUSES = ("open", "retry", "retried", "resolved")


def _fmt(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds")
    return scrub(str(value)) if value is not None else "-"


def cmd_list(args: argparse.Namespace) -> int:
    query = clients.firestore().collection(COLLECTION).where(filter=FieldFilter("status", "==", args.status))
    if args.clinic:
        query = query.where(filter=FieldFilter("clinic_id", "==", args.clinic))
    rows = [(s.id, s.to_dict() or {}) for s in query.limit(args.limit).stream()]
    print(f"{'id':44} {'type':22} {'error':20} {'http':4} {'tries':5} {'clinic':14} last failed")
    for doc_id, doc in rows:
        print(f"{doc_id[:44]:44} {_fmt(doc.get('task_type'))[:22]:22} {_fmt(doc.get('error_code'))[:20]:20} "
              f"{_fmt(doc.get('http_status')):4} {_fmt(doc.get('attempts')):5} {_fmt(doc.get('clinic_id'))[:14]:14} "
              f"{_fmt(doc.get('last_failed_at'))}")
    print(f"{len(rows)} failed task(s) with status {args.status}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    snapshot = clients.firestore().collection(COLLECTION).document(args.id).get()
    if not snapshot.exists:
        print(f"no failed task {args.id}", file=sys.stderr)
        return 1
    doc = {key: (_fmt(value) if not isinstance(value, dict) else value) for key, value in snapshot.to_dict().items()}
    print(scrub(json.dumps(doc, indent=2, sort_keys=True, default=str)))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Mark failed tasks for retry, exactly what an operator does in the console; the sweep re-enqueues."""
    collection = clients.firestore().collection(COLLECTION)
    if args.id:
        targets = [collection.document(args.id).get()]
    else:
        query = collection.where(filter=FieldFilter("status", "==", "open"))
        if args.error_code:
            query = query.where(filter=FieldFilter("error_code", "==", args.error_code))
        targets = list(query.stream())
    marked = 0
    for index, snapshot in enumerate(targets, 1):
        if not snapshot.exists:
            print(f"no failed task {snapshot.id}", file=sys.stderr)
            continue
        snapshot.reference.update({"status": "retry"})
        marked += 1
        if index % 50 == 0 or index == len(targets):
            print(f"\rmarked {index}/{len(targets)}", end="", file=sys.stderr, flush=True)
    print(f"\n{marked} failed task(s) marked retry", file=sys.stderr)
    if args.sweep_now:
        return cmd_sweep(args)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from shared.platform.settings import settings
    from shared.tasks.queue import CloudTasksQueue
    from shared.tasks.sweep import RetrySweep

    config = settings()
    sweep = RetrySweep(clients.firestore(), CloudTasksQueue(clients.tasks(), config, system_clock), system_clock,
                       default_queue=config.queue_sms)
    print(json.dumps(sweep.run().summary()))
    return 0


def cmd_replay_tick(args: argparse.Namespace) -> int:
    """Run the reminders fan-out for one local date, clinic by clinic, with a progress line."""
    from shared.contract.events import TickRequest
    from shared.platform.settings import settings
    from shared.reminders import fanout
    from shared.tasks.queue import CloudTasksQueue

    config, db = settings(), clients.firestore()
    day = date.fromisoformat(args.date)
    clinic_ids = [args.clinic] if args.clinic else [s.id for s in db.collection("clinics").select([]).stream()]
    queue = CloudTasksQueue(clients.tasks(), config, system_clock)
    totals: dict[str, int] = {"created": 0, "already_present": 0, "failed": 0}
    for index, clinic_id in enumerate(clinic_ids, 1):
        report = fanout.run_tick(TickRequest(date=day, clinic_id=clinic_id), db=db, tasks=queue, settings=config,
                                 clock=system_clock)
        for name in totals:
            totals[name] += getattr(report, name)
        print(f"\rclinic {index}/{len(clinic_ids)}  created {totals['created']}  already present "
              f"{totals['already_present']}  failed {totals['failed']}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(json.dumps({"date": args.date, "clinics": len(clinic_ids), **totals}))
    return 1 if totals["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list failed tasks")
    listing.add_argument("--status", choices=STATUSES, default="open")
    listing.add_argument("--clinic")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=cmd_list)
    show = sub.add_parser("show", help="show one failed task (masked)")
    show.add_argument("id")
    show.set_defaults(run=cmd_show)
    retry = sub.add_parser("retry", help="mark one failed task, or all open ones, for retry")
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?")
    target.add_argument("--all-open", action="store_true")
    retry.add_argument("--error-code", help="with --all-open: only this error code")
    retry.add_argument("--sweep-now", action="store_true", help="run the sweep right away")
    retry.set_defaults(run=cmd_retry)
    sweep = sub.add_parser("sweep", help="re-enqueue every failed task marked retry, now")
    sweep.set_defaults(run=cmd_sweep)
    replay = sub.add_parser("replay-tick", help="run the reminders fan-out for one local date (and clinic)")
    replay.add_argument("--date", required=True, help="YYYY-MM-DD, the clinics' local date to remind for")
    replay.add_argument("--clinic")
    replay.set_defaults(run=cmd_replay_tick)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
