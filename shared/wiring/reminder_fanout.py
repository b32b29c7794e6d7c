"""reminder_fanout's composition root: the reminders tick's coordinator, its units behind their own
router, and appointment events, among them the platform's consent.recorded (shared/consent/intake.py) and
booking sessions' events (shared/booking_recovery/intake.py; functions/reminder_fanout/main.py names them)."""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from typing import Any

from shared.adapters.pubsub_job import PubSubJob, RunResult
from shared.contract import events
from shared.reminders import fanout
from shared.reminders.coordinator import coordinate_tick
from shared.tasks.declaration import bind_all
from shared.tasks.router import TaskRouter
from shared.wiring.services import services


def _tick(request: events.TickRequest, now: datetime) -> RunResult:
    return coordinate_tick(request, services().fanout(units=True), now=now)


def _appointment_event(event: events.PlatformEvent, now: datetime) -> RunResult:
    if isinstance(event, events.ConsentRecorded):
        from shared.consent.intake import record_platform_consent

        return record_platform_consent(event, store=services().store, clock=services().clock)
    if isinstance(event, events.BookingEvent):
        from shared.booking_recovery.intake import handle_booking_event

        return handle_booking_event(event, services().fanout(units=False), now=now)
    return fanout.handle_appointment_event(event, services().fanout(units=False), now=now)


REMINDERS_TICK = PubSubJob(
    "reminders tick",
    events.parse_tick,
    _tick,
    max_age=lambda: services().config.max_event_age_seconds,
    describe=lambda request: {"date": request.date, "clinic_id": request.clinic_id},
)
APPOINTMENT_EVENT = PubSubJob(
    "appointment event",
    events.parse_platform_event,
    _appointment_event,
    describe=lambda event: (
        {"appointment_id": event.appointment_id}
        if isinstance(event, events.AppointmentEvent)
        else {"session_id": event.session_id}
        if isinstance(event, events.BookingEvent)
        else {"consent_event_id": event.event_id, "patient_id": event.patient_id}
    ),
)


@functools.cache
def unit_router() -> TaskRouter:
    """The units' boundary: the task handler's router, for this function's own URL and the unit types."""
    from shared.tasks.auth import TaskAuthenticator

    wired = services()
    audience = wired.unit_target.audience
    providers: dict[Any, Any] = {fanout.FANOUT: lambda: wired.fanout(units=True)}
    return TaskRouter(
        authenticator=TaskAuthenticator(dataclasses.replace(wired.config, task_audience=audience)),
        failures=wired.failures,
        max_attempts=wired.config.queue_max_attempts,
        types=bind_all(fanout.UNIT_DECLARATIONS, providers, wired.config.queue),
    )
