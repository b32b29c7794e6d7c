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
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import fanout_data, limits  # noqa: E402

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # the Scheduler's 0 10 * * * UTC, as fanout_model
LOCAL_TICK_HOUR = 2  # the proposed per-zone tick: 02:00 local, six hours before quiet hours end
DT = 0.1
MAX_DAY, SHARD = 2000, 1500  # shared/reminders/fanout.py: a clinic-day past 2,000 appointments is split
CREATE_THREADS = 32  # shared/tasks/queue.py DEFAULT_CONCURRENCY
# bench/fanout_model.py's run 3 (docs/performance.md): what the unconstrained tick measured
MEASURED = {"tick": 26.2, "longest": 6.8, "peak_mib": 109, "tasks": 199_409, "sequential": 12_164}


@dataclass
class Message:
    queue: str  # "sms" / "email"
    send_at: float  # epoch seconds
    clinic: int


@dataclass
class Unit:
    clinic: int
    ready: float
    tasks: list[Message]
    docs: int
    started: float = -1.0
    created: float = 0.0  # tasks created so far (fractional budget)
    ended: float = -1.0
    stamps: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Design:
    name: str
    per_zone_ticks: bool
    concurrency: int
    fanout_rate: float
    pace: float  # creates/s of the whole tick (the units share it); inf: as fast as they go
    held: bool  # the limits enforced (the ramp per queue, the API quota, Firestore per collection)
    sms_queues: int
    sms_rate: float  # each SMS queue's max_dispatches_per_second
    overlap: bool = True  # units dispatched while the coordinator is still enqueuing


# --------------------------------------------------------------------------------------------- the plan


def tick_at(zone: str, per_zone: bool) -> datetime:
    if not per_zone:
        return NOW
    local = NOW.astimezone(ZoneInfo(zone)).replace(hour=LOCAL_TICK_HOUR, minute=0, second=0, microsecond=0)
    return local.astimezone(timezone.utc)


def plan(clinics: int, appointments: int, large: int, large_share: float, per_zone: bool) -> tuple[list[Unit], int]:
    """Every clinic's units and messages as the product plans them; shapes (zone, size) are planned once."""
    from bench.baselines import expected_plan
    from bench.fanout_model import SETTINGS_ENV, _clean_env, _PathsOnly
    from shared.platform.settings import Settings
    from shared.reminders.scheduler import Queues

    _clean_env()
    settings = Settings.from_env(SETTINGS_ENV)
    queues, paths = Queues("sms", "email"), _PathsOnly(settings)
    shapes: dict[tuple[int, int], tuple[list[tuple[str, float]], int]] = {}
    units, ledger_docs = [], 0
    zones = len(fanout_data.ZONES)
    for clinic, count in enumerate(fanout_data.sizes(clinics, appointments, large, large_share)):
        zone = clinic % zones
        if (zone, count) not in shapes:
            now = tick_at(fanout_data.ZONES[zone], per_zone)
            docs = fanout_data.clinic_docs(zone) + list(fanout_data.appointment_docs(zone, count, now))
            expected = expected_plan(docs, now, paths, queues)
            messages = [
                (doc["channel"], doc["send_at"].timestamp())
                for docs_of in expected.ledger.values()
                for _, doc in docs_of
                if doc["state"] == "scheduled"
            ]
            shapes[(zone, count)] = (messages, sum(len(d) for d in expected.ledger.values()))
        messages, docs_count = shapes[(zone, count)]
        ledger_docs += docs_count
        tick = tick_at(fanout_data.ZONES[zone], per_zone).timestamp()
        parts = 1 if count <= MAX_DAY else math.ceil(count / SHARD)
        size = math.ceil(len(messages) / parts)
        for part in range(parts):
            chunk = [Message(q, s, clinic) for q, s in messages[part * size : (part + 1) * size]]
            units.append(Unit(clinic, tick, chunk, math.ceil(docs_count / parts)))
    return units, ledger_docs


# ------------------------------------------------------------------------------------------- creation


@dataclass
class Creation:
    tick: float  # the longest time from a tick to its last task created
    longest: float  # the longest unit invocation
    peak: dict[str, float]  # creates/s, per queue, at the busiest second
    ledger_peak: float
    api_peak: float
    within_guidance: bool
    min_lead: float  # the least time between a task's creation and its send_at
    late_created: int  # tasks created less than an hour before their send_at


def create(units: list[Unit], design: Design, unit_rate: float, overhead: float, coordinator: float) -> Creation:
    """Replay the tick(s): units start as the fan-out queue allows and create as the limits allow."""
    by_tick: dict[float, list[Unit]] = defaultdict(list)
    for unit in units:
        by_tick[unit.ready].append(unit)
    for tick, group in by_tick.items():  # the coordinator enqueues its units one after another
        for index, unit in enumerate(group):
            unit.ready = tick + (coordinator * (index + 1) / len(group) if design.overlap else coordinator)
    pending = sorted(units, key=lambda u: u.ready)
    per_unit = min(unit_rate, design.pace / design.concurrency)
    per_second: dict[str, Counter[int]] = defaultdict(Counter)
    first: dict[str, float] = {}
    active: list[Unit] = []
    next_start, index = -math.inf, 0
    step, origin = 0, pending[0].ready  # t = origin + step * DT: no drift across a long run
    docs_per_task = sum(u.docs for u in units) / max(1, sum(len(u.tasks) for u in units))
    while index < len(pending) or active:
        t = origin + step * DT
        while index < len(pending) and len(active) < design.concurrency and pending[index].ready < t + DT:
            if next_start >= t + DT:  # the fan-out queue's rate: the next dispatch falls in a later step
                break
            unit = pending[index]
            unit.started = max(t, next_start, unit.ready)
            next_start, index = unit.started + 1 / design.fanout_rate, index + 1
            active.append(unit)
        if not active and index < len(pending):
            step = max(step + 1, math.ceil((pending[index].ready - origin) / DT))
            continue
        creating = [u for u in active if t >= u.started + overhead]
        demand: Counter[str] = Counter()
        takes = {}
        for unit in creating:
            takes[id(unit)] = min(len(unit.tasks) - unit.created, per_unit * DT)
            done = int(unit.created)
            for message in unit.tasks[done : done + max(1, math.ceil(takes[id(unit)]))]:
                demand[message.queue] += 1
        factor = 1.0
        if design.held:
            for queue, wanted in demand.items():
                allowed = limits.ramp_allowance(t - first.get(queue, t)) * DT
                factor = min(factor, allowed / wanted)
            # Every ledger doc of a tick carries the same updated_at; with its single-field index disabled the
            # composite (state, updated_at) of the stuck-message query still takes it: the 500/s stays.
            total = sum(demand.values()) * factor * docs_per_task
            if total > limits.SEQUENTIAL_INDEX_WRITES * DT:
                factor *= limits.SEQUENTIAL_INDEX_WRITES * DT / total
            factor = min(factor, limits.PROJECT_API_PER_S * DT / max(1.0, sum(demand.values())))
        for unit in creating:
            before = int(unit.created)
            unit.created = min(len(unit.tasks), unit.created + takes[id(unit)] * factor)
            if len(unit.tasks) - unit.created < 1e-6:  # a fraction left over must not take forever
                unit.created = len(unit.tasks)
            for message in unit.tasks[before : int(unit.created)]:
                unit.stamps.append(t)
                first.setdefault(message.queue, t)
                per_second[message.queue][int(step * DT + 1e-9)] += 1
        for unit in list(active):
            if int(unit.created) >= len(unit.tasks) and t >= unit.started + overhead:
                unit.ended = t + DT
                active.remove(unit)
        step += 1
    seconds = sorted({s for counts in per_second.values() for s in counts})
    api = Counter[int]()
    for counts in per_second.values():
        api.update(counts)
    guidance = all(
        limits.within_guidance([counts[s] for s in range(min(counts), max(counts) + 1)])
        for counts in per_second.values()
    )
    leads = [m.send_at - stamp for u in units for m, stamp in zip(u.tasks, u.stamps, strict=True)]
    return Creation(
        tick=max(max(u.stamps, default=u.ended) - tick for tick, group in by_tick.items() for u in group),
        longest=max(u.ended - u.started for u in units),
        peak={q: max(c.values()) for q, c in per_second.items()},
        ledger_peak=max(api.values()) * docs_per_task if seconds else 0.0,
        api_peak=max(api.values()) if seconds else 0.0,
        within_guidance=guidance,
        min_lead=min(leads),
        late_created=sum(1 for lead in leads if lead < 3600),
    )


# -------------------------------------------------------------------------------------------- sending


@dataclass
class Sending:
    hour: str
    count: int
    p50: float
    p99: float
    worst: float
    overflowed: int


def send(units: list[Unit], queues: int, rate: float, mps: float) -> Sending:
    """SMS lateness at the busiest UTC hour: each queue dispatches at `rate`, each clinic's sender at `mps`."""
    sms = sorted((m for u in units for m in u.tasks if m.queue == "sms"), key=lambda m: m.send_at)
    rate = min(rate, limits.QUEUE_MAX_DISPATCH)
    dispatched: dict[int, list[tuple[float, Message]]] = defaultdict(list)
    for shard in range(queues):
        mine = [m for m in sms if m.clinic % queues == shard]
        for at, message in zip(limits.dispatch([m.send_at for m in mine], rate), mine, strict=True):
            dispatched[message.clinic].append((at, message))
    lateness: list[tuple[float, float]] = []
    overflowed = 0
    for arrivals in dispatched.values():
        arrivals.sort(key=lambda pair: pair[0])
        run = limits.pace_sender([at for at, _ in arrivals], mps)
        overflowed += run.overflowed
        lateness += [(m.send_at, sent - m.send_at) for sent, (_, m) in zip(run.sent, arrivals, strict=True)]
    hours = Counter(int(due // 3600) for due, _ in lateness)
    busiest = max(hours, key=lambda h: hours[h])
    late = [late for due, late in lateness if int(due // 3600) == busiest]
    label = datetime.fromtimestamp(busiest * 3600, timezone.utc).strftime("%Y-%m-%d %H:00 UTC")
    return Sending(label, len(late), limits.percentile(late, 0.5), limits.percentile(late, 0.99), max(late), overflowed)


# ----------------------------------------------------------------------------------------------- main


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
