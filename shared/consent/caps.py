"""Marketing caps per recipient and 24 hours: the clinic's cap, lowered by a state's (recipient_time.daily_cap),
counted over the send records (docs/compliance.md)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.consent.evidence import SendRecords
from shared.consent.recipient_time import Place, daily_cap

WINDOW = timedelta(hours=24)


class MarketingCaps:
    def __init__(self, records: SendRecords) -> None:
        self.records = records

    def at_cap(self, patient_id: str, place: Place, clinic_cap: int, now: datetime) -> bool:
        """Has this recipient had as many marketing messages in the 24 hours before `now` as may go?
        An unconfirmed send counts: it may have reached the phone."""
        return self.records.marketing_sent_since(patient_id, now - WINDOW) >= daily_cap(place, clinic_cap)
