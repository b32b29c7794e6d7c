"""Marketing caps: how many marketing messages one recipient may get per 24 hours."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.consent.evidence import SendRecords
from shared.consent.recipient_time import Place, daily_cap

CAP_PERIOD = timedelta(hours=24)


class MarketingCaps:
    def __init__(self, records: SendRecords) -> None:
        self.records = records

    def at_cap(self, patient_id: str, place: Place, clinic_cap: int, now: datetime) -> bool:
        """True when the recipient got its daily cap of marketing messages in the last 24 hours."""
        sent = self.records.marketing_sent_since(patient_id, now - CAP_PERIOD)
        return sent >= daily_cap(place, clinic_cap)
