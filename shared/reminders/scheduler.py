"""Planned messages → one ledger doc + one named Cloud Task each, exactly once however often a run repeats.

Per chunk of messages: one batched read of the patients not seen yet (which channel, so which queue; a
patient no channel reaches gets a skipped ledger doc and no task); one atomic commit of `create()`s for
the chunk's ledger docs, skipped ones included, which on a first run is all it takes
(shared.messaging.ledger.Ledger.schedule settles re-runs); then one named task for every doc this run
created and every existing doc still scheduled (a crashed run's): Cloud Tasks refuses a name it has
seen, so a task that already exists answers AlreadyExists and counts as present. No second write of the
ledger doc is needed: "scheduled" plus the deterministic task name is the whole protocol.

Pipelined: a chunk's task creations run on a pool of `concurrency` threads while the caller goes on
with the next chunk's Firestore work (its patients, its commit); at most `MAX_PENDING` chunks of tasks
are in flight, so memory stays bounded. The first chunk is small (`FIRST_CHUNK`), so creations start
after one short commit instead of a full one. A task is only ever created after its ledger doc's
commit returned, so "never a task without its ledger doc" holds at every instant. The sizes were chosen
by measurement (`python bench/fanout_model.py sizes`; docs/deploy.md, "Fan-out sizes").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.contract.models import PATIENTS, Clinic, Patient
from shared.messaging.channels import SMS, first_channel
from shared.messaging.ledger import Ledger, Planned, State
from shared.platform import log
from shared.platform.errors import InvalidDocument
from shared.platform.store import Store
from shared.reminders.fanout_summary import FanoutSummary
from shared.tasks.queue import DEFAULT_CONCURRENCY, CreateReport, TaskQueue, TaskSpec, start_all

CHUNK_SIZE = 400  # ledger docs per commit (Firestore takes 500 writes) and patients per batched read
FIRST_CHUNK = 100  # the first commit of a run: creations start sooner
MAX_PENDING = 2  # chunks whose tasks are still being created while the next chunk is written


@dataclass(frozen=True)
class Queues:
    sms: str
    email: str


class ScheduledTask(Protocol):
    """What the scheduler reads of a planned message's task body (ids only)."""

    @property
    def clinic_id(self) -> str: ...
    @property
    def patient_id(self) -> str: ...
    @property
    def send_at(self) -> datetime: ...
    def ledger_fields(self, channel: str | None = None) -> dict[str, Any]: ...
    def to_json(self) -> dict[str, Any]: ...


class Schedulable(Protocol):
    """A planned message of any kind: shared/reminders/plan.py's PlannedMessage, a booking nudge
    (shared/booking_recovery/plan.py): its ledger key, its task, and why it must not go out (None: it goes)."""

    @property
    def key(self) -> str: ...
    @property
    def task(self) -> ScheduledTask: ...
    @property
    def skipped(self) -> str | None: ...


@dataclass(frozen=True)
class _Routed:
    message: Schedulable
    queue: str


class MessageScheduler:
    """Collects planned messages (add) and writes them in chunks; finish() writes the rest and waits."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        tasks: TaskQueue,
        queues: Queues,
        report: FanoutSummary,
        clinics: dict[str, Clinic],
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.store, self.ledger, self.tasks, self.queues, self.report = store, ledger, tasks, queues, report
        self.clinics, self.concurrency = clinics, concurrency
        self._buffer: list[Schedulable] = []
        self._seen: set[str] = set()
        self._patients: dict[str, Patient | str] = {}  # a patient, or why there is none usable
        self._chunk = min(FIRST_CHUNK, CHUNK_SIZE)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[Callable[[], CreateReport], list[tuple[_Routed, bool]]]] = deque()

    def add(self, message: Schedulable | None) -> None:
        if message is None or message.key in self._seen:  # planned twice in one run: once is enough
            return
        self._seen.add(message.key)
        self._buffer.append(message)
        if len(self._buffer) >= self._chunk:
            self._flush()
            self._chunk = CHUNK_SIZE

    def add_all(self, messages: Iterable[Schedulable]) -> None:
        for message in messages:
            self.add(message)

    def finish(self) -> FanoutSummary:
        try:
            self._flush()
            while self._pending:
                self._settle()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        return self.report

    def _flush(self) -> None:
        messages, self._buffer = self._buffer, []
        if not messages:
            return
        self._load_patients({m.task.patient_id for m in messages if not m.skipped})
        planned: list[Planned] = []
        routed: list[_Routed] = []
        for message in messages:
            task = message.task
            if message.skipped:
                planned.append(Planned(message.key, task.ledger_fields(None), skipped_reason=message.skipped))
                self.report.skipped[message.skipped] += 1
                continue
            patient = self._patients[task.patient_id]
            if isinstance(patient, str):
                # Missing or breaking the contract: the task still goes out, so that the handler records the
                # problem in failed_tasks (where an operator fixes the patient and retries).
                channel: str | None = None
                queue = self.queues.sms
            else:
                channel, reason = first_channel(patient, self.clinics[task.clinic_id])
                if channel is None:
                    planned.append(Planned(message.key, task.ledger_fields(None), skipped_reason=reason))
                    self.report.skipped[reason] += 1
                    continue
                queue = self.queues.sms if channel == SMS else self.queues.email
            planned.append(Planned(message.key, task.ledger_fields(channel)))
            routed.append(_Routed(message, queue))
        try:
            created, existing = self.ledger.schedule(planned)
        except Exception as exc:  # noqa: BLE001 - counted; the run raises after finishing the rest
            self.report.fail(f"ledger commit: {type(exc).__name__}", count=len(routed))
            return
        work = []
        for item in routed:
            key = item.message.key
            if key in created:
                work.append((item, False))
            elif (entry := existing.get(key)) is not None and entry.state == State.SCHEDULED:
                work.append((item, True))  # a crashed run's doc: its task may be missing
            else:
                self.report.already_present += 1
        if work:
            self._submit(work)

    def _submit(self, work: list[tuple[_Routed, bool]]) -> None:
        """Create the chunk's tasks in the background; wait for the oldest chunk first if too many are pending."""
        while len(self._pending) >= MAX_PENDING:
            self._settle()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="fanout-create")
        specs = [
            TaskSpec(
                queue=item.queue,
                business_key=item.message.key,
                payload=item.message.task.to_json(),
                schedule_time=item.message.task.send_at,
            )
            for item, _ in work
        ]
        self._pending.append((start_all(self.tasks, specs, self._pool, concurrency=self.concurrency), work))

    def _settle(self) -> None:
        """Wait for the oldest chunk's creations and count them (on the caller's thread: the report is not shared)."""
        wait, work = self._pending.popleft()
        outcome = wait()
        for spec, problem in outcome.failed:
            self.report.fail(f"task {spec.business_key}: {problem.split(':')[0]}")
        failed = {spec.business_key for spec, _ in outcome.failed}
        for item, recovering in work:
            key = item.message.key
            if key in failed:
                continue
            if key in outcome.present:
                self.report.already_present += 1
            elif recovering:
                self.report.recovered += 1
            else:
                self.report.created += 1

    def _load_patients(self, patient_ids: set[str]) -> None:
        wanted = sorted(patient_ids - set(self._patients))
        for start in range(0, len(wanted), CHUNK_SIZE):
            chunk = wanted[start : start + CHUNK_SIZE]
            found = self.store.get_all([f"{PATIENTS}/{pid}" for pid in chunk])
            for pid in chunk:
                doc = found.get(f"{PATIENTS}/{pid}")
                if doc is None:
                    self._patients[pid] = "patient_missing"
                    self.report.problems["patient_missing"] += 1
                    log.warning("patient of a planned message does not exist", patient_id=pid)
                    continue
                try:
                    self._patients[pid] = Patient.from_doc(pid, doc.data)
                except InvalidDocument as exc:
                    self._patients[pid] = "invalid_patient"
                    self.report.problems["invalid_patient"] += 1
                    log.warning("patient breaks the contract", **exc.where())
