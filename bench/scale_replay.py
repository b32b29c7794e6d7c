"""A day of the reminders product replayed under the cloud's limits: its plan, its tick's creates, its sends.

The pieces of bench/scale_model.py (which prints the figures): `plan` takes the messages and send times
the product plans (bench/baselines.expected_plan, once per clinic shape: clinics of one zone and size plan
alike); `create` replays a tick in 0.1 s steps, units started as the fan-out queue allows, each creating
as fast as it can unless a limit of bench/limits.py holds it back; `send` passes the SMS through their
queue and each clinic's sender.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from bench import fanout_data, limits

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)  # the Scheduler's 0 10 * * * UTC, as fanout_model
LOCAL_TICK_HOUR = 2  # the proposed per-zone tick: 02:00 local, six hours before quiet hours end
DT = 0.1
MAX_DAY, SHARD = 2000, 1500  # shared/reminders/fanout.py: a clinic-day past 2,000 appointments is split
CREATE_THREADS = 32  # shared/tasks/queue.py DEFAULT_CONCURRENCY


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
            # Every ledger doc of a tick carries the clock's rising updated_at; with its single-field index
            # disabled the composite (state, updated_at) of the stuck-message query still takes it: 500/s stays.
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
