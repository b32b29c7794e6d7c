"""The reminders tick held to the cloud's limits (a script, not a test): creation, Firestore, sending.

    python bench/scale_model.py                    # 1,000 clinics / 100,000 appointments, then 10,000 / 1,000,000
    python bench/scale_model.py --clinics 100 --appointments 10000 --no-million

bench/fanout_model.py measures the product's code at production latency but lets the cloud take whatever
it is given. This model takes the plan the product makes (bench/baselines.expected_plan, the same messages
and send times, per clinic shape: clinics of one zone and size plan alike) and replays the tick as a fluid
simulation in 0.1 s steps, under the limits of bench/limits.py (each with its source):
- creation: units dispatched by the fan-out queue (rate, concurrency), each creating at most `unit_rate`
  tasks/s after `unit_overhead` s of reads (calibrated on fanout_model's measured run: ~22,000 creates/s
  from 100 instances); a CreateTask latency with a tail (log-normal p50/p99) and the named-task factor set
  how fast one unit's 32 create threads go; per queue the 500/50/5 ramp, per project the API quota, per
  collection Firestore's 500 writes/s while an indexed value is sequential;
- sending: each SMS task due at send_at, dispatched by its queue (rate), then Twilio's queue of the clinic's
  sender at its messages per second; lateness = sent - send_at, at the busiest UTC hour of sends.
Designs: the tick as built (one 10:00 UTC tick, one SMS queue), first unconstrained (what fanout_model
shows), then held to the limits; and the proposed design (docs/deploy.md, "Scale within the limits").
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import fanout_data, limits  # noqa: E402
from bench.scale_replay import CREATE_THREADS, Creation, Design, Sending, create, plan, send  # noqa: E402

# bench/fanout_model.py's run 3 (docs/performance.md): what the unconstrained tick measured
MEASURED = {"tick": 26.2, "longest": 6.8, "peak_mib": 109, "tasks": 199_409, "sequential": 12_164}


def designs(clinics: int) -> list[Design]:
    return [
        Design("as built, unconstrained", False, 100, 100.0, math.inf, False, 1, 1.0, overlap=False),
        Design("as built, held to the limits", False, 100, 100.0, math.inf, True, 1, 1.0, overlap=False),
        Design("proposed", True, 6, 6.0, 400.0, True, 1, 400.0),
    ]


def run(args: argparse.Namespace, clinics: int, appointments: int) -> dict[str, tuple[Creation, Sending]]:
    create_mean = limits.lognormal_mean(args.create_p50, args.create_p99) * limits.NAMED_TASK_FACTOR
    unit_rate = min(args.unit_rate, CREATE_THREADS / create_mean)
    large = max(1, round(args.large * clinics / 1000))
    out = {}
    for design in designs(clinics):
        started = time.monotonic()
        units, docs = plan(clinics, appointments, large, args.large_share, design.per_zone_ticks)
        coordinator = args.coordinator * clinics / 1000 / (len(fanout_data.ZONES) if design.per_zone_ticks else 1)
        made = create(units, design, unit_rate, args.unit_overhead, coordinator)
        made.longest += args.create_p99 * limits.NAMED_TASK_FACTOR  # a unit waits for its slowest last create
        sent = send(units, design.sms_queues, design.sms_rate, limits.SENDERS["long code"])
        tasks = sum(len(u.tasks) for u in units)
        out[design.name] = (made, sent)
        print(
            f"  {design.name}: {tasks:,} tasks, {docs:,} ledger docs, {len(units):,} units "
            f"(modelled in {time.monotonic() - started:.0f} s)",
            flush=True,
        )
    return out


def table(title: str, results: dict[str, tuple[Creation, Sending]], tasks: int, sequential: float) -> None:
    names = list(results)
    print(f"\n{title}; the sequential loop: {sequential:,.0f} s")
    print(f"{'':52}" + "".join(f"{n:>30}" for n in names))
    rows = [
        ("tick: longest, tick to its last task created (s)", lambda c, s: f"{c.tick:,.0f}"),
        ("longest unit invocation (s; < 60)", lambda c, s: f"{c.longest:.1f}"),
        ("peak creates/s, reminders-sms", lambda c, s: f"{c.peak.get('sms', 0):,.0f}"),
        ("peak creates/s, reminders-email", lambda c, s: f"{c.peak.get('email', 0):,.0f}"),
        ("every queue within 500/50/5", lambda c, s: "yes" if c.within_guidance else "NO"),
        ("peak CreateTask calls/s (project quota 100,000)", lambda c, s: f"{c.api_peak:,.0f}"),
        ("peak ledger writes/s (sequential index: 500)", lambda c, s: f"{c.ledger_peak:,.0f}"),
        ("least lead, send_at - created (min)", lambda c, s: f"{c.min_lead / 60:,.1f}"),
        ("tasks created < 1 h before send_at", lambda c, s: f"{c.late_created:,}"),
        ("sequential loop / this tick", lambda c, s: f"{sequential / c.tick:,.0f}x"),
        ("SMS at the busiest hour", lambda c, s: f"{s.count:,} ({s.hour[11:]})"),
        ("  lateness p50 / p99 (s)", lambda c, s: f"{s.p50:,.0f} / {s.p99:,.0f}"),
        ("  lateness worst (s)", lambda c, s: f"{s.worst:,.0f}"),
        ("  would overflow Twilio's queue (30001)", lambda c, s: f"{s.overflowed:,}"),
    ]
    for label, cell in rows:
        print(f"{label:52}" + "".join(f"{cell(*results[n]):>30}" for n in names))


def senders(args: argparse.Namespace) -> None:
    """The busiest hour's lateness for each kind of sender, in the proposed design (1,000 clinics)."""
    units, _ = plan(args.clinics, args.appointments, args.large, args.large_share, per_zone=True)
    asbuilt, _ = plan(args.clinics, args.appointments, args.large, args.large_share, per_zone=False)
    print("\nSMS lateness at the busiest hour by the clinic's sender (one SMS queue at 400/s):")
    print(f"{'sender':34}{'MPS':>6}{'proposed p50 / p99 (s)':>26}{'as built, p50 / p99 (s)':>26}")
    for name, mps in limits.SENDERS.items():
        a, b = send(units, 1, 400.0, mps), send(asbuilt, 1, 400.0, mps)
        print(f"{name:34}{mps:6.0f}{f'{a.p50:,.0f} / {a.p99:,.0f}':>26}{f'{b.p50:,.0f} / {b.p99:,.0f}':>26}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clinics", type=int, default=1000)
    parser.add_argument("--appointments", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=5, help="large clinics per 1,000")
    parser.add_argument("--large-share", type=float, default=0.125)
    parser.add_argument("--unit-rate", type=float, default=220.0, help="creates/s of one unit (measured)")
    parser.add_argument("--unit-overhead", type=float, default=0.5, help="a unit's reads before it creates (s)")
    parser.add_argument("--coordinator", type=float, default=3.6, help="coordinator time per 1,000 clinics (s)")
    parser.add_argument("--create-p50", type=float, default=0.035, help="CreateTask latency median (s)")
    parser.add_argument("--create-p99", type=float, default=0.250, help="CreateTask latency p99 (s)")
    parser.add_argument("--no-million", action="store_true", help="skip the 10x run")
    args = parser.parse_args(argv)
    started = time.monotonic()
    create_mean = limits.lognormal_mean(args.create_p50, args.create_p99) * limits.NAMED_TASK_FACTOR
    print(
        f"CreateTask latency log-normal p50 {args.create_p50 * 1000:.0f} ms, p99 {args.create_p99 * 1000:.0f} ms, "
        f"named x{limits.NAMED_TASK_FACTOR} -> mean {create_mean * 1000:.0f} ms; a unit creates at most "
        f"{min(args.unit_rate, CREATE_THREADS / create_mean):.0f}/s "
        f"({CREATE_THREADS} threads; measured {args.unit_rate:.0f})"
    )
    commit_mean = 0.020 + 0.00035  # fanout_model's commit: 10-30 ms + 0.16-0.54 ms per write
    print(f"model: {args.clinics:,} clinics, {args.appointments:,} appointments", flush=True)
    base = run(args, args.clinics, args.appointments)
    tasks = MEASURED["tasks"] * args.appointments // 100_000
    sequential = tasks * (commit_mean + create_mean)
    table(f"{args.clinics:,} clinics, {args.appointments:,} appointments a day", base, tasks, sequential)
    print(
        f"{'measured by fanout_model.py (unconstrained)':52}{MEASURED['tick']:>30.1f}  tick (s); longest unit "
        f"{MEASURED['longest']} s, {MEASURED['peak_mib']} MiB, sequential loop {MEASURED['sequential']:,} s"
    )
    ramp = limits.seconds_to_create(round(tasks * 0.9))
    print(f"{'the 500/50/5 ramp alone, 90 % of the tasks on one queue':52}{ramp:>30.0f}  s (the issue: >= 341 s)")
    senders(args)
    if not args.no_million:
        small = run(args, args.clinics // 10, args.appointments // 10)
        table("a tenth of it, to check the model scales", small, tasks // 10, sequential / 10)
        print("10x the clinics (a tenth -> the full run): a tick bound by a rate grows with the docs, one bound")
        print("by its largest unit does not; peaks and leads stay where the limits hold them")
        for name in base:
            ratio = base[name][0].tick / max(1e-9, small[name][0].tick)
            peaks = f"{small[name][0].api_peak:,.0f} -> {base[name][0].api_peak:,.0f}"
            print(f"  {name:30} tick x{ratio:.1f}, peak CreateTask/s {peaks}")
        big = run(args, args.clinics * 10, args.appointments * 10)
        table(
            f"{args.clinics * 10:,} clinics, {args.appointments * 10:,} appointments a day",
            big,
            tasks * 10,
            sequential * 10,
        )
    print(f"(model run took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
