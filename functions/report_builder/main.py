"""report_builder: Pub/Sub reports-tick (on_reports_tick) and inventory-tick (on_inventory_tick).

Wired by shared/wiring/report_builder.py; the Pub/Sub adapter (shared/adapters/pubsub_job.py) logs one
summary line per tick, acknowledges a rejected or too old one, and raises after a run with a failed
clinic so Pub/Sub redelivers and the re-run redoes it.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.wiring import report_builder as wiring


@functions_framework.cloud_event
def on_reports_tick(cloud_event: Any) -> None:
    wiring.REPORTS_TICK(cloud_event)


@functions_framework.cloud_event
def on_inventory_tick(cloud_event: Any) -> None:
    wiring.INVENTORY_TICK(cloud_event)
