"""report_builder's composition root: the reports tick and the inventory tick
(functions/report_builder/main.py names them)."""

from __future__ import annotations

from datetime import datetime

from shared.adapters.pubsub_job import PubSubJob, RunResult
from shared.contract import events
from shared.wiring.services import services


def _reports(tick: events.ReportTick, now: datetime) -> RunResult:
    return services().reports.run_tick(tick, now=now)


def _inventory(tick: events.InventoryTick, now: datetime) -> RunResult:
    return services().inventory.run_tick(tick, now=now)


def _max_age() -> int:
    return services().config.max_event_age_seconds


# A tick too old to run is acknowledged: the next scheduled one comes soon; `ops report` builds one on demand.
REPORTS_TICK = PubSubJob(
    "reports tick", events.parse_report_tick, _reports, max_age=_max_age, describe=lambda t: {"period": t.period}
)
INVENTORY_TICK = PubSubJob("inventory tick", events.parse_inventory_tick, _inventory, max_age=_max_age)
