"""waitlist_offer_counts/{clinic}:{patient}:{date}: how many offers a patient got on one clinic-local day,
the clinic's `waitlist.max_offers_per_day` cap. The only writer of the collection.

The count is a list of offer ids, written in the same commit as the wave that offers the patient a slot
(a create for the day's first offer, else an update at the version read), so two offers racing for the
same patient's last offer of the day cannot both commit; an offer counted once is never counted again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from shared.contract.ids import is_doc_id
from shared.platform.clock import Clock
from shared.platform.store import Create, Store, Update, Write

COLLECTION = "waitlist_offer_counts"
RETENTION = timedelta(days=3)  # expire_at, for a TTL policy: a day's count is useless after it


def key(clinic_id: str, patient_id: str, day: date) -> str:
    return f"{clinic_id}:{patient_id}:{day.isoformat()}"


def path(count_key: str) -> str:
    return f"{COLLECTION}/{count_key}"


@dataclass(frozen=True)
class DayCount:
    key: str
    offer_ids: tuple[str, ...]
    version: Any  # None: no offer yet that day (the document does not exist)

    def count_without(self, offer_id: str) -> int:
        return len([other for other in self.offer_ids if other != offer_id])


class OfferCaps:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def read(self, keys: Sequence[str]) -> dict[str, DayCount]:
        """Every key's count (an absent document is a count of zero)."""
        valid = [k for k in dict.fromkeys(keys) if is_doc_id(k)]
        docs = self.store.get_all([path(k) for k in valid])
        counts = {k: DayCount(k, (), None) for k in valid}
        for doc in docs.values():
            raw = doc.get("offer_ids")
            ids = tuple(item for item in raw if isinstance(item, str)) if isinstance(raw, list) else ()
            counts[doc.id] = DayCount(doc.id, ids, doc.version)
        return counts

    def add_write(self, count: DayCount, offer_id: str, *, clinic_id: str, patient_id: str, day: date) -> Write | None:
        """Count offer_id on this day (None when it is counted already)."""
        if offer_id in count.offer_ids:
            return None
        now: datetime = self.clock.now()
        if count.version is None:
            fields = {
                "clinic_id": clinic_id,
                "patient_id": patient_id,
                "date": day.isoformat(),
                "offer_ids": [offer_id],
                "updated_at": now,
                "expire_at": now + RETENTION,
            }
            return Create(path(count.key), fields)
        return Update(
            path(count.key), {"offer_ids": [*count.offer_ids, offer_id], "updated_at": now}, version=count.version
        )
