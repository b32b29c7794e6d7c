"""The registry of task types: each one wired to its service with the real adapters, once per instance.

The top of the import graph (it imports every domain, nothing imports it but entry points and the ops
CLI): the task handler routes by it, and the retry sweep parses, queues and reopens through it exactly
what the handler would.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.messaging.appointment_tasks import APPOINTMENT_TASK_TYPES, AppointmentTask, parse_appointment_task
from shared.messaging.delivery import AppointmentMessages
from shared.messaging.ledger import Ledger, Reopen
from shared.messaging.opt_outs import OptOuts
from shared.messaging.providers import SendGridEmail, TwilioSms, TwilioTestSms
from shared.messaging.report_tasks import (
    INVENTORY_ALERT,
    REPORT_EMAIL,
    InventoryAlertTask,
    ReportEmailTask,
    parse_inventory_alert_task,
    parse_report_email_task,
)
from shared.messaging.sender import MessageSender
from shared.messaging.waitlist_tasks import (
    OFFER,
    RESULT,
    WaitlistOfferTask,
    WaitlistResultTask,
    parse_offer_task,
    parse_result_task,
)
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.settings import settings
from shared.tasks.router import Attempt, Outcome, TaskType
from shared.waitlist.wave_tasks import WAVE, WaveTask, parse_wave_task

if TYPE_CHECKING:  # the waitlist's and the reports' services: imported when their first task arrives
    from shared.reports.emails import StaffEmails
    from shared.waitlist.messages import WaitlistMessages
    from shared.waitlist.waves import Waves


@functools.cache
def ledger() -> Ledger:
    """The notifications ledger every message type claims through, with the deployed lease."""
    return Ledger(clients.store(), system_clock, lease=timedelta(seconds=settings().ledger_lease_seconds))


@functools.cache
def sender() -> MessageSender:
    """The one claim → send → record path every message type uses, with the real providers."""
    config = settings()
    return MessageSender(
        ledger=ledger(),
        sms=TwilioSms(clients.twilio()),
        email=SendGridEmail(clients.sendgrid()),
        clock=system_clock,
        opt_outs=OptOuts(clients.store(), system_clock),
        status_callback_url=config.status_callback_url,
        unconfirmed_wait=timedelta(seconds=config.unconfirmed_wait_seconds),
        test_sms=TwilioTestSms(clients.twilio_test),  # its client is built on the smoke clinic's first SMS
    )


@functools.cache
def appointment_messages() -> AppointmentMessages:
    return AppointmentMessages(store=clients.store(), ledger=ledger(), sender=sender(), clock=system_clock)


@functools.cache
def waitlist_messages() -> WaitlistMessages:
    """Wired on the first waitlist task only: a handler that sends no offers needs no claim URL or key."""
    from shared.waitlist import config as waitlist_config
    from shared.waitlist.messages import WaitlistMessages

    return WaitlistMessages(
        store=clients.store(),
        ledger=ledger(),
        sender=sender(),
        clock=system_clock,
        claim_url=waitlist_config.claim_url(),
        token_key=waitlist_config.token_key(),
    )


@functools.cache
def waves() -> Waves:
    from shared.tasks.queue import CloudTasksQueue
    from shared.waitlist.events import PubSubAppointmentEvents
    from shared.waitlist.waves import Waves

    config = settings()
    return Waves(
        store=clients.store(),
        clock=system_clock,
        tasks=CloudTasksQueue(clients.tasks(), config),
        queue=config.queue_waitlist,
        events=PubSubAppointmentEvents(clients.publisher, config.project),
    )


def _deliver(task: AppointmentTask, attempt: Attempt) -> Outcome:
    return appointment_messages().deliver(task, attempt)


def _reopen(task: Any) -> Reopen:
    return ledger().reopen(task.dedup_key)


@functools.cache
def staff_emails() -> StaffEmails:
    """Report and reorder emails: the same ledger and sender as every other message (one set of clients)."""
    from shared.reports.emails import StaffEmails

    return StaffEmails(store=clients.store(), ledger=ledger(), sender=sender(), clock=system_clock)


def _deliver_report(task: ReportEmailTask, attempt: Attempt) -> Outcome:
    return staff_emails().deliver_report(task, attempt)


def _reopen_report(task: ReportEmailTask) -> Reopen:
    return staff_emails().reopen(staff_emails().report_keys(task))


def _deliver_alert(task: InventoryAlertTask, attempt: Attempt) -> Outcome:
    return staff_emails().deliver_inventory_alert(task, attempt)


def _reopen_alert(task: InventoryAlertTask) -> Reopen:
    return staff_emails().reopen(staff_emails().alert_keys(task))


def _offer(task: WaitlistOfferTask, attempt: Attempt) -> Outcome:
    return waitlist_messages().deliver_offer(task, attempt)


def _result(task: WaitlistResultTask, attempt: Attempt) -> Outcome:
    return waitlist_messages().deliver_result(task, attempt)


def _wave(task: WaveTask, attempt: Attempt) -> Outcome:
    return waves().handle(task, attempt)


@functools.cache
def task_types() -> dict[str, TaskType]:
    config = settings()
    types = {
        kind: TaskType(
            name=kind,
            parse=parse_appointment_task,
            handle=_deliver,
            queue=config.queue_sms,
            fields=AppointmentTask.FIELDS,
            reopen=_reopen,
            from_ledger=AppointmentTask.from_ledger,
        )
        for kind in APPOINTMENT_TASK_TYPES
    }
    types[REPORT_EMAIL] = TaskType(
        name=REPORT_EMAIL,
        parse=parse_report_email_task,
        handle=_deliver_report,
        queue=config.queue_reports,
        fields=ReportEmailTask.FIELDS,
        reopen=_reopen_report,
    )
    types[INVENTORY_ALERT] = TaskType(
        name=INVENTORY_ALERT,
        parse=parse_inventory_alert_task,
        handle=_deliver_alert,
        queue=config.queue_reports,
        fields=InventoryAlertTask.FIELDS,
        reopen=_reopen_alert,
    )
    waitlist = config.queue_waitlist
    types[OFFER] = TaskType(OFFER, parse_offer_task, _offer, waitlist, WaitlistOfferTask.FIELDS, _reopen)
    types[RESULT] = TaskType(RESULT, parse_result_task, _result, waitlist, WaitlistResultTask.FIELDS, _reopen)
    types[WAVE] = TaskType(WAVE, parse_wave_task, _wave, waitlist, WaveTask.FIELDS)  # idempotent: nothing to reopen
    return types
