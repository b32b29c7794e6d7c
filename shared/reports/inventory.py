"""report_builder's inventory service: every morning, per clinic, the active products at or below their
reorder point → one purchase_orders/{clinic_id}_{date} draft and one inventory_alert email task.

The day is the clinic's local today at the tick's time (or the tick's date). Idempotent per clinic and
day: the draft is one create() (a re-run finds it and leaves it as it is) and the alert task is named
from (clinic, day), its ledger keys from (clinic, day, recipient). A product document that breaks the
contract is reported by id and field (log line, run summary, the draft and the alert) and never stops
the check of the others. A clinic with nothing to reorder gets no draft and no alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from shared.contract.bodies import is_clean_text
from shared.contract.clinic_time import local_date
from shared.contract.clinics import load_clinics, skipped_settings
from shared.contract.events import EventRejected, InventoryTick
from shared.contract.models import MAX_TEXT_CHARS, PRODUCTS, Clinic, Product
from shared.platform import log
from shared.platform.errors import InvalidDocument
from shared.platform.run_summary import RunSummary
from shared.platform.store import Store
from shared.reports.purchase_orders import PurchaseOrders
from shared.reports.tasks import InventoryAlertTask
from shared.tasks.queue import TaskQueue, TaskSpec

MAX_DAYS_APART = 1  # a tick's date within a day of the UTC date: a clinic's today, in some zone


def order_line(product: Product) -> dict[str, Any]:
    """One draft line: what to order (the product's reorder quantity) and why (stock against the point)."""
    return {
        "product_id": product.id,
        "sku": product.sku,
        "name": product.name,
        "unit": product.unit,
        "on_hand": product.on_hand,
        "reorder_point": product.reorder_point,
        "qty": product.reorder_qty,
    }


def _names(data: Any) -> dict[str, str]:
    """A broken product's name and sku where those two fields can still be read, so the alert names it as
    the inventory manager knows it rather than by document id."""
    if not isinstance(data, dict):
        return {}
    return {
        key: value.strip()[:MAX_TEXT_CHARS]
        for key in ("name", "sku")
        if isinstance(value := data.get(key), str) and value.strip() and is_clean_text(value)
    }


@dataclass(frozen=True)
class InventoryCheck:
    store: Store
    tasks: TaskQueue
    queue: str  # the reports queue the alert tasks go on

    def run_tick(self, tick: InventoryTick, *, now: datetime) -> RunSummary:
        if tick.date is not None and abs((tick.date - now.date()).days) > MAX_DAYS_APART:
            raise EventRejected(f"inventory date {tick.date} is not a clinic's today", code="date_out_of_range")
        report = RunSummary(trigger="inventory")
        targets = load_clinics(self.store, tick.clinic_id, report)
        for clinic in targets:
            report.merge(self.check(clinic, tick.date or local_date(now, clinic.zone), now=now))
        report.counts["clinics"] = len(targets)
        return report

    def check(self, clinic: Clinic, day: date, *, now: datetime) -> RunSummary:
        report = RunSummary(trigger="inventory")
        try:
            lines, invalid = self._to_reorder(clinic.id, report)
            if not lines:
                report.counts["nothing_to_reorder"] += 1
                return report
            created, doc_id = PurchaseOrders(self.store).create_draft(
                clinic.id, day, lines, now=now, invalid_products=invalid
            )
            report.counts["drafts_created" if created else "drafts_already_there"] += 1
            report.ids.append(doc_id)
            skipped = skipped_settings(clinic, "inventory_emails", report)
            if not clinic.inventory_emails and not skipped:
                report.counts["no_inventory_contacts"] += 1
                return report
            task = InventoryAlertTask(clinic_id=clinic.id, date=day)
            spec = TaskSpec(queue=self.queue, business_key=task.failure_key, payload=task.to_json())
            report.counts["alerts_queued" if self.tasks.create(spec) else "alerts_already_queued"] += 1
        except Exception as exc:  # noqa: BLE001 - counted, logged, raised after the other clinics
            log.exception("inventory check failed; the redelivered tick redoes it", exc, clinic_id=clinic.id)
            report.fail(f"{clinic.id}: {type(exc).__name__}")
        return report

    def _to_reorder(self, clinic_id: str, report: RunSummary) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """The clinic's active products at or below their point, by name; and the products that broke the contract."""
        lines: list[dict[str, Any]] = []
        invalid: list[dict[str, str]] = []
        for doc in self.store.query(PRODUCTS, where=[("clinic_id", "==", clinic_id)], fields=Product.FIELDS):
            report.counts["products"] += 1
            try:
                product = Product.from_doc(doc.id, doc.data)
            except InvalidDocument as exc:
                report.invalid_document(exc)
                invalid.append({"product_id": exc.doc_id, "field": exc.field, **_names(doc.data)})
                continue
            if product.needs_reorder:
                lines.append(order_line(product))
        report.counts["to_reorder"] += len(lines)
        lines.sort(key=lambda line: (line["name"].lower(), line["product_id"]))
        return lines, invalid
