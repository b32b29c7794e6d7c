"""report_builder: Pub/Sub reports-tick (on_reports_tick) and inventory-tick (on_inventory_tick).

Both parse the envelope once, run one service with the real adapters and log one summary line. A
rejected tick (malformed, unknown clinic, a date out of range, too old) is logged and acknowledged; a
run with a failed clinic raises after logging, so Pub/Sub redelivers and the re-run redoes it.
"""

from __future__ import annotations

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
from shared.tasks.queue import CloudTasksQueue

if TYPE_CHECKING:
    from shared.reports.builder import ReportBuilder
    from shared.reports.inventory import InventoryCheck


@functools.cache
def reports() -> ReportBuilder:
    """Real adapters, wired once per instance (each function imports only its own service)."""
    from shared.reports.builder import ReportBuilder

    config = settings()
    return ReportBuilder(
        store=clients.store(), tasks=CloudTasksQueue(clients.tasks(), config), queue=config.queue_reports
    )


@functools.cache
def inventory() -> InventoryCheck:
    from shared.reports.inventory import InventoryCheck

    config = settings()
    return InventoryCheck(
        store=clients.store(), tasks=CloudTasksQueue(clients.tasks(), config), queue=config.queue_reports
    )


@functions_framework.cloud_event
def on_reports_tick(cloud_event: Any) -> None:
    started = time.monotonic()
    with log.bound(event_id=cloud_event["id"]):
        try:
            envelope = events.envelope(cloud_event)
            tick = events.parse_report_tick(envelope.data)
            age = too_old(envelope, system_clock.now(), settings().max_event_age_seconds)
            if age is not None:
                log.warning("reports tick too old to run; acknowledged", age_seconds=int(age.total_seconds()))
                return  # don't retry: the next scheduled tick comes soon; `ops report` builds one on demand
            report = reports().run_tick(tick, now=envelope.time or system_clock.now())
        except PermanentError as exc:
            log.warning("reports tick rejected; acknowledged", error_code=exc.code, error=str(exc))
            return  # don't retry: the same bytes would fail the same way
        log.info(
            "reports tick done", period=tick.period, seconds=round(time.monotonic() - started, 2), **report.summary()
        )
        report.raise_if_failed()  # retry


@functions_framework.cloud_event
def on_inventory_tick(cloud_event: Any) -> None:
    started = time.monotonic()
    with log.bound(event_id=cloud_event["id"]):
        try:
            envelope = events.envelope(cloud_event)
            tick = events.parse_inventory_tick(envelope.data)
            age = too_old(envelope, system_clock.now(), settings().max_event_age_seconds)
            if age is not None:
                log.warning("inventory tick too old to run; acknowledged", age_seconds=int(age.total_seconds()))
                return
            report = inventory().run_tick(tick, now=envelope.time or system_clock.now())
        except PermanentError as exc:
            log.warning("inventory tick rejected; acknowledged", error_code=exc.code, error=str(exc))
            return
        log.info("inventory tick done", seconds=round(time.monotonic() - started, 2), **report.summary())
        report.raise_if_failed()  # retry
