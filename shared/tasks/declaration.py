"""A task type, declared once beside its service: its name, its body, its queue and what runs it.

In the spirit of dramatiq's actors: each domain declares its task types in its own tasks module
(shared/messaging/appointment_tasks.py, shared/waitlist/tasks.py, shared/reports/tasks.py,
shared/reminders/units.py) and a function's wiring module binds them to the services it builds
(shared/wiring/). The declaration names its service by a `Service` key rather than importing it, so a
function imports a domain's service only when that domain's first task arrives (docs/performance.md,
cold starts):

    OFFER = Declaration(
        "waitlist_offer", WaitlistOfferTask, Queue.WAITLIST, WAITLIST_MESSAGES, _deliver_offer, reopen=...
    )

Everything is typed end to end: a declaration's handler takes its own body class, and the router hands it
exactly that (shared/tasks/router.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.tasks.payload import TaskBody

if TYPE_CHECKING:
    from shared.tasks.router import Attempt, Outcome, TaskType

B = TypeVar("B", bound=TaskBody)
S = TypeVar("S")


class Reopen(StrEnum):
    """What making a failed task's state ready for an operator's retry found (the retry sweep acts on it)."""

    REOPENED = "reopened"  # ready for the re-enqueued task
    ALREADY_DONE = "already_done"  # sent, delivered or rightly skipped: nothing to re-send
    IN_FLIGHT = "in_flight"  # a sender holds a live claim: try again later


class Queue(StrEnum):
    """A queue's role; its deployed name comes from Settings (QUEUE_* variables, shared/platform/resources.py)."""

    SMS = "sms"
    EMAIL = "email"
    WAITLIST = "waitlist"
    REPORTS = "reports"
    FANOUT = "fanout"
    CAMPAIGNS = "campaigns"  # one marketing SMS per task, at the campaign rate
    CAMPAIGN_PLANNING = "campaign_planning"  # a campaign's plan and its batches of recipients


@dataclass(frozen=True)
class Service(Generic[S]):
    """The name of a service task types run on; a function's wiring module provides it."""

    name: str


@dataclass(frozen=True)
class Declaration(Generic[B, S]):
    name: str
    body: type[B]
    queue: Queue
    service: Service[S]
    handle: Callable[[S, B, Attempt], Outcome]
    # The retry sweep's hook: make the task's state ready for an operator's retry (omitted: idempotent).
    reopen: Callable[[S, B], Reopen] | None = None
    # The task a ledger doc of this kind was written for (key, doc) → task or None: how a stuck message is
    # recorded in failed_tasks with a payload the retry sweep can re-send (shared/messaging/stuck.py).
    from_ledger: Callable[[str, dict[str, Any]], B | None] | None = None
    # What an operator does with one that failed for good, when the retry sweep must not re-enqueue it.
    redone_elsewhere: str = ""

    def bind(self, provide: Callable[[], S], queue_name: str) -> TaskType[B]:
        from shared.tasks.router import TaskType

        handle, reopen = self.handle, self.reopen
        return TaskType(
            name=self.name,
            body=self.body,
            queue=queue_name,
            run=lambda task, attempt: handle(provide(), task, attempt),
            reopen=(lambda task: reopen(provide(), task)) if reopen else None,
            from_ledger=self.from_ledger,
        )


def bind_all(
    declarations: Iterable[Declaration[Any, Any]],
    services: Mapping[Service[Any], Callable[[], Any]],
    queues: Callable[[Queue], str],
) -> dict[str, TaskType[Any]]:
    """The router's table: each declaration bound to its service's provider and its queue's name."""
    types: dict[str, TaskType[Any]] = {}
    for declaration in declarations:
        if declaration.name in types:
            raise ValueError(f"task type {declaration.name} is declared twice")
        types[declaration.name] = declaration.bind(services[declaration.service], queues(declaration.queue))
    return types
