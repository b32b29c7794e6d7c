"""task_handler: Cloud Tasks delivers each message task here (handle_task); Twilio reports delivery
(twilio_status); a scheduled sweep re-enqueues the failed tasks operators marked "retry" (sweep_failed_tasks)."""

from __future__ import annotations

import functools

import functions_framework

from shared.messaging.delivery import AppointmentMessages
from shared.messaging.ledger import Ledger
from shared.messaging.providers import SendGridEmail, TwilioSms
from shared.messaging.status_callbacks import apply_status, verify_twilio_signature
from shared.platform import clients, log
from shared.platform.clock import system_clock
from shared.platform.errors import MedspaError
from shared.platform.http import json_response, to_response
from shared.platform.settings import settings
from shared.tasks.auth import TaskAuthenticator
from shared.tasks.failed_tasks import FailedTasks
from shared.tasks.payload import APPOINTMENT_TASK_TYPES, parse_appointment_task
from shared.tasks.queue import CloudTasksQueue
from shared.tasks.router import TaskRouter
from shared.tasks.sweep import RetrySweep


@functools.cache
def router() -> TaskRouter:
    """Real adapters, wired once per instance."""
    config, db = settings(), clients.firestore()
    messages = AppointmentMessages(db=db, ledger=Ledger(db, system_clock), clock=system_clock,
                                   sms=TwilioSms(clients.twilio()), email=SendGridEmail(clients.sendgrid()),
                                   status_callback_url=config.status_callback_url)

    def appointment(body: dict) -> object:
        return messages.deliver(parse_appointment_task(body))

    def ids(body: dict) -> dict:
        return parse_appointment_task(body).ids()

    return TaskRouter(authenticator=TaskAuthenticator(config), failures=FailedTasks(db, system_clock),
                      max_attempts=config.queue_max_attempts,
                      handlers={kind: (appointment, ids) for kind in APPOINTMENT_TASK_TYPES})


@functions_framework.http
def handle_task(request):
    return router().handle(request.headers, request.get_data(cache=False))


@functions_framework.http
def twilio_status(request):
    url = settings().status_callback_url + (f"?{request.query_string.decode()}" if request.query_string else "")
    params = request.form.to_dict()
    try:
        verify_twilio_signature(clients.secret("TWILIO_AUTH_TOKEN"), url,
                                params, request.headers.get("X-Twilio-Signature"))
        outcome = apply_status(clients.firestore(), system_clock, request.args.get("ledger", ""), params)
    except MedspaError as exc:
        log.warning("status callback refused", error_code=exc.code)
        return to_response(exc)
    return json_response({"outcome": outcome})


@functions_framework.cloud_event
def sweep_failed_tasks(event):
    config = settings()
    queue = CloudTasksQueue(clients.tasks(), config, system_clock)
    with log.bound(event_id=event["id"]):
        RetrySweep(clients.firestore(), queue, system_clock, default_queue=config.queue_sms).run()
