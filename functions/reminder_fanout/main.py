"""reminder_fanout: Pub/Sub reminders-tick (on_reminders_tick) and appointment-events (on_appointment_event).

Both parse the envelope once, run one service with the real adapters and log one summary line. A
rejected event (malformed, unknown clinic, missing appointment, too old) is logged and acknowledged; a
run with failed creations raises after logging, so Pub/Sub redelivers and the retry fills exactly the gap.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import functions_framework

from shared.contract import events
from shared.contract.freshness import too_old
from shared.platform import clients, log
from shared.platform.clock import system_clock
from shared.platform.errors import PermanentError
from shared.platform.settings import settings
from shared.reminders import fanout
from shared.reminders.scheduler import Queues
from shared.tasks.queue import CloudTasksQueue


@functools.cache
def service() -> fanout.Fanout:
    """Real adapters, wired once per instance."""
    config = settings()
    return fanout.Fanout(
        store=clients.store(),
        tasks=CloudTasksQueue(clients.tasks(), config),
        queues=Queues(sms=config.queue_sms, email=config.queue_email),
        clock=system_clock,
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
            report = fanout.run_tick(request, service(), now=envelope.time or system_clock.now())
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
