"""The task types of rebooking nudges and "we missed you" messages (docs/rebooking.md): appointment
messages (shared.messaging.appointment_tasks.AppointmentTask bodies: ids and instants only), planned by
the reminders tick, run by shared/rebooking/sending.py's RebookingMessages."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from shared.messaging.appointment_tasks import AppointmentTask
from shared.tasks.declaration import Declaration, Queue, Service

if TYPE_CHECKING:
    from shared.rebooking.sending import RebookingMessages
    from shared.tasks.declaration import Reopen
    from shared.tasks.router import Attempt, Outcome

REBOOK = "rebook_nudge"  # marketing: needs marketing SMS consent (docs/rebooking.md)
NO_SHOW = "no_show_message"  # transactional: about the patient's own missed visit
KINDS = (REBOOK, NO_SHOW)

REBOOKING_MESSAGES: Service[RebookingMessages] = Service("rebooking_messages")


def _deliver(messages: RebookingMessages, task: AppointmentTask, attempt: Attempt) -> Outcome:
    return messages.deliver(task, attempt)


def _reopen(messages: RebookingMessages, task: AppointmentTask) -> Reopen:
    return messages.ledger.reopen(task.dedup_key)


DECLARATIONS = tuple(
    Declaration(
        kind,
        AppointmentTask,
        Queue.SMS,
        REBOOKING_MESSAGES,
        _deliver,
        _reopen,
        partial(AppointmentTask.from_ledger, kinds=KINDS),
    )
    for kind in KINDS
)
