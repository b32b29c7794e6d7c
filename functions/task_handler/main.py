"""task_handler: Cloud Tasks delivers each message task here (handle_task); Twilio and SendGrid report
delivery (twilio_status, sendgrid_events); a scheduled sweep records messages stuck past every retry and
re-enqueues the failed tasks operators marked "retry" (sweep_failed_tasks).

Each is its own Cloud Function, wired by shared/wiring/task_handler.py; a service is built on the first
request that needs it, so the webhooks start with the ledger and their verifier only.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.wiring import task_handler as wiring


@functions_framework.http
def handle_task(request: Any) -> Any:
    return wiring.router().handle(request.headers, request.get_data(cache=False))


@functions_framework.http
def twilio_status(request: Any) -> Any:
    return wiring.twilio_status()(request)


@functions_framework.http
def sendgrid_events(request: Any) -> Any:
    return wiring.sendgrid_events()(request)


@functions_framework.cloud_event
def sweep_failed_tasks(event: Any) -> None:
    wiring.sweep_failed_tasks(event["id"])
