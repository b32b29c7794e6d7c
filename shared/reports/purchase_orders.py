"""purchase_orders/{clinic_id}_{date}: the reorder check's draft, one per clinic and local day, and the only
module that writes the collection. A draft is created once (a single create() precondition) and never
overwritten by a re-run: the inventory manager may already be editing it. What happens to it after
"draft" (sent, received) is the booking platform's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from shared.platform.store import Doc, Store

COLLECTION = "purchase_orders"
MAX_LINES = 1000  # a Firestore document holds at most 1 MiB; a clinic stocks far fewer products


class Status(StrEnum):
    DRAFT = "draft"


def order_id(clinic_id: str, day: date) -> str:
    return f"{clinic_id}_{day.isoformat()}"


def path(doc_id: str) -> str:
    return f"{COLLECTION}/{doc_id}"


class PurchaseOrders:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create_draft(
        self,
        clinic_id: str,
        day: date,
        lines: Sequence[Mapping[str, Any]],
        *,
        now: datetime,
        invalid_products: Sequence[Mapping[str, str]] = (),
    ) -> tuple[bool, str]:
        """(created, doc id): False when the day's draft already exists, which is then left as it is."""
        doc_id = order_id(clinic_id, day)
        created = self.store.create(
            path(doc_id),
            {
                "clinic_id": clinic_id,
                "date": day.isoformat(),
                "status": Status.DRAFT.value,
                "lines": [dict(line) for line in lines[:MAX_LINES]],
                "truncated": len(lines) > MAX_LINES,
                "invalid_products": [dict(item) for item in invalid_products[:MAX_LINES]],
                "created_at": now,
            },
        )
        return created is not None, doc_id

    def read(self, doc_id: str) -> Doc | None:
        return self.store.get(path(doc_id))
