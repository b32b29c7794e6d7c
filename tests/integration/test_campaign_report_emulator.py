"""The campaign report on the Firestore emulator: the same constructed campaign as the unit tests, read back
through the real queries (the ledger by kind and campaign, the consent history subcollection, appointments by
clinic and creation time, the clicks' sum and count aggregations)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.campaigns.report import CampaignReports
from shared.platform.store import FirestoreStore
from tests.campaign_report_cases import CAMPAIGN, NOW, SENT, booked, revoked, seed_campaign

pytestmark = pytest.mark.integration


def test_every_figure_of_the_report_on_the_emulator(firestore_client: Any) -> None:
    store = seed_campaign(FirestoreStore(firestore_client))
    revoked(store, "p1", SENT + timedelta(hours=71))
    revoked(store, "p2", SENT + timedelta(hours=72))  # too late
    booked(store, "a1", "p1", SENT + timedelta(days=1))
    booked(store, "a2", "p2", SENT + timedelta(days=14))  # too late
    booked(store, "a3", "p3", SENT + timedelta(days=2), clinic="c2")  # another clinic
    store.put(f"campaign_clicks/{CAMPAIGN}~k1", {"campaign_id": CAMPAIGN, "count": 3})
    store.put(f"campaign_clicks/{CAMPAIGN}~k2", {"campaign_id": CAMPAIGN, "count": 1})
    store.put("campaign_clicks/camp-other~k3", {"campaign_id": "camp-other", "count": 5})

    report = CampaignReports(store).build(CAMPAIGN, now=NOW)

    assert (report.planned, report.sent, report.delivered, report.failed, report.pending) == (7, 4, 2, 2, 1)
    assert report.failed_by_code == {"30007": 1, "invalid_phone": 1} and report.skipped == {"at_cap": 1}
    assert (report.audience, report.excluded) == (9, {"no_consent": 2, "opted_out": 1})
    assert (report.opted_out_72h, report.clicks, report.clickers) == (1, 4, 2)
    assert (report.bookings, report.booked_recipients) == (1, 1)
    assert (report.segments, report.cost_cents) == (9, 7)
    assert CampaignReports(store).load(CAMPAIGN) is not None
