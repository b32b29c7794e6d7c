"""The Cloud Tasks emulator wrapper refuses a task name Cloud Tasks would refuse (queued, run in the last
hour, or in a purged or deleted queue), and keeps doing so in constant time per create."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core.exceptions import AlreadyExists
from google.cloud import tasks_v2

from local.tasks_emulator import CloudLikeQueues, Retries

QUEUE = "projects/p/locations/l/queues/q"


class UpstreamState:
    """The parts of gcloud-tasks-emulator's QueueState the wrapper patches (a task runs once, then leaves)."""

    def __init__(self) -> None:
        self._queue_tasks: dict[str, list[Any]] = {QUEUE: [], QUEUE + "2": []}

    def create_task(self, queue: str, task: Any) -> Any:
        self._queue_tasks[queue].append(task)
        return task

    def submit_task(self, task_name: str, force_run: bool = False) -> Any:
        queue = task_name.rsplit("/", 2)[0]
        (task,) = [t for t in self._queue_tasks[queue] if t.name == task_name]
        self._queue_tasks[queue].remove(task)
        return task

    def list_tasks(self, queue_name: str) -> list[Any]:
        return list(self._queue_tasks[queue_name])

    def purge_queue(self, queue_name: str) -> None:
        self._queue_tasks[queue_name] = []

    def delete_queue(self, name: str) -> None:
        self._queue_tasks.pop(name, None)


@pytest.fixture
def state() -> UpstreamState:
    upstream = UpstreamState()
    CloudLikeQueues(None, 1, Retries()).patch(upstream)
    return upstream


def task(name: str, queue: str = QUEUE) -> Any:
    return tasks_v2.Task(name=f"{queue}/tasks/{name}")


def test_a_queued_name_and_a_name_that_ran_are_refused(state):
    state.create_task(QUEUE, task("a"))
    with pytest.raises(AlreadyExists):
        state.create_task(QUEUE, task("a"))
    state.submit_task(f"{QUEUE}/tasks/a")
    with pytest.raises(AlreadyExists):
        state.create_task(QUEUE, task("a"))
    state.create_task(QUEUE, task("b"))


def test_names_of_a_purged_or_deleted_queue_stay_refused(state):
    state.create_task(QUEUE, task("a"))
    state.create_task(QUEUE + "2", task("b", QUEUE + "2"))
    state.purge_queue(QUEUE)
    state.delete_queue(QUEUE + "2")
    with pytest.raises(AlreadyExists):
        state.create_task(QUEUE, task("a"))
    state._queue_tasks[QUEUE + "2"] = []
    with pytest.raises(AlreadyExists):
        state.create_task(QUEUE + "2", task("b", QUEUE + "2"))


def test_with_thousands_of_tasks_queued_a_seen_name_is_still_refused(state):
    for index in range(5000):
        state.create_task(QUEUE, task(f"t{index}"))
    with pytest.raises(AlreadyExists):
        state.create_task(QUEUE, task("t4999"))
    assert len(state.list_tasks(QUEUE)) == 5000


class LookingUpstream(UpstreamState):
    """Upstream's submit_task for a task not yet due: out of the queue to look at it, then back at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.meanwhile: list[set[str]] = []

    def submit_task(self, task_name: str, force_run: bool = False) -> Any:
        queue = task_name.rsplit("/", 2)[0]
        (held,) = [t for t in self._queue_tasks[queue] if t.name == task_name]
        self._queue_tasks[queue].remove(held)
        self.meanwhile.append(listed(self, queue))  # a ListTasks served while the task is out
        self._queue_tasks[queue].append(held)
        return held


def listed(upstream: Any, queue: str) -> set[str]:
    return {t.name.rsplit("/", 1)[1] for t in upstream.list_tasks(queue)}


def test_a_task_upstream_holds_out_of_its_queue_is_still_listed():
    """Cloud Tasks lists every task not yet done; upstream took a task out of its list each time it looked."""
    upstream = LookingUpstream()
    CloudLikeQueues(None, 1, Retries()).patch(upstream)
    upstream.create_task(QUEUE, task("later"))
    upstream.create_task(QUEUE, task("other"))
    upstream.submit_task(f"{QUEUE}/tasks/later")
    assert upstream.meanwhile == [{"later", "other"}]
    assert listed(upstream, QUEUE) == {"later", "other"}


def test_a_task_purged_while_its_queue_walked_a_copy_of_the_list_is_skipped_and_the_queue_goes_on(state):
    state.create_task(QUEUE, task("a"))
    state.create_task(QUEUE, task("b"))
    snapshot = list(state._queue_tasks[QUEUE])  # what the queue's thread walks
    state.purge_queue(QUEUE)
    assert [state.submit_task(t.name) for t in snapshot] == [None, None]  # upstream: NotFound, thread gone
    state.create_task(QUEUE, task("c"))
    assert state.submit_task(f"{QUEUE}/tasks/c").name.endswith("/c")
