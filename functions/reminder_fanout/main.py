"""reminder_fanout: the reminders tick's coordinator (on_reminders_tick, Pub/Sub reminders-tick), its units
(run_fanout_unit, Cloud Tasks queue reminders-fanout) and appointment events (on_appointment_event).

The tick enqueues one unit per clinic-day and the contract audit's slices (shared/reminders/coordinator.py);
each unit runs in its own invocation behind the same router as the task handler (OIDC for its own URL,
permanent failures and last attempts recorded in failed_tasks, transient ones answered 503 so Cloud
Tasks retries and the retry fills exactly the gap). Appointment events plan their appointment directly.
Wired by shared/wiring/reminder_fanout.py; the Pub/Sub adapter (shared/adapters/pubsub_job.py) says
which events are acknowledged and which redelivered.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.wiring import reminder_fanout as wiring


@functions_framework.cloud_event
def on_reminders_tick(cloud_event: Any) -> None:
    wiring.REMINDERS_TICK(cloud_event)


@functions_framework.http
def run_fanout_unit(request: Any) -> Any:
    return wiring.unit_router().handle(request.headers, request.get_data(cache=False))


@functions_framework.cloud_event
def on_appointment_event(cloud_event: Any) -> None:
    wiring.APPOINTMENT_EVENT(cloud_event)
