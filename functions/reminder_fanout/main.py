"""reminder_fanout: Pub/Sub reminders-tick (on_reminders_tick) and appointment-events (on_appointment_event).

Both parse the envelope once, run one service with the real adapters and log one summary line. A
rejected event (malformed, unknown clinic, missing appointment) is logged and acknowledged; a run with
failed creations raises after logging, so Pub/Sub redelivers and the retry fills exactly the gap.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import functions_framework

from shared.contract import events
from shared.platform import clients, log
from shared.platform.clock import system_clock
from shared.platform.errors import PermanentError
from shared.platform.settings import settings
from shared.reminders import fanout
from shared.tasks.queue import CloudTasksQueue


@functools.cache
def collaborators() -> dict[str, Any]:
    """Real adapters, wired once per instance."""
    config = settings()
    return {"db": clients.firestore(), "tasks": CloudTasksQueue(clients.tasks(), config, system_clock),
            "settings": config, "clock": system_clock}


@functions_framework.cloud_event
def on_reminders_tick(cloud_event: Any) -> None:
    started = time.monotonic()
    with log.bound(event_id=cloud_event["id"]):
        try:
            request = events.tick_request(cloud_event)
            report = fanout.run_tick(request, **collaborators())
        except PermanentError as exc:
            log.warning("reminders tick rejected; acknowledged", error_code=exc.code, error=str(exc))
            return  # don't retry: the same bytes would fail the same way
        log.info("reminders tick done", date=request.date, clinic_id=request.clinic_id,
                 seconds=round(time.monotonic() - started, 2), **report.summary())
        report.raise_if_failed()  # retry


@functions_framework.cloud_event
def on_appointment_event(cloud_event: Any) -> None:
    started = time.monotonic()
    with log.bound(event_id=cloud_event["id"]):
        try:
            event = events.appointment_event(cloud_event)
            report = fanout.handle_appointment_event(event, **collaborators())
        except PermanentError as exc:
            log.warning("appointment event rejected; acknowledged", error_code=exc.code, error=str(exc))
            return  # don't retry: an unknown event or a missing document will not fix itself
        log.info("appointment event done", appointment_id=event.appointment_id,
                 seconds=round(time.monotonic() - started, 2), **report.summary())
        report.raise_if_failed()  # retry
