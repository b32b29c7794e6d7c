"""Planned messages → one ledger doc + one named Cloud Task each, exactly once however often a run repeats.

Per chunk of up to CHUNK_SIZE messages: one batched read of the patients not seen yet (channel and
queue; patients with no usable channel get a skipped ledger doc and no task); one atomic batch of
`create()`s for the chunk's ledger docs, which on a first run is all it takes; when it meets an existing
doc (a re-run, a concurrent run) nothing is written, and the chunk is classified against one batched
read of its ledger docs, the missing ones created again by batch (doc by doc, bounded concurrency, if
that too meets a doc a concurrent run just created); one named task per newly created doc
(`task_queue.create_all`, bounded concurrency); then one batch that stamps `task_created_at` on every doc
whose task now exists (or `task_error` on those whose task failed). Three Firestore round trips per 300
messages on a first run, besides the task creations.

Why the stamp: the ledger doc's `create()` is the claim on creating its task. Cloud Tasks' own name
dedup makes a second create harmless in the cloud, but the local emulator accepts duplicate names
(DESIGN §6), and a re-run must not lean on a feature the stand-in lacks. So an existing doc in state
scheduled is classified by its stamp:
- `task_created_at` set, or any state past scheduled → already present, nothing to do;
- `task_error` set, or unstamped for longer than TASK_CREATION_LEASE (its run crashed) → re-create the
  task ("recovered");
- unstamped, young and `scheduled_by` another run → that run is creating the task: wait for it
  (PEER_WAIT), re-reading, and take over once the lease has run out; still unresolved → counted as
  failed, so the event is redelivered and the retry settles it. (`scheduled_by` this run: ours, from a
  batch that failed half-way on a store whose batches are not atomic → create its task.)
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.contract.models import Clinic, Patient
from shared.messaging.ledger import Ledger, LedgerEntry
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, RetryableError
from shared.platform.settings import Settings
from shared.reminders.plan import Decision, PlannedMessage, Skipped, channel_for
from shared.tasks.queue import DEFAULT_CONCURRENCY, TaskQueue, TaskSpec, create_all, task_id

CHUNK_SIZE = 300  # ledger/patient refs per get_all, and messages in flight per step
MAX_BATCH_WRITES = 500
TASK_CREATION_LEASE = timedelta(seconds=60)
PEER_WAIT_SECONDS = 30.0
PEER_POLL_SECONDS = 0.5
MAX_PROBLEMS = 5  # problems quoted in the summary line (ids and error classes only)


@dataclass
class FanoutReport:
    """What one run did; `summary()` is the one log line (counts and ids, never PHI)."""

    trigger: str
    clinics: int = 0
    appointments: int = 0
    created: int = 0
    recovered: int = 0
    already_present: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    problems: list[str] = field(default_factory=list)

    def fail(self, count: int, problem: str) -> None:
        self.failed += count
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem[:200])

    def summary(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "clinics": self.clinics, "appointments": self.appointments,
                "created": self.created, "recovered": self.recovered, "already_present": self.already_present,
                "skipped": dict(sorted(self.skipped.items())), "failed": self.failed, "problems": self.problems}

    def raise_if_failed(self) -> None:
        """After the summary is logged: a run with failures raises so the event is redelivered."""
        if self.failed:
            raise RetryableError(f"{self.failed} creation(s) failed; the redelivered event fills the gap",
                                 code="fanout_incomplete")


@dataclass(frozen=True)
class _Routed:
    message: PlannedMessage
    channel: str
    queue: str


class MessageScheduler:
    """Collects planned messages (add) and writes them in chunks; finish() settles what peers hold."""

    def __init__(self, *, db: Any, tasks: TaskQueue, settings: Settings, clock: Clock, report: FanoutReport,
                 clinics: dict[str, Clinic], concurrency: int = DEFAULT_CONCURRENCY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.db, self.tasks, self.settings, self.clock, self.report = db, tasks, settings, clock, report
        self.clinics, self.concurrency, self.sleep = clinics, concurrency, sleep
        self.ledger = Ledger(db, clock)
        self.run_id = uuid.uuid4().hex[:12]  # marks the ledger docs this run created, and so owns
        self._buffer: list[PlannedMessage] = []
        self._seen: set[str] = set()
        self._patients: dict[str, Patient | str] = {}  # a patient, or why there is none usable
        self._pending: dict[str, _Routed] = {}
        self._optimistic = True

    def add(self, decision: Decision | None) -> None:
        if decision is None:
            return
        if isinstance(decision, Skipped):
            self.report.skipped[decision.reason] += 1
            return
        if decision.key in self._seen:  # planned twice in one run: once is enough
            return
        self._seen.add(decision.key)
        self._buffer.append(decision)
        if len(self._buffer) >= CHUNK_SIZE:
            self._flush()

    def finish(self) -> FanoutReport:
        self._flush()
        deadline = time.monotonic() + PEER_WAIT_SECONDS
        while self._pending and time.monotonic() < deadline:
            self.sleep(PEER_POLL_SECONDS)
            waiting, self._pending = list(self._pending.values()), {}
            for start in range(0, len(waiting), CHUNK_SIZE):
                self._write(waiting[start:start + CHUNK_SIZE], optimistic=False)
        if self._pending:
            self.report.fail(len(self._pending), f"{len(self._pending)} message(s) still being created by "
                                                  "another run; the redelivery will settle them")
            self._pending.clear()
        return self.report

    # ------------------------------------------------------------------------------------------ chunks

    def _flush(self) -> None:
        messages, self._buffer = self._buffer, []
        if not messages:
            return
        self._load_patients({m.task.patient_id for m in messages})
        routed: list[_Routed] = []
        unreachable: list[tuple[PlannedMessage, str]] = []
        for message in messages:
            patient = self._patients[message.task.patient_id]
            if isinstance(patient, str):
                self.report.skipped[patient] += 1
                continue
            channel, reason = channel_for(patient, self.clinics[message.task.clinic_id])
            if channel is None:
                unreachable.append((message, reason))
            else:
                queue = self.settings.queue_sms if channel == "sms" else self.settings.queue_email
                routed.append(_Routed(message, channel, queue))
        existing = self._read_ledger([m.key for m, _ in unreachable])
        for _message, reason in unreachable:
            self.report.skipped[reason] += 1
        self._bounded(self._write_skipped, [(m, r) for m, r in unreachable if m.key not in existing])
        self._write(routed)

    def _write(self, routed: list[_Routed], *, optimistic: bool = True) -> None:
        """Create the ledger docs and their tasks; when some docs exist, classify against the ledger first.

        Optimistic: a first run finds none of its docs, so one batch of creates is tried before any read;
        it fails whole on the first existing doc (a re-run, a concurrent run), and the chunk is classified.
        """
        if not routed:
            return
        if optimistic and self._optimistic:
            if self._schedule_batch(routed):
                self._create_tasks([(item, False) for item in routed])
                return
            self._optimistic = False  # a re-run: read first from now on instead of encoding doomed batches
        entries = self._read_ledger([r.message.key for r in routed])
        now = self.clock.now()
        missing, to_task = [], []
        for item in routed:
            entry = entries.get(item.message.key)
            if entry is None:
                missing.append(item)
            elif entry.state != "scheduled" or entry.data.get("task_created_at"):
                self.report.already_present += 1
            elif entry.data.get("task_error") or _older_than(entry, now, TASK_CREATION_LEASE):
                to_task.append((item, True))
            elif entry.data.get("scheduled_by") == self.run_id:  # ours (a batch that failed half-way)
                to_task.append((item, False))
            else:
                self._pending[item.message.key] = item
        for item, won in zip(missing, self._schedule_all(missing), strict=True):
            if won:
                to_task.append((item, False))
            elif won is False:  # created by a concurrent run since our read
                self._pending[item.message.key] = item
        self._create_tasks(to_task)

    # ---------------------------------------------------------------------------------------- writes

    def _fields(self, item: _Routed | None, message: PlannedMessage) -> dict[str, Any]:
        task = message.task
        return {
            "kind": task.type, "channel": item.channel if item else None, "clinic_id": task.clinic_id,
            "appointment_id": task.appointment_id, "patient_id": task.patient_id, "send_at": task.send_at,
            "appointment_start": task.appointment_start, "offset_hours": task.offset_hours,
            "task_name": self._task_name(item.queue, message.key) if item else None, "scheduled_by": self.run_id,
        }

    def _task_name(self, queue: str, key: str) -> str:
        s = self.settings
        return f"projects/{s.project}/locations/{s.tasks_location}/queues/{queue}/tasks/{task_id(key)}"

    def _schedule_batch(self, items: list[_Routed]) -> bool:
        """One atomic batch of creates; False when any doc exists or the batch failed (nothing written)."""
        try:
            return self.ledger.schedule_all([(i.message.key, self._fields(i, i.message)) for i in items])
        except Exception:  # noqa: BLE001 - not swallowed: the caller goes doc by doc, recording each failure
            return False

    def _schedule_all(self, items: list[_Routed]) -> list[bool | None]:
        """Missing docs: one batch (the usual case); when one now exists, or the batch fails, doc by doc,
        so each outcome is known."""
        if self._schedule_batch(items):
            return [True] * len(items)
        return self._bounded(self._schedule, items)

    def _schedule(self, item: _Routed) -> bool | None:
        """True: this run created the ledger doc (and so owns its task); False: it existed; None: failed."""
        try:
            return self.ledger.schedule(item.message.key, self._fields(item, item.message))
        except Exception as exc:  # noqa: BLE001 - counted; the run raises after finishing the rest
            self.report.fail(1, f"ledger {item.message.key}: {type(exc).__name__}")
            return None

    def _write_skipped(self, pair: tuple[PlannedMessage, str]) -> None:
        message, reason = pair
        try:
            if self.ledger.schedule(message.key, self._fields(None, message)):
                self.ledger.mark_skipped(message.key, reason)
        except Exception as exc:  # noqa: BLE001 - counted; the run raises after finishing the rest
            self.report.fail(1, f"ledger {message.key}: {type(exc).__name__}")

    def _create_tasks(self, work: list[tuple[_Routed, bool]]) -> None:
        if not work:
            return
        specs = [TaskSpec(queue=item.queue, business_key=item.message.key, payload=item.message.task.to_json(),
                          schedule_time=item.message.task.send_at) for item, _ in work]
        outcome = create_all(self.tasks, specs, concurrency=self.concurrency)
        failed = {spec.business_key: problem for spec, problem in outcome.failed}
        for spec, problem in outcome.failed:
            self.report.fail(1, f"task {spec.business_key}: {problem.split(':')[0]}")
        now = self.clock.now()
        stamps = {}
        for item, recovered in work:
            key = item.message.key
            if key in failed:
                stamps[key] = {"task_error": failed[key].split(":")[0][:80]}
            elif recovered:
                stamps[key] = {"task_created_at": now, "task_error": None}
                self.report.recovered += 1
            else:  # one field: the stamp is written for every message, keep it cheap to encode
                stamps[key] = {"task_created_at": now}
                self.report.created += 1
        self._stamp(stamps)

    def _stamp(self, stamps: dict[str, dict[str, Any]]) -> None:
        keys = list(stamps)
        for start in range(0, len(keys), MAX_BATCH_WRITES):
            chunk = keys[start:start + MAX_BATCH_WRITES]
            batch = self.db.batch()
            for key in chunk:
                batch.update(self.ledger.ref(key), stamps[key])
            try:
                batch.commit()
            except Exception as exc:  # noqa: BLE001 - the docs stay unstamped; a retry recovers them
                self.report.fail(len(chunk), f"stamping {len(chunk)} ledger doc(s): {type(exc).__name__}")

    # ----------------------------------------------------------------------------------------- reads

    def _load_patients(self, patient_ids: set[str]) -> None:
        wanted = sorted(patient_ids - set(self._patients))
        refs = [self.db.collection("patients").document(pid) for pid in wanted]
        found = {snap.id: snap for snap in self._get_all(refs)}
        for pid in wanted:
            snap = found.get(pid)
            if snap is None or not snap.exists:
                self._patients[pid] = "patient_missing"
                continue
            try:
                self._patients[pid] = Patient.from_doc(pid, snap.to_dict())
            except InvalidDocument:
                self._patients[pid] = "invalid_patient"

    def _read_ledger(self, keys: list[str]) -> dict[str, LedgerEntry]:
        snaps = self._get_all([self.ledger.ref(key) for key in keys])
        return {entry.key: entry for entry in map(self.ledger.entry, snaps) if entry is not None}

    def _get_all(self, refs: list[Any]) -> list[Any]:
        """Batched reads, CHUNK_SIZE refs per call; a failure here is transient and propagates (retry)."""
        snaps: list[Any] = []
        for start in range(0, len(refs), CHUNK_SIZE):
            snaps.extend(self.db.get_all(refs[start:start + CHUNK_SIZE]))
        return snaps

    def _bounded(self, work: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        items = list(items)
        if len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(work, items))


def _older_than(entry: LedgerEntry, now: datetime, age: timedelta) -> bool:
    created = entry.data.get("created_at")
    return isinstance(created, datetime) and now - created >= age
