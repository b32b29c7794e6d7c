"""send_records/{ledger_key}: one record per intended message, kept at least 4 years.

A minimal implementation of the contract's API, enough for the marketing caps;
the evidence module proper replaces it.
"""

from __future__ import annotations

from datetime import datetime

from shared.platform.clock import Clock
from shared.platform.store import Store

COLLECTION = "send_records"


class SendRecords:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def marketing_sent_since(self, patient_id: str, since: datetime) -> int:
        """Marketing messages sent to the patient since `since` (one aggregation query)."""
        return self.store.count(
            COLLECTION,
            where=[
                ("patient_id", "==", patient_id),
                ("purpose", "==", "marketing"),
                ("outcome", "==", "sent"),
                ("at", ">=", since),
            ],
        )
