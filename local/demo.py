"""The local demo: a full day of reminders through the real local stack, then a summary.

    python -m local.demo [--timeout S]        (make demo: brings the stack up first)

Seeds the demo clinics, publishes one reminders tick through Pub/Sub (the bridge hands it to
reminder_fanout as Eventarc would), lets the Cloud Tasks emulator dispatch every task to the task
handler, which sends through the provider sandbox, and prints what happened: sent by channel,
skipped by reason, failed. Tomorrow's send times are compressed by the Cloud Tasks wrapper's time scale
(make demo sets MEDSPA_DEMO_TIME_SCALE=2880: one day of waiting takes 30 seconds). The outbox page
shows every message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

from local import config as stack_config
from local import seed
from shared.platform import clients

# What the functions wrote: a ledger doc left behind would make the next demo's message a duplicate.
DEMO_COLLECTIONS = ("notifications", "failed_tasks", "fanout_runs")
IN_FLIGHT = ("scheduled", "sending")


def _wipe(db, collection: str) -> None:
    while documents := list(db.collection(collection).limit(400).stream()):
        batch = db.batch()
        for snapshot in documents:
            batch.delete(snapshot.reference)
        batch.commit()


def _ledger(db) -> list[dict]:
    return [snapshot.to_dict() or {} for snapshot in db.collection("notifications").stream()]


def _progress(message: str, elapsed: float) -> None:
    if sys.stdout.isatty():
        print(f"\r{message:<110}", end="", flush=True)
    elif int(elapsed) % 10 == 0:
        print(message, flush=True)


def run(timeout: float) -> int:
    config = stack_config.load()
    os.environ.update(config.function_env())
    db = clients.firestore()
    import requests

    print(f"demo: project {config.project}, send times compressed {config.demo_time_scale}x")
    for collection in DEMO_COLLECTIONS:
        _wipe(db, collection)
    requests.delete(f"{config.sandbox_url}/_sandbox/messages", timeout=10)
    requests.delete(f"{config.sandbox_url}/_sandbox/faults", timeout=10)
    if seed.main(["--reset"]) != 0:
        return 1

    topic = clients.publisher().topic_path(config.project, "reminders-tick")
    message_id = clients.publisher().publish(topic, json.dumps({}).encode()).result(timeout=30)
    print(f"published reminders tick {message_id} to {topic}")

    started = time.monotonic()
    deadline = started + timeout
    previous: Counter[str] = Counter()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        ledger = _ledger(db)
        states = Counter(entry.get("state") for entry in ledger)
        waiting = sum(states[state] for state in IN_FLIGHT)
        elapsed = time.monotonic() - started
        _progress(
            f"  {elapsed:5.0f} s  ledger {len(ledger)}  waiting {waiting}  "
            + "  ".join(f"{state} {count}" for state, count in sorted(states.items()) if state not in IN_FLIGHT),
            elapsed,
        )
        if states != previous:  # settled: nothing moved (sends, status callbacks) for a few seconds
            previous, stable_since = states, time.monotonic()
        if ledger and not waiting and time.monotonic() - stable_since > 4:
            break
        time.sleep(1)
    print()
    return _summary(db, config, timed_out=time.monotonic() >= deadline)


def _summary(db, config: stack_config.StackConfig, *, timed_out: bool) -> int:
    ledger = _ledger(db)
    sent = Counter(e.get("channel") for e in ledger if e.get("state") in ("sent", "delivered"))
    delivered = sum(1 for e in ledger if e.get("state") == "delivered")
    skipped = Counter(e.get("reason") for e in ledger if e.get("state") == "skipped")
    failed = Counter(e.get("reason") for e in ledger if e.get("state") == "failed")
    waiting = sum(1 for e in ledger if e.get("state") in IN_FLIGHT)
    failed_tasks = Counter((s.to_dict() or {}).get("error_code") for s in db.collection("failed_tasks").stream())
    kinds = Counter(e.get("kind") for e in ledger)
    print("\n== demo summary")
    print(f"  messages planned  {len(ledger)}  ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    print(
        f"  sent              {sum(sent.values())}  ({', '.join(f'{k} {v}' for k, v in sorted(sent.items()))}; "
        f"{delivered} confirmed delivered by status callback)"
    )
    print(f"  skipped           {sum(skipped.values())}  ({', '.join(f'{k} {v}' for k, v in sorted(skipped.items()))})")
    print(f"  failed            {sum(failed.values())}  ({', '.join(f'{k} {v}' for k, v in sorted(failed.items()))})")
    print(
        f"  failed_tasks      {sum(failed_tasks.values())}  "
        f"({', '.join(f'{k} {v}' for k, v in sorted(failed_tasks.items()))})"
    )
    if waiting:
        print(f"  still scheduled   {waiting} (their send time is further out; the emulator sends them later)")
    print(f"\n  outbox page:      {config.sandbox_url}/")
    print(f"  stop the stack:   make down{'   (timed out waiting)' if timed_out else ''}")
    return 0 if ledger and sum(sent.values()) > 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for dispatch")
    args = parser.parse_args(argv)
    return run(args.timeout)


if __name__ == "__main__":
    sys.exit(main())
