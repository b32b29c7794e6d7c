"""A campaign of N recipients on the running local stack (a script, not a test): the integration test's checks
(tests/integration/test_campaigns.py) at size, with figures.

    python -m local.stack up           # with your MEDSPA_PORT_BASE / MEDSPA_STATE_DIR
    python bench/campaign_run.py [--recipients 10000] [--cancel-at 0.5]

It seeds one clinic (its own sender number) with N consenting patients and 20 who must get nothing, moves
the stack's clock to a weekday evening ahead (tests/campaign_live.py stack_instant), creates and schedules
the campaign as ops does, and
waits for it: without --cancel-at until it is done, with it until that share of the recipients has been
messaged, then cancels and waits for nothing to be pending. It prints the time to plan and to send, the
rate, and the checks: each consenting recipient messaged exactly once (none when cancelled twice, none of
the excluded or of those whose state's window stays closed), none outside its recipient's window (five
states' hours written in tests/campaign_live.py, not read from the code), no message
created after the cancel's acknowledgement, the sandbox's message ids exactly the ledger's. Exit 1 when a
check fails. The stack's clock is put back and the campaign queues are purged afterwards. The local
campaigns queue runs one task at a time at the stack's rate for it (LOCAL_QUEUE_RATES, or MEDSPA_QUEUE_RATES),
so the pace is that rate or the handler's, whichever is lower.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local import config as stack_config  # noqa: E402
from local.standins import is_listening  # noqa: E402

POLL = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--cancel-at", type=float, help="cancel once this share (0-1) of recipients is messaged")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the campaign")
    args = parser.parse_args(argv)
    config = stack_config.load()
    if not all(is_listening(config.host, port) for port in (config.firestore_port, config.tasks_port)):
        print("the local stack is not running: start it with `make up` (or python -m local.stack up)", file=sys.stderr)
        return 2
    os.environ.update(config.function_env())

    from shared.campaigns.model import Status
    from shared.platform import clients
    from shared.platform.clock import system_clock
    from shared.platform.emulator import set_local_clock
    from shared.platform.settings import settings
    from shared.wiring.services import Services
    from tests.campaign_live import STOP_LINE, LiveCampaign, stack_instant
    from tests.handler_support import Sandbox

    clock_file = config.state_dir / "clock.json"
    sandbox = Sandbox(config.sandbox_url)
    start = stack_instant()
    set_local_clock(clock_file, start)
    try:
        services = Services(settings(), system_clock)
        began = time.monotonic()
        live = LiveCampaign(clients.firestore(), services, args.recipients, start)
        seeded = time.monotonic()
        print(f"seeded {args.recipients} consenting patients and 20 excluded in {seeded - began:.1f} s", flush=True)
        live.schedule()
        lifecycle = services.campaign_lifecycle
        planned_at = sent_first = None
        ack = None
        target = int(args.recipients * args.cancel_at) if args.cancel_at is not None else None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            campaign = lifecycle.read(live.campaign_id)
            if planned_at is None and campaign.batched:
                planned_at = time.monotonic()
            count = live.sent_count()  # one aggregation query: the sandbox's whole list only at the end
            if sent_first is None and count:
                sent_first = time.monotonic()
            if target is not None and ack is None and count >= target:
                ack = lifecycle.cancel(live.campaign_id, by="bench")
                print(f"cancelled at {count} sent: in flight {ack.in_flight}, settled {ack.settled}", flush=True)
            if ack is not None and lifecycle.pending(live.campaign_id) == 0:
                break
            if campaign.status == Status.DONE:
                break
            time.sleep(POLL)
        ended = time.monotonic()
        sent = live.sent(sandbox)
        to = Counter(m["to"] for m in sent)
        problems = []
        if ack is None and sorted(to) != live.reachable():
            problems.append(f"{len(to)} of the {len(live.reachable())} reachable recipients messaged")
        if any(n > 1 for n in to.values()):
            problems.append(f"{sum(1 for n in to.values() if n > 1)} recipients messaged twice")
        if set(to) & live.excluded:
            problems.append("an excluded patient was messaged")
        if set(to) & live.closed:
            problems.append("a recipient whose window stayed closed was messaged")
        if late := live.outside_window(sent):
            problems.append(f"{len(late)} messages outside their window")
        if not all(m["body"].endswith(STOP_LINE) for m in sent):
            problems.append("a message without the STOP line")
        if ack is not None and ack.acknowledged_at is not None:
            after = [m for m in sent if datetime.fromisoformat(m["created_at"]) > ack.acknowledged_at]
            if after:
                problems.append(f"{len(after)} messages created after the cancel's acknowledgement")
        if live.sent_by_ledger() != {m["id"] for m in sent}:
            problems.append("the sandbox's message ids are not the ledger's")
        status = lifecycle.read(live.campaign_id).status
        sending = ended - (sent_first or ended)
        print(
            f"campaign {live.campaign_id}: {status}; {len(sent)} messages sent; {len(live.closed)} recipients in a "
            "state whose window stayed closed, none messaged"
        )
        if planned_at is not None:
            print(f"  planned (every batch ran) {planned_at - seeded:.1f} s after schedule")
        created = sorted(datetime.fromisoformat(m["created_at"]) for m in sent)
        span = (created[-1] - created[0]).total_seconds() if len(created) > 1 else 0.0
        print(f"  first to last message (sandbox, stack clock): {span:.1f} s ({len(sent) / span if span else 0:.1f}/s)")
        print(f"  first message seen to the campaign's end (with its finish check): {sending:.1f} s")
        print(f"  schedule to the end: {ended - seeded:.1f} s")
        for problem in problems:
            print(f"  FAIL {problem}")
        if not problems:
            print(
                "  checks: each reachable recipient at most once (exactly once unless cancelled), none excluded or "
                "closed, none outside its window, none after the acknowledgement, sandbox ids = ledger ids: OK"
            )
        return 1 if problems else 0
    finally:
        set_local_clock(clock_file, None)
        for queue in (settings().queue_campaigns, settings().queue_campaign_planning):
            clients.tasks().purge_queue(name=config.queue_path(queue))


if __name__ == "__main__":
    sys.exit(main())
