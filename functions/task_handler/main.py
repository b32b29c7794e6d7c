"""task_handler: Cloud Tasks delivers each message task here (handle_task); Twilio and SendGrid report
delivery (twilio_status, sendgrid_events); a scheduled sweep records messages stuck past every retry and
re-enqueues the failed tasks operators marked "retry" (sweep_failed_tasks).

Each is its own Cloud Function: the task types (every domain of shared/) are imported by the two that
route them, on their first call, so the webhooks start with the ledger and their verifier only.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import functions_framework

from shared.messaging.email_events import apply_events, headers_of, verification_key, verify_sendgrid_signature
from shared.messaging.ledger import Ledger
from shared.messaging.status_callbacks import apply_status, callback_url, verify_twilio_signature
from shared.platform import clients, log, resources
from shared.platform.clock import system_clock
from shared.platform.errors import MedspaError
from shared.platform.http import json_response, to_response
from shared.platform.settings import settings

if TYPE_CHECKING:
    from shared.tasks.router import TaskRouter


@functools.cache
def router() -> TaskRouter:
    """Real adapters, wired once per instance."""
    from shared.task_types import task_types
    from shared.tasks.auth import TaskAuthenticator
    from shared.tasks.failed_tasks import FailedTasks
    from shared.tasks.router import TaskRouter

    config = settings()
    return TaskRouter(
        authenticator=TaskAuthenticator(config),
        failures=FailedTasks(clients.store(), system_clock),
        max_attempts=config.queue_max_attempts,
        types=task_types(),
    )


@functions_framework.http
def handle_task(request):
    return router().handle(request.headers, request.get_data(cache=False))


@functions_framework.http
def twilio_status(request):
    signed_url = callback_url(settings().status_callback_url, request.query_string)
    params = request.form.to_dict()
    try:
        verify_twilio_signature(
            clients.secret("TWILIO_AUTH_TOKEN"), signed_url, params, request.headers.get("X-Twilio-Signature")
        )
    except MedspaError as exc:
        log.warning("status callback refused", error_code=exc.code)
        return to_response(exc)
    outcome = apply_status(Ledger(clients.store(), system_clock), request.args.to_dict(), params, _record_failure)
    return json_response({"outcome": outcome})


@functions_framework.http
def sendgrid_events(request):
    body = request.get_data(cache=False)
    try:
        verify_sendgrid_signature(verification_key(clients.secret), body, *headers_of(request.headers))
    except MedspaError as exc:  # a forged batch (403), or no key configured yet (503: SendGrid retries it)
        log.warning("email event batch refused", error_code=exc.code)
        return to_response(exc)
    return json_response({"outcomes": apply_events(Ledger(clients.store(), system_clock), body, _record_failure)})


def _record_failure(key: str, replayed: bool) -> None:
    """A message the provider failed after accepting it: in failed_tasks, like every failure (the task types
    are imported on the first such callback only)."""
    from shared.messaging.stuck import record_provider_failure
    from shared.task_types import task_types
    from shared.tasks.failed_tasks import FailedTasks

    store = clients.store()
    ledger, failures = Ledger(store, system_clock), FailedTasks(store, system_clock)
    record_provider_failure(ledger, failures, task_types(), key, replayed=replayed)


@functions_framework.cloud_event
def sweep_failed_tasks(event):
    from shared.messaging.stuck import record_stuck
    from shared.reminders.units import UNIT_NOTES
    from shared.task_types import task_types
    from shared.tasks.failed_tasks import FailedTasks
    from shared.tasks.queue import CloudTasksQueue
    from shared.tasks.sweep import RetrySweep

    failures = FailedTasks(clients.store(), system_clock)
    with log.bound(event_id=event["id"]):
        record_stuck(Ledger(clients.store(), system_clock), failures, task_types(), system_clock)
        RetrySweep(
            failures,
            CloudTasksQueue(clients.tasks(), settings()),
            task_types(),
            queues=resources.QUEUES,
            redone_elsewhere=UNIT_NOTES,
        ).run()
