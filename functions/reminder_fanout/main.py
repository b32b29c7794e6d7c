"""reminder_fanout: the reminders tick's coordinator (on_reminders_tick, Pub/Sub reminders-tick), its units
(run_fanout_unit, Cloud Tasks queue reminders-fanout) and appointment events (on_appointment_event).

The tick enqueues one unit per clinic-day and the contract audit's slices (shared.reminders.coordinator);
each unit runs in its own invocation behind the same router as the task handler (OIDC for its own URL,
permanent failures and last attempts recorded in failed_tasks, transient ones answered 503 so Cloud
Tasks retries and the retry fills exactly the gap). Appointment events plan their appointment directly.
A rejected event (malformed, unknown clinic, missing appointment, too old) is logged and acknowledged;
a run with failed creations raises after logging, so Pub/Sub redelivers.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import TYPE_CHECKING, Any

import functions_framework

from shared.contract import events
from shared.contract.freshness import too_old
from shared.platform import clients, log
from shared.platform.clock import system_clock
from shared.platform.errors import PermanentError
from shared.platform.settings import settings
from shared.reminders import config as fanout_config
from shared.reminders import fanout
from shared.reminders.coordinator import coordinate_tick
from shared.reminders.scheduler import Queues
from shared.tasks.queue import CloudTasksQueue

if TYPE_CHECKING:
    from shared.tasks.router import TaskRouter


@functools.cache
def service(units: bool = False) -> fanout.Fanout:
    """Real adapters, wired once per instance; with `units`, the queue that runs the tick's units."""
    config = settings()
    unit_queue = None
    if units:
        target = fanout_config.unit_target()
        unit_queue = fanout.UnitQueue(
            CloudTasksQueue(clients.tasks(), config, target=target), fanout_config.fanout_queue()
        )
    return fanout.Fanout(
        store=clients.store(),
        tasks=CloudTasksQueue(clients.tasks(), config),
        queues=Queues(sms=config.queue_sms, email=config.queue_email),
        clock=system_clock,
        units=unit_queue,
    )


def _unit_service() -> fanout.Fanout:
    return service(units=True)


@functools.cache
def unit_router() -> TaskRouter:
    """The units' boundary: the task handler's router, for this function's own URL and the unit types."""
    from shared.tasks.auth import TaskAuthenticator
    from shared.tasks.failed_tasks import FailedTasks
    from shared.tasks.router import TaskRouter

    config = settings()
    audience = fanout_config.unit_target().audience
    return TaskRouter(
        authenticator=TaskAuthenticator(dataclasses.replace(config, task_audience=audience)),
        failures=FailedTasks(clients.store(), system_clock),
        max_attempts=config.queue_max_attempts,
        types=fanout.unit_types(_unit_service, fanout_config.fanout_queue()),
    )


@functions_framework.cloud_event
def on_reminders_tick(cloud_event: Any) -> None:
    started = time.monotonic()
    with log.bound(event_id=cloud_event["id"]):
        try:
            envelope = events.envelope(cloud_event)
            request = events.parse_tick(envelope.data)
            age = too_old(envelope, system_clock.now(), settings().max_event_age_seconds)
            if age is not None:
                log.warning("reminders tick too old to run; acknowledged", age_seconds=int(age.total_seconds()))
                return  # don't retry: a tick this late would plan a day that has moved on
            report = coordinate_tick(request, service(units=True), now=envelope.time or system_clock.now())
        except PermanentError as exc:
            log.warning("reminders tick rejected; acknowledged", error_code=exc.code, error=str(exc))
            return  # don't retry: the same bytes would fail the same way
        log.info(
            "reminders tick done",
            date=request.date,
            clinic_id=request.clinic_id,
            seconds=round(time.monotonic() - started, 2),
            **report.summary(),
        )
        report.raise_if_failed()  # retry


@functions_framework.http
def run_fanout_unit(request: Any) -> Any:
    return unit_router().handle(request.headers, request.get_data(cache=False))


@functions_framework.cloud_event
def on_appointment_event(cloud_event: Any) -> None:
    started = time.monotonic()
    with log.bound(event_id=cloud_event["id"]):
        try:
            event = events.parse_appointment_event(events.envelope(cloud_event).data)
            report = fanout.handle_appointment_event(event, service(), now=system_clock.now())
        except PermanentError as exc:
            log.warning("appointment event rejected; acknowledged", error_code=exc.code, error=str(exc))
            return  # don't retry: an unknown event or a missing document will not fix itself
        log.info(
            "appointment event done",
            appointment_id=event.appointment_id,
            seconds=round(time.monotonic() - started, 2),
            **report.summary(),
        )
        report.raise_if_failed()  # retry
