"""The cloud's published limits, as pure functions the scale model (bench/scale_model.py) enforces.

Each figure names its source; where a provider publishes no number, the figure is this model's assumption
and says so (docs/performance.md lists them).

- Cloud Tasks, "Manage scaling risks" (https://cloud.google.com/tasks/docs/manage-cloud-task-scaling):
  a queue is high-TPS at 500 tasks created or dispatched per second; past that, traffic should grow by at
  most 50 % every 5 minutes (the 500/50/5 pattern), or creation latency and errors rise.
- Cloud Tasks, "Quotas and limits" (https://cloud.google.com/tasks/docs/quotas): API requests 6,000,000
  per minute per project (100,000/s); a queue dispatches at most 500 tasks/s (RateLimits
  max_dispatches_per_second); 1,000 queues per region.
- Cloud Tasks, CreateTaskRequest (https://cloud.google.com/python/docs/reference/cloudtasks/latest/
  google.cloud.tasks_v2.types.CreateTaskRequest): a named task costs an extra de-duplication lookup, "these
  CreateTask calls have significantly increased latency"; hashed names (ours) avoid the sequential-name
  penalty. No figure is published: NAMED_TASK_FACTOR is an assumption.
- Firestore, "Sharded timestamps" and "Best practices" (https://firebase.google.com/docs/firestore/solutions/
  shard-timestamp, https://cloud.google.com/firestore/docs/best-practices): a collection whose documents
  carry a monotonically increasing indexed value is limited to 500 writes/s; a field nobody queries can
  have its single-field index disabled, which removes the limit for that field.
- Twilio, errors 30001 / 21611 (https://www.twilio.com/docs/api/errors/30001): Twilio queues each sender's
  messages at its rate (a US long code 1 segment/s, a short code 100+/s) and fails what waits too long
  (4 h on the 30001 page, 10 h on 21611's: the model takes the shorter); toll-free 3 MPS by default
  (https://support.twilio.com/hc/en-us/articles/4411046744987); an account's combined limit 2,000 MPS
  (https://www.twilio.com/docs/api/errors/63017); REST API concurrency per account (20429) has no
  published figure: TWILIO_API_CONCURRENCY is an assumption.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HIGH_TPS = 500.0  # Cloud Tasks: a queue past this many creates (or dispatches) per second is high-TPS
RAMP_GROWTH = 1.5  # ... and grows by at most 50 % ...
RAMP_STEP_S = 300.0  # ... every 5 minutes
QUEUE_MAX_DISPATCH = 500.0  # max_dispatches_per_second of one queue
PROJECT_API_PER_S = 6_000_000 / 60  # Cloud Tasks API requests, per project
QUEUES_PER_REGION = 1000
SEQUENTIAL_INDEX_WRITES = 500.0  # Firestore: writes/s to a collection with a sequential indexed value
NAMED_TASK_FACTOR = 1.5  # assumption: a named CreateTask takes this much longer than an unnamed one
TWILIO_QUEUE_LIMIT_S = 4 * 3600.0  # a sender's queue holds this much waiting time; the rest fails 30001
TWILIO_ACCOUNT_MPS = 2000.0
TWILIO_API_CONCURRENCY = 100  # assumption: requests in flight per account before 20429

SENDERS = {  # messages (segments) per second of one sender, US traffic
    "long code": 1.0,
    "toll-free": 3.0,
    "Messaging Service, 5 long codes": 5.0,
    "short code": 100.0,
}


def ramp_allowance(seconds_since_first: float) -> float:
    """Creates per second the 500/50/5 guidance allows a cold queue `seconds_since_first` after its first."""
    return HIGH_TPS * RAMP_GROWTH ** math.floor(max(0.0, seconds_since_first) / RAMP_STEP_S)


def seconds_to_create(tasks: int, cap: float = math.inf) -> float:
    """The shortest time to create `tasks` on one cold queue held to the guidance (and to `cap` per second)."""
    left, at = float(tasks), 0.0
    while left > 0:
        rate = min(cap, ramp_allowance(at))
        step = RAMP_STEP_S - at % RAMP_STEP_S
        if rate * step >= left:
            return at + left / rate
        left -= rate * step
        at += step
    return at


def within_guidance(rates: Sequence[float]) -> bool:
    """Whether per-second creates on one queue (index = second since the tick) keep to 500/50/5: each
    second at most the larger of 500 and 1.5x the least of the five minutes before it."""
    window = int(RAMP_STEP_S)
    for second, rate in enumerate(rates):
        earlier = rates[max(0, second - window) : second]
        floor = min(earlier) if len(earlier) == window else 0.0
        if rate > max(HIGH_TPS, RAMP_GROWTH * floor) + 1e-9:
            return False
    return True


def lognormal_sigma(p50: float, p99: float) -> float:
    """The sigma of a log-normal latency with this median and 99th percentile."""
    return math.log(p99 / p50) / 2.3263478740408408


def lognormal_mean(p50: float, p99: float) -> float:
    return p50 * math.exp(lognormal_sigma(p50, p99) ** 2 / 2)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@dataclass(frozen=True)
class SenderRun:
    sent: list[float]  # when each message left the sender, in the order given
    overflowed: int  # messages that would have waited past Twilio's queue limit (error 30001)


def pace_sender(arrivals: Iterable[float], mps: float) -> SenderRun:
    """One sender's FIFO queue (Twilio's): messages arrive (sorted) and leave at most `mps` per second."""
    sent, overflowed, free = [], 0, -math.inf
    for at in arrivals:
        leave = max(at, free)
        if leave - at > TWILIO_QUEUE_LIMIT_S:
            overflowed += 1
        sent.append(leave)
        free = leave + 1 / mps
    return SenderRun(sent, overflowed)


def dispatch(due: Iterable[float], rate: float) -> list[float]:
    """A Cloud Tasks queue's dispatch times for tasks due at `due` (sorted), at most `rate` per second."""
    out, free = [], -math.inf
    for at in due:
        leave = max(at, free)
        out.append(leave)
        free = leave + 1 / rate
    return out
