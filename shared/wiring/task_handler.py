"""task_handler's composition root: the task router and its table of task types, the providers' signed
webhooks, and the retry sweep (functions/task_handler/main.py names them)."""

from __future__ import annotations

import functools
from typing import Any

from shared.adapters.signed_webhook import SignedWebhook
from shared.booking_recovery import tasks as booking_tasks
from shared.campaigns import tasks as campaign_tasks
from shared.feedback import tasks as feedback_tasks
from shared.messaging import appointment_tasks
from shared.platform import clients, log
from shared.platform.http import Response, json_response
from shared.rebooking import tasks as rebooking_tasks
from shared.reports import tasks as report_tasks
from shared.tasks.declaration import Declaration, bind_all
from shared.tasks.router import TaskRouter, TaskType
from shared.waitlist import tasks as waitlist_tasks
from shared.wiring.services import Services, services

# Every task type the task handler runs, each declared beside its service.
DECLARATIONS: tuple[Declaration[Any, Any], ...] = (
    *appointment_tasks.DECLARATIONS,
    *waitlist_tasks.DECLARATIONS,
    *report_tasks.DECLARATIONS,
    *campaign_tasks.DECLARATIONS,
    *rebooking_tasks.DECLARATIONS,
    *booking_tasks.DECLARATIONS,
    *feedback_tasks.DECLARATIONS,
)


def bind(wired: Services) -> dict[str, TaskType[Any]]:
    """The declarations bound to `wired`'s services (each built when its first task arrives)."""
    providers: dict[Any, Any] = {
        appointment_tasks.APPOINTMENT_MESSAGES: lambda: wired.appointment_messages,
        waitlist_tasks.WAITLIST_MESSAGES: lambda: wired.waitlist_messages,
        waitlist_tasks.WAVES: lambda: wired.waves,
        report_tasks.STAFF_EMAILS: lambda: wired.staff_emails,
        campaign_tasks.CAMPAIGN_REPORT_EMAILS: lambda: wired.campaign_report_emails,
        campaign_tasks.CAMPAIGN_PLANNER: lambda: wired.campaign_planner,
        campaign_tasks.CAMPAIGN_MESSAGES: lambda: wired.campaign_messages,
        rebooking_tasks.REBOOKING_MESSAGES: lambda: wired.rebooking_messages,
        booking_tasks.BOOKING_NUDGES: lambda: wired.booking_nudges,
        feedback_tasks.FEEDBACK_MESSAGES: lambda: wired.feedback_messages,
    }
    return bind_all(DECLARATIONS, providers, wired.config.queue)


@functools.cache
def task_types() -> dict[str, TaskType[Any]]:
    return bind(services())


@functools.cache
def router() -> TaskRouter:
    from shared.tasks.auth import TaskAuthenticator

    wired = services()
    return TaskRouter(
        authenticator=TaskAuthenticator(wired.config),
        failures=wired.failures,
        max_attempts=wired.config.queue_max_attempts,
        types=task_types(),
    )


def record_failure(key: str, replayed: bool) -> None:
    """A message the provider failed after accepting it: in failed_tasks, like every failure."""
    from shared.messaging.stuck import record_provider_failure

    wired = services()
    record_provider_failure(wired.ledger, wired.failures, task_types(), key, replayed=replayed)


@functools.cache
def twilio_status() -> SignedWebhook:
    from shared.messaging.status_callbacks import apply_status, verify_twilio_request

    def verify(request: Any) -> None:
        verify_twilio_request(request, services().config.status_callback_url)

    def run(request: Any) -> Response:
        wired = services()
        outcome = apply_status(
            wired.ledger, request.args.to_dict(), request.form.to_dict(), record_failure, wired.evidence
        )
        return json_response({"outcome": outcome})

    return SignedWebhook("status callback", verify, run)


@functools.cache
def sendgrid_events() -> SignedWebhook:
    from shared.messaging.email_events import apply_events, headers_of, verification_key, verify_sendgrid_signature

    def verify(request: Any) -> None:
        body = request.get_data(cache=True)
        verify_sendgrid_signature(verification_key(clients.secret), body, *headers_of(request.headers))

    def run(request: Any) -> Response:
        wired = services()
        return json_response(
            {"outcomes": apply_events(wired.ledger, request.get_data(), record_failure, wired.evidence)}
        )

    return SignedWebhook("email event batch", verify, run)


def sweep_failed_tasks(event_id: str) -> None:
    """Record the messages stuck past every retry, then re-enqueue the failed tasks operators marked retry."""
    from shared.messaging.stuck import record_stuck
    from shared.platform import resources
    from shared.reminders.units import UNIT_NOTES
    from shared.tasks.sweep import RetrySweep

    wired = services()
    with log.bound(event_id=event_id):
        record_stuck(wired.ledger, wired.failures, task_types(), wired.clock)
        RetrySweep(
            wired.failures,
            wired.tasks,
            task_types(),
            queues=resources.QUEUES,
            redone_elsewhere=UNIT_NOTES,
        ).run()
