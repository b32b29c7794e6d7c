"""python -m ops: list, show (masked) and retry failed tasks; run the retry sweep; say why an appointment's
patient did or did not get each message; export one patient's compliance evidence; replay a reminders
tick; build one clinic report on demand; create and steer a campaign and print or rebuild its report
(ops/campaign.py, ops/campaign_report.py); record a consent from the front desk or an import, and show a
patient's (ops/consent.py); smoke-test the deployed functions without messaging any patient.

Talks to the project in GOOGLE_CLOUD_PROJECT with the caller's credentials, or to the local stack
(`. .local/env.sh` first, or the env.sh in the MEDSPA_STATE_DIR the stack was started with). Output
never holds PHI: failed_tasks docs hold ids and codes, and whatever is printed goes through the same
masking as the logs. Every change goes through the module that owns the collection
(shared.tasks.failed_tasks), exactly as the console edit and the sweep do.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ops import campaign
from ops import consent as consent_commands
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.errors import ConfigError
from shared.platform.masking import scrub
from shared.platform.store import Doc
from shared.tasks.failed_tasks import FailedTasks, Status

REACH_SECONDS = 3.0
PREFIX_MATCHES_SHOWN = 10  # an ambiguous prefix lists this many of the ids it begins
PROGRESS_EVERY = 50  # `retry --all-open` says how far it got every this many failures


def _fmt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return scrub(str(value)) if value is not None else "-"


def _json_value(value: Any) -> Any:
    """A stored value as JSON shows it: numbers, booleans and null as such, timestamps ISO, text masked."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {scrub(str(key)): _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return scrub(str(value))


def failures() -> FailedTasks:
    return FailedTasks(clients.store(), system_clock)


def find(owner: FailedTasks, text: str) -> Doc | None:
    """The failed task `text` names, by its whole id or the one id it begins; else None, saying why."""
    doc = owner.read(text)
    if doc is not None:
        return doc
    matches = owner.ids_starting_with(text, limit=PREFIX_MATCHES_SHOWN + 1)
    if len(matches) == 1:
        doc = owner.read(matches[0])
        if doc is not None:
            return doc
    if not matches:
        print(f"no failed task {scrub(text)[:80]} (by id or the beginning of one)", file=sys.stderr)
        return None
    shown = "\n".join(f"  {doc_id}" for doc_id in matches[:PREFIX_MATCHES_SHOWN])
    more = "\n  …" if len(matches) > PREFIX_MATCHES_SHOWN else ""
    print(
        f"{scrub(text)[:80]} is the beginning of more than one failed task id; give more of it:\n{shown}{more}",
        file=sys.stderr,
    )
    return None


def cmd_list(args: argparse.Namespace) -> int:
    docs = list(
        failures().open_failures(
            status=Status(args.status), clinic_id=args.clinic, error_code=args.error_code, limit=args.limit
        )
    )
    width = max((len(doc.id) for doc in docs), default=2)  # whole ids: `show` and `retry` take them as printed
    print(f"{'id':{width}} {'type':22} {'error':20} {'http':4} {'tries':5} {'clinic':14} last failed")
    for doc in docs:
        print(
            f"{doc.id:{width}} {_fmt(doc.get('task_type'))[:22]:22} {_fmt(doc.get('error_code'))[:20]:20} "
            f"{_fmt(doc.get('http_status')):4} {_fmt(doc.get('attempts')):5} {_fmt(doc.get('clinic_id'))[:14]:14} "
            f"{_fmt(doc.get('last_failed_at'))}"
        )
    print(f"{len(docs)} failed task(s) with status {args.status}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    doc = find(failures(), args.id)
    if doc is None:
        return 1
    print(json.dumps({"id": doc.id, **_json_value(doc.data)}, indent=2, sort_keys=True))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Mark failed tasks for retry, exactly what an operator does in the console; the sweep re-enqueues."""
    if args.id:
        code = _retry_one(failures(), args.id)
    else:
        code = _retry_all_open(failures(), args.error_code)
    if code == 0 and args.sweep_now:
        return cmd_sweep(args)
    return code


def _retry_one(owner: FailedTasks, text: str) -> int:
    doc = find(owner, text)
    if doc is None:
        return 1
    before = doc.get("status")
    if owner.request_retry(doc.id):
        again = " (it already was)" if before == Status.RETRY else ""
        print(f"failed task {doc.id} marked retry{again}: the next sweep re-enqueues it")
        return 0
    now = owner.read(doc.id)
    status = now.get("status") if now is not None else "deleted"
    why = "the sweep already re-enqueued it" if status == Status.RETRIED else "only open or resolved ones can be"
    print(f"failed task {doc.id} is {_fmt(status)[:20]}, not marked retry: {why}", file=sys.stderr)
    return 1


def _retry_all_open(owner: FailedTasks, error_code: str | None) -> int:
    ids = [doc.id for doc in owner.open_failures(error_code=error_code)]
    marked = 0
    for index, doc_id in enumerate(ids, 1):
        marked += owner.request_retry(doc_id)
        if index % PROGRESS_EVERY == 0 and index < len(ids):
            print(f"\rchecked {index}/{len(ids)}", end="", file=sys.stderr, flush=True)
    if len(ids) >= PROGRESS_EVERY:
        print(file=sys.stderr)
    changed = f" ({len(ids) - marked} changed meanwhile, left as they are)" if marked < len(ids) else ""
    print(f"{marked} of {len(ids)} open failed task(s) marked retry{changed}")
    return 0


def cmd_why(args: argparse.Namespace) -> int:
    """The timeline of one appointment's messages: ledger, failed_tasks and, locally, the sandbox's outbox."""
    from dataclasses import asdict

    from ops import why
    from ops.outbox import SandboxOutbox
    from shared.contract.ids import is_doc_id
    from shared.platform import emulator

    if not is_doc_id(args.appointment):
        print(f"not an appointment id: {scrub(args.appointment)[:80]}", file=sys.stderr)
        return 2
    sandbox = emulator.sandbox_url()
    timeline = why.appointment_timeline(
        clients.store(),
        args.appointment,
        outbox=SandboxOutbox(sandbox) if sandbox else None,
        no_outbox="not read: in the cloud there is none; find a message in Twilio's or SendGrid's logs by its id",
    )
    print(json.dumps(_json_value(asdict(timeline)), indent=2) if args.json else why.render(timeline))
    return 0 if timeline.found or timeline.messages else 1


def cmd_compliance(args: argparse.Namespace) -> int:
    """One patient's consent history, messages with their basis and delivery, and revocations honoured."""
    from dataclasses import asdict

    from ops import compliance
    from shared.contract.ids import is_doc_id

    if not is_doc_id(args.patient):
        print(f"not a patient id: {scrub(args.patient)[:80]}", file=sys.stderr)
        return 2
    evidence = compliance.patient_evidence(clients.store(), system_clock, args.patient)
    if args.format == "json":
        print(json.dumps(_json_value(asdict(evidence)), indent=2))
    else:
        print(compliance.render(evidence))
    return 0 if evidence.found else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    from shared.platform import resources
    from shared.reminders.units import UNIT_NOTES
    from shared.tasks.sweep import RetrySweep
    from shared.wiring.services import services
    from shared.wiring.task_handler import task_types

    sweep = RetrySweep(failures(), services().tasks, task_types(), queues=resources.QUEUES, redone_elsewhere=UNIT_NOTES)
    print(json.dumps(sweep.run().summary()))
    return 0


def cmd_replay_tick(args: argparse.Namespace) -> int:
    """Run the reminders fan-out for one local date, clinic by clinic, with a progress line."""
    from shared.contract.events import TickRequest
    from shared.contract.models import CLINICS
    from shared.platform.settings import settings
    from shared.reminders import fanout
    from shared.reminders.coordinator import run_tick
    from shared.reminders.scheduler import Queues
    from shared.tasks.queue import CloudTasksQueue

    config = settings()
    day = date.fromisoformat(args.date)
    service = fanout.Fanout(
        store=clients.store(),
        tasks=CloudTasksQueue(clients.tasks(), config),
        queues=Queues(sms=config.queue_sms, email=config.queue_email),
        clock=system_clock,
    )
    clinic_ids = [args.clinic] if args.clinic else [doc.id for doc in clients.store().query(CLINICS, fields=[])]
    totals = {"created": 0, "recovered": 0, "already_present": 0, "failed": 0}
    for index, clinic_id in enumerate(clinic_ids, 1):
        report = run_tick(TickRequest(date=day, clinic_id=clinic_id), service, now=system_clock.now())
        for name in totals:
            totals[name] += getattr(report, name)
        print(
            f"\rclinic {index}/{len(clinic_ids)}  created {totals['created']}  already present "
            f"{totals['already_present']}  failed {totals['failed']}",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)
    print(json.dumps({"date": args.date, "clinics": len(clinic_ids), **totals}))
    return 1 if totals["failed"] else 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text[:20]!r}") from None


def cmd_report(args: argparse.Namespace) -> int:
    """Build (and store) one clinic's report for the period containing --date; queue its email unless told not to."""
    from shared.contract.models import CLINICS, Clinic
    from shared.platform.settings import settings
    from shared.reports.builder import ReportBuilder
    from shared.reports.periods import last_full_period, period_of
    from shared.reports.report_docs import Reports
    from shared.tasks.queue import CloudTasksQueue

    store = clients.store()
    doc = store.get(f"{CLINICS}/{args.clinic}")
    if doc is None:
        print(f"no clinic {scrub(args.clinic)[:80]}", file=sys.stderr)
        return 1
    clinic = Clinic.from_doc(doc.id, doc.data)
    now = system_clock.now()
    if args.date:
        period = period_of(args.period, args.date, clinic.zone)
    else:
        period = last_full_period(args.period, now, clinic.zone)
    config = settings()
    builder = ReportBuilder(store=store, tasks=CloudTasksQueue(clients.tasks(), config), queue=config.queue_reports)
    report = builder.build(clinic, period, now=now, email=not args.no_email, partial=args.partial)
    summary = report.summary()
    built = Reports(store).read(summary["ids"][0]) if summary["ids"] else None
    out = {"report": summary["ids"][0] if summary["ids"] else None, **{k: v for k, v in summary.items() if k != "ids"}}
    if built is not None:
        out["metrics"] = built.get("metrics")
    print(scrub(json.dumps(out, indent=2, sort_keys=True, default=str)))
    return 1 if report.failed or built is None else 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """Seed a smoke clinic, drive every function, check each one's evidence, clean up; exit 1 on any FAIL."""
    from ops import smoke, smoke_plan, smoke_target

    project = os.environ["GOOGLE_CLOUD_PROJECT"].strip()
    target = f"the local stack ({project})" if os.environ.get("FIRESTORE_EMULATOR_HOST") else f"project {project}"
    run = smoke.SmokeRun(
        store=clients.store(),
        clock=system_clock,
        publish=smoke_target.publisher(project),
        ask=smoke_target.asker(smoke_target.function_urls(project, args.region)),
        smoke=smoke_plan.plan(smoke.new_run_id(), system_clock.now()),
        timeout=args.timeout,
    )
    checks = run.run()
    print(smoke.report(checks, clinic_id=run.smoke.clinic_id, target=target))
    return 0 if all(check.passed for check in checks) else 1


def env_script() -> str:
    """The local stack's environment file, where `make up` wrote it (MEDSPA_STATE_DIR, else .local)."""
    state_dir = os.environ.get("MEDSPA_STATE_DIR", "").strip()
    return shlex.quote(str(Path(state_dir) / "env.sh")) if state_dir else ".local/env.sh"


def reachable() -> str | None:
    """None when the project's Firestore answers a TCP connect; else what could not be reached."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
    if not project:
        return (
            f"GOOGLE_CLOUD_PROJECT is not set: run `. {env_script()}` for the local stack, or set it and "
            "use application-default credentials for a real project"
        )
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST", "").strip()
    if not emulator:
        return None  # a real project: the client library reports credential problems itself
    host, _, port = emulator.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=REACH_SECONDS):
            return None
    except (OSError, ValueError):
        return (
            f"the Firestore emulator at {emulator} does not answer: is the local stack up? (`make up`; "
            f"or set MEDSPA_PORT_BASE to the stack you started)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops", description=" ".join(__doc__.split("\n\n")[0].split()))
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list failed tasks")
    listing.add_argument("--status", choices=[s.value for s in Status], default="open")
    listing.add_argument("--clinic")
    listing.add_argument("--error-code")
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
    explain = sub.add_parser("why", help="why an appointment's patient did or did not get each message: its timeline")
    explain.add_argument("--appointment", required=True, help="the appointment id")
    explain.add_argument("--json", action="store_true", help="the timeline as JSON")
    explain.set_defaults(run=cmd_why)
    export = sub.add_parser("compliance", help="one patient's consent and message evidence (masked)")
    export.add_argument("--patient", required=True, help="the patient id")
    export.add_argument("--format", choices=("text", "json"), default="text")
    export.set_defaults(run=cmd_compliance)
    sweep = sub.add_parser("sweep", help="re-enqueue every failed task marked retry, now")
    sweep.set_defaults(run=cmd_sweep)
    replay = sub.add_parser("replay-tick", help="run the reminders fan-out for one local date (and clinic)")
    replay.add_argument("--date", required=True, help="YYYY-MM-DD, the clinics' local date to remind for")
    replay.add_argument("--clinic")
    replay.set_defaults(run=cmd_replay_tick)
    build = sub.add_parser("report", help="build one clinic's daily or weekly report now (and queue its email)")
    build.add_argument("--clinic", required=True)
    build.add_argument("--period", choices=("daily", "weekly"), required=True)
    build.add_argument(
        "--date",
        type=_day,
        help="YYYY-MM-DD: the day, or any day of the Monday-Sunday week (default: the last full one)",
    )
    build.add_argument("--no-email", action="store_true", help="store the report only")
    build.add_argument(
        "--partial",
        action="store_true",
        help="build a period that has not ended yet (refused otherwise); the report and its email say so",
    )
    build.set_defaults(run=cmd_report)
    smoke = sub.add_parser("smoke", help="smoke-test the deployed functions (messages no patient), then clean up")
    smoke.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each stage (default 300)")
    smoke.add_argument(
        "--region",
        default=os.environ.get("TASKS_LOCATION") or os.environ.get("REGION") or "us-central1",
        help="the functions' region (default: TASKS_LOCATION, else REGION, else us-central1)",
    )
    smoke.set_defaults(run=cmd_smoke)
    consent_commands.add_parser(sub)
    campaign.add_parser(sub)
    args = parser.parse_args(argv)
    problem = reachable()
    if problem:
        print(f"ops: {problem}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"ops: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
