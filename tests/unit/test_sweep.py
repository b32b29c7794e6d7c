"""The retry sweep on the fakes: every operator edit it cannot use gets a note and the sweep goes on;
usable docs are resolved, deferred or re-enqueued exactly once, whatever races them."""

from __future__ import annotations

from typing import Any

import pytest

from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.ledger import Ledger, Planned
from shared.reminders.units import UNIT_NOTES
from shared.tasks.failed_tasks import FailedTasks, Status
from shared.tasks.router import Outcome, TaskType
from shared.tasks.router import Status as Ended
from shared.tasks.sweep import RetrySweep
from tests.builders import NOW, World
from tests.fakes import RecordingQueue

QUEUES = ("reminders-sms", "reminders-email")


class Setup:
    def __init__(self) -> None:
        self.world = World()
        self.store, self.clock = self.world.store, self.world.clock
        self.queue = RecordingQueue()
        self.failures = FailedTasks(self.store, self.clock)
        self.before_reopen: Any = None  # runs once, before the next reopen: a rival's turn
        self.reopen_fails: list[BaseException] = []  # the next reopens raise these

    def reopen(self, task: AppointmentTask) -> Any:
        hook, self.before_reopen = self.before_reopen, None
        if hook:
            hook()
        if self.reopen_fails:
            raise self.reopen_fails.pop(0)
        return Ledger(self.store, self.clock).reopen(task.dedup_key)

    def types(self) -> dict[str, TaskType[AppointmentTask]]:
        return {
            "appointment_reminder": TaskType(
                name="appointment_reminder",
                body=AppointmentTask,
                queue="reminders-sms",
                run=lambda task, attempt: Outcome(Ended.DONE),
                reopen=self.reopen,
            )
        }

    def sweep(self) -> RetrySweep:
        return RetrySweep(self.failures, self.queue, self.types(), queues=QUEUES)

    def failed(self, name: str = "a", **fields: Any) -> tuple[str, AppointmentTask]:
        """A failed_tasks doc for a real reminder, marked retry, as the handler and an operator leave it."""
        task = self.world.task(self.world.appointment(self.world.patient()))
        doc = {
            "task_type": "appointment_reminder",
            "payload": task.to_json(),
            "error_code": "invalid_number",
            "status": "retry",
            "queue": "reminders-sms",
            "clinic_id": "clinic-t",
        }
        doc.update(fields)
        self.store.seed(f"failed_tasks/{task.dedup_key}", {k: v for k, v in doc.items() if v is not ...})
        return task.dedup_key, task

    def doc(self, doc_id: str) -> dict[str, Any]:
        return self.store.doc(f"failed_tasks/{doc_id}") or {}


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_a_failure_marked_retry_is_reenqueued_once_under_its_generation(setup):
    doc_id, task = setup.failed()
    report = setup.sweep().run()
    assert report.requeued == [doc_id]
    (spec,) = setup.queue.created
    assert spec.business_key == f"{doc_id}#retry1" and spec.queue == "reminders-sms" and spec.payload == task.to_json()
    doc = setup.doc(doc_id)
    assert doc["status"] == "retried" and doc["retry_generation"] == 1 and doc["retried_at"] == NOW
    assert setup.sweep().run().summary() == {k: 0 for k in report.summary()}  # nothing left marked retry
    assert len(setup.queue.created) == 1


def test_a_failed_ledger_doc_is_reopened_for_the_retry(setup):
    doc_id, task = setup.failed()
    ledger = Ledger(setup.store, setup.clock)
    ledger.schedule([Planned(task.dedup_key, {})])
    ledger.fail(ledger.claim(task.dedup_key, ledger.read(task.dedup_key), {}), "invalid_number")
    assert setup.sweep().run().requeued == [doc_id]
    entry = setup.world.entry(task.dedup_key)
    assert entry["state"] == "scheduled" and entry["reason"] == "operator_retry"


def test_a_second_retry_of_the_same_doc_gets_the_next_generation(setup):
    doc_id, task = setup.failed()
    setup.sweep().run()
    assert not setup.failures.request_retry(doc_id)  # retried: its task is in the queue, not the operator's
    setup.failures.record(  # the retried task failed again: the handler records it on the same doc
        doc_id,
        task_type="appointment_reminder",
        task_name="t-2",
        payload=task.to_json(),
        error_code="invalid_number",
        error="rejected",
        http_status=200,
        attempts=1,
    )
    assert setup.doc(doc_id)["status"] == "open" and setup.doc(doc_id)["retry_generation"] == 1
    assert setup.failures.request_retry(doc_id)
    setup.sweep().run()
    assert [s.business_key for s in setup.queue.created] == [f"{doc_id}#retry1", f"{doc_id}#retry2"]


@pytest.mark.parametrize(
    ("edit", "note"),
    [
        (lambda payload: {"task_type": "teleport"}, "unknown task type"),
        (lambda payload: {"task_type": 42}, "unknown task type"),
        (lambda payload: {"task_type": None}, "unknown task type"),
        (lambda payload: {"payload": ...}, "no payload"),
        (lambda payload: {"payload": "appointment"}, "no payload"),
        (lambda payload: {"payload": ["a"]}, "no payload"),
        (lambda payload: {"payload": {"type": "appointment_reminder"}}, "does not parse (unsupported_version)"),
        (lambda payload: {"payload": {**payload, "dedup_key": ".."}}, "does not parse (bad_payload)"),
        (lambda payload: {"payload": {**payload, "send_at": "yesterday"}}, "does not parse (bad_payload)"),
        (lambda payload: {"retry_generation": "abc"}, "retry_generation must be a whole number"),
        (lambda payload: {"retry_generation": -1}, "retry_generation must be a whole number"),
        (lambda payload: {"retry_generation": 1.5}, "retry_generation must be a whole number"),
        (lambda payload: {"retry_generation": True}, "retry_generation must be a whole number"),
        (lambda payload: {"retry_generation": 10**7}, "retry_generation must be a whole number"),
    ],
)
def test_a_doc_the_sweep_cannot_use_goes_back_to_open_with_a_note_and_the_rest_go_on(setup, edit, note):
    """Operators edit failed_tasks by hand in the console: one bad edit must not stop any other retry."""
    good_before, _ = setup.failed()
    bad, task = setup.failed()
    setup.store.seed(f"failed_tasks/{bad}", {**setup.doc(bad), **edit(task.to_json())})
    setup.store.seed(f"failed_tasks/{bad}", {k: v for k, v in setup.doc(bad).items() if v is not ...})
    good_after, _ = setup.failed()
    report = setup.sweep().run()
    assert report.not_retryable == [bad] and sorted(report.requeued) == sorted([good_before, good_after])
    assert setup.doc(bad)["status"] == "open" and note in setup.doc(bad)["note"]
    assert {s.business_key for s in setup.queue.created} == {f"{good_before}#retry1", f"{good_after}#retry1"}


def test_a_type_redone_elsewhere_gets_its_own_note_and_nothing_is_enqueued(setup):
    # A fan-out unit's failure (its own function and queue): the note says how an operator redoes it.
    doc_id, _ = setup.failed(task_type="fanout_clinic_day", payload={"type": "fanout_clinic_day"})
    sweep = RetrySweep(setup.failures, setup.queue, setup.types(), queues=QUEUES, redone_elsewhere=UNIT_NOTES)
    report = sweep.run()
    assert report.not_retryable == [doc_id] and setup.queue.created == []
    assert setup.doc(doc_id)["status"] == "open" and "ops replay-tick" in setup.doc(doc_id)["note"]


def test_a_missing_or_null_generation_counts_as_zero(setup):
    doc_id, _ = setup.failed(retry_generation=None)
    assert setup.sweep().run().requeued == [doc_id] and setup.doc(doc_id)["retry_generation"] == 1


@pytest.mark.parametrize(
    ("queue", "used"), [("reminders-email", "reminders-email"), ("no-such-queue", "reminders-sms")]
)
def test_the_task_goes_back_to_its_queue_when_it_is_known_else_to_its_types(setup, queue, used):
    setup.failed(queue=queue)
    setup.sweep().run()
    assert setup.queue.created[0].queue == used


def test_a_message_already_sent_is_resolved_not_resent(setup):
    doc_id, task = setup.failed()
    ledger = Ledger(setup.store, setup.clock)
    ledger.mark_sent(ledger.claim(task.dedup_key, None, {}), channel="email", provider_message_id="e-1")
    report = setup.sweep().run()
    assert report.already_done == [doc_id] and setup.queue.created == []
    doc = setup.doc(doc_id)
    assert doc["status"] == "resolved" and "nothing to re-send" in doc["note"] and doc["resolved_at"] == NOW


def test_a_live_claim_is_deferred_and_stays_marked_retry(setup):
    doc_id, task = setup.failed()
    ledger = Ledger(setup.store, setup.clock)
    ledger.claim(task.dedup_key, None, {})
    report = setup.sweep().run()
    assert report.in_flight == [doc_id] and setup.queue.created == []
    assert setup.doc(doc_id)["status"] == "retry" and "in flight" in setup.doc(doc_id)["note"]
    assert setup.world.entry(task.dedup_key)["state"] == "sending"  # never reopened


def test_two_sweeps_racing_on_one_doc_enqueue_it_once(setup):
    doc_id, _ = setup.failed()
    rival = setup.sweep()
    setup.before_reopen = lambda: rival.run()  # the rival sweeps between our read and our claim
    report = setup.sweep().run()
    assert report.lost_race == [doc_id] and report.requeued == []
    assert [s.business_key for s in setup.queue.created] == [f"{doc_id}#retry1"]
    assert setup.doc(doc_id)["retry_generation"] == 1


def test_a_failed_reenqueue_puts_the_doc_back_for_the_next_sweep(setup):
    doc_id, _ = setup.failed()
    setup.queue.fail_with.append(ConnectionError("tasks unavailable"))
    report = setup.sweep().run()
    assert report.failed == [doc_id] and setup.queue.created == []
    doc = setup.doc(doc_id)
    assert doc["status"] == "retry" and "re-enqueue failed: ConnectionError" in doc["note"]
    assert setup.sweep().run().requeued == [doc_id]
    assert [s.business_key for s in setup.queue.created] == [f"{doc_id}#retry2"]  # generation 1 was used up


def test_one_doc_whose_state_cannot_be_read_does_not_stop_the_others(setup, capsys):
    first, _ = setup.failed()
    second, _ = setup.failed()
    setup.reopen_fails.append(ConnectionError("firestore unavailable"))
    report = setup.sweep().run()
    assert len(report.failed) == 1 and len(report.requeued) == 1
    assert set(report.failed + report.requeued) == {first, second}
    assert setup.doc(report.failed[0])["status"] == "retry"  # untouched: the next sweep tries it again
    assert "retry sweep could not handle a failed task" in capsys.readouterr().out


def test_only_one_doc_can_be_swept_by_id(setup):
    wanted, _ = setup.failed()
    other, _ = setup.failed()
    assert setup.sweep().run(only=wanted).requeued == [wanted]
    assert setup.doc(other)["status"] == "retry"
    assert setup.sweep().run(only="no-such-doc").summary()["requeued"] == 0
    assert setup.sweep().run(only=wanted).requeued == []  # retried already: not marked retry any more


def test_a_type_without_a_reopen_hook_is_reenqueued_as_it_stands(setup):
    doc_id, _ = setup.failed()
    types = {name: TaskType(**{**vars(kind), "reopen": None}) for name, kind in setup.types().items()}
    assert RetrySweep(setup.failures, setup.queue, types, queues=QUEUES).run().requeued == [doc_id]


def test_operator_transitions_of_failed_tasks(setup):
    doc_id, _ = setup.failed(status="open")
    assert [d.id for d in setup.failures.open_failures(error_code="invalid_number", clinic_id="clinic-t")] == [doc_id]
    assert list(setup.failures.open_failures(error_code="other")) == []
    assert setup.failures.request_retry(doc_id) and setup.doc(doc_id)["status"] == Status.RETRY
    assert [d.id for d in setup.failures.open_failures(status=Status.RETRY, limit=5)] == [doc_id]
    setup.sweep().run()
    assert not setup.failures.request_retry(doc_id)  # retried: in the queue already, not for an operator
    assert not setup.failures.request_retry("no-such-doc") and not setup.failures.request_retry("..")
    assert setup.failures.read("__x__") is None
