"""Reminders' dispatch latency with and without a campaign sending, on the running local stack (a script, not a test).

    python -m local.stack up        # with your MEDSPA_PORT_BASE / MEDSPA_STATE_DIR, MEDSPA_DEMO_TIME_SCALE unset
    python bench/campaign_latency.py [--reminders 120] [--per-second 4] [--recipients 2000] [--rounds 2]

Each round runs twice, alternating: `--reminders` SMS reminders due one after another at `--per-second`
(their tasks created ahead in the reminders' queue with each send_at as schedule_time), once alone and once
while a campaign of `--recipients` consenting patients sends from its own queue (started just before, held
to its rate by the queue: the stack's MEDSPA_QUEUE_RATES / LOCAL_QUEUE_RATES). The stack's clock is moved to a
weekday evening (tests/campaign_live.py stack_instant) for both, and put back afterwards. Two latencies per
reminder: dispatch, its send_at to the ledger's claim (the handler has it), and sent, its send_at to its
sent_at (dispatch, the handler's work and the provider sandbox together). It prints p50 / p95 / p99 / max of
each, alone and during, and their ratios (the target: during a campaign within 1.2x of without).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.handler_cpu import seed  # noqa: E402
from local import config as stack_config  # noqa: E402
from local.standins import is_listening  # noqa: E402

LEAD = timedelta(seconds=8)  # the first reminder is due this long after its task is created


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def schedule_reminders(count: int, per_second: float) -> list[tuple[str, datetime]]:
    """`count` reminders due one after another; returns (ledger key, send_at) of each."""
    from shared.platform import clients
    from shared.platform.clock import system_clock
    from shared.platform.settings import Settings
    from shared.tasks.queue import CloudTasksQueue, TaskSpec, create_all

    settings = Settings.from_env()
    bodies = seed(clients.firestore(), count, "sms")
    first = system_clock.now() + LEAD
    specs, due = [], []
    for index, body in enumerate(bodies):
        send_at = first + timedelta(seconds=index / per_second)
        body["send_at"] = send_at.isoformat()
        specs.append(TaskSpec(settings.queue_sms, f"latency-{uuid.uuid4().hex}", body, send_at))
        due.append((str(body["dedup_key"]), send_at))
    report = create_all(CloudTasksQueue(clients.tasks(), settings), specs)
    if report.failed:
        raise SystemExit(f"{len(report.failed)} reminder tasks not created: {report.failed[0][1]}")
    return due


def latencies(due: list[tuple[str, datetime]], timeout: float) -> tuple[list[float], list[float]]:
    """Seconds from each reminder's send_at to its claim (the handler has it: dispatch) and to its sent_at
    (dispatch + the handler's work + the provider), once every one is sent."""
    from shared.messaging.ledger import Ledger
    from shared.platform import clients
    from shared.platform.clock import system_clock

    ledger = Ledger(clients.store(), system_clock)
    deadline = time.monotonic() + timeout
    keys = [key for key, _ in due]
    while True:
        entries = ledger.read_many(keys)
        sent = {key: entry for key, entry in entries.items() if isinstance(entry.data.get("sent_at"), datetime)}
        if len(sent) == len(keys):
            dispatched = [(_claimed(sent[key]) - send_at).total_seconds() for key, send_at in due]
            return dispatched, [(sent[key].data["sent_at"] - send_at).total_seconds() for key, send_at in due]
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(sent)} of {len(keys)} reminders sent within {timeout:.0f} s")
        time.sleep(1.0)


def _claimed(entry: Any) -> datetime:
    claimed: datetime = entry.claimed_at or entry.data["sent_at"]
    return claimed


def start_campaign(recipients: int) -> Callable[[], None]:
    """A campaign of `recipients` consenting patients (tests/campaign_live.py), sending from now on at its
    queue's rate; returns what cancels it and empties its queues."""
    from shared.platform import clients
    from shared.platform.clock import system_clock
    from shared.platform.settings import settings
    from shared.wiring.services import Services
    from tests.campaign_live import LiveCampaign

    services = Services(settings(), system_clock)
    live = LiveCampaign(clients.firestore(), services, recipients, system_clock.now())
    live.schedule()
    deadline = time.monotonic() + 120
    while live.sent_count() < 20:  # sending, and past its plan's first batch
        if time.monotonic() > deadline:
            raise SystemExit("the campaign did not start sending within 120 s")
        time.sleep(0.5)

    def stop() -> None:
        sent = live.sent_count()
        services.campaign_lifecycle.cancel(live.campaign_id, by="bench")
        config = stack_config.load()
        for queue in (settings().queue_campaigns, settings().queue_campaign_planning):
            clients.tasks().purge_queue(name=config.queue_path(queue))
        print(f"  (the campaign had sent {sent} of {recipients} when the reminders were all out)", flush=True)

    return stop


def one_run(reminders: int, per_second: float, recipients: int) -> tuple[list[float], list[float]]:
    stop = start_campaign(recipients) if recipients else None
    try:
        due = schedule_reminders(reminders, per_second)
        return latencies(due, timeout=reminders / per_second + 600)
    finally:
        if stop is not None:
            stop()


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:>16}: p50 {percentile(values, 0.5):6.2f} s  p95 {percentile(values, 0.95):6.2f} s  "
        f"p99 {percentile(values, 0.99):6.2f} s  max {max(values):6.2f} s  (n={len(values)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reminders", type=int, default=120)
    parser.add_argument("--per-second", type=float, default=4.0)
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    config = stack_config.load()
    if not all(is_listening(config.host, port) for port in (config.firestore_port, config.tasks_port)):
        print("the local stack is not running: start it with python -m local.stack up", file=sys.stderr)
        return 2
    if config.demo_time_scale != 1:
        print("run against a stack without MEDSPA_DEMO_TIME_SCALE: latencies are real seconds", file=sys.stderr)
        return 2
    os.environ.update(config.function_env())
    if not dict(config.queue_rates).get("campaigns"):
        print("the stack's campaigns queue has no rate (MEDSPA_QUEUE_RATES): it would not be paced", file=sys.stderr)
        return 2
    from shared.platform.emulator import set_local_clock
    from tests.campaign_live import stack_instant

    set_local_clock(config.clock_file, stack_instant())  # a weekday evening: inside the recipients' windows
    try:
        return compare(args)
    finally:
        set_local_clock(config.clock_file, None)


def compare(args: argparse.Namespace) -> int:
    names = ("alone", "during campaign")
    dispatched: dict[str, list[float]] = {name: [] for name in names}
    sent: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(1, args.rounds + 1):
        for name, recipients in zip(names, (0, args.recipients), strict=True):
            to_claim, to_sent = one_run(args.reminders, args.per_second, recipients)
            dispatched[name] += to_claim
            sent[name] += to_sent
            print(f"round {round_number} dispatch {line(name, to_claim)}", flush=True)
            print(f"round {round_number} sent     {line(name, to_sent)}", flush=True)
    print(f"all rounds, {args.reminders} reminders at {args.per_second:g}/s each run:")
    for what, runs in (("dispatch (send_at to the claim)", dispatched), ("sent (send_at to sent_at)", sent)):
        print(what)
        for name in names:
            print(line(name, runs[name]))
        alone, during = runs["alone"], runs["during campaign"]
        for share, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            ratio = percentile(during, share) / max(percentile(alone, share), 1e-3)
            print(f"  {label} during / alone: {ratio:.2f} (target <= 1.2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
