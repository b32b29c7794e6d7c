"""Campaign link cases run on any Store: the in-memory fake (tests/unit/test_campaign_links.py) and the
Firestore emulator (tests/integration/test_campaign_click.py), so the click count's preconditions hold on both."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.campaigns.links import CampaignLinks, click_path
from shared.messaging import ledger
from shared.messaging.keys import dedup_key
from shared.platform.store import Store
from tests.fakes import FixedClock

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
KEY = b"campaign-link-key-for-tests"
CLICK_URL = "https://click.example.test/"
CAMPAIGN = "camp-spring"
PATIENT = "pat-1"
LANDING = "https://clinic.example.test/spring?utm=sms"


def recipient_key(patient_id: str = PATIENT, campaign_id: str = CAMPAIGN) -> str:
    return dedup_key("campaign_message", campaign_id, patient_id)


def seed(store: Store, *, link: str | None = LANDING, patient_id: str = PATIENT) -> str:
    """A campaign with a link and one recipient's ledger entry; the recipient's ledger key."""
    store.put(
        f"campaigns/{CAMPAIGN}",
        {
            "clinic_id": "clinic-a",
            "status": "sending",
            "message": {"template": "Spring offer {link}", "link": link},
            "window": {"start": NOW, "end": NOW + timedelta(days=2)},
        },
    )
    key = recipient_key(patient_id)
    store.put(
        ledger.path(key),
        {
            "kind": "campaign_message",
            "clinic_id": "clinic-a",
            "patient_id": patient_id,
            "campaign_id": CAMPAIGN,
            "state": "sent",
        },
    )
    return key


def links(store: Store, clock: FixedClock | None = None) -> CampaignLinks:
    return CampaignLinks(store=store, clock=clock or FixedClock(NOW), click_url=CLICK_URL, key=KEY)


def token_of(link: str) -> str:
    return link.removeprefix(CLICK_URL)


def click_doc(store: Store, key: str) -> dict[str, Any]:
    doc = store.get(click_path(CAMPAIGN, key))
    assert doc is not None
    return doc.data


def each_request_counts_exactly_one_click(store: Store) -> None:
    key = seed(store)
    clock = FixedClock(NOW)
    token = token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=30)))
    first = links(store, clock).follow(token)
    clock.advance(minutes=5)
    second = links(store, clock).follow(token)
    assert (first.status, first.location, second.status) == (302, LANDING, 302)
    doc = click_doc(store, key)
    assert (doc["count"], doc["first_at"], doc["last_at"]) == (2, NOW, NOW + timedelta(minutes=5))
    assert (doc["campaign_id"], doc["clinic_id"], doc["patient_id"]) == (CAMPAIGN, "clinic-a", PATIENT)


def concurrent_clicks_are_all_counted(store: Store, clicks: int = 12) -> None:
    key = seed(store)
    token = token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=30)))
    with ThreadPoolExecutor(max_workers=clicks) as pool:
        answers = list(pool.map(lambda _: links(store).follow(token).status, range(clicks)))
    assert answers == [302] * clicks
    assert click_doc(store, key)["count"] == clicks


CASES = (each_request_counts_exactly_one_click, concurrent_clicks_are_all_counted)
