"""Campaign links on the emulator and through the local stack: the click count's preconditions hold on
Firestore (concurrent clicks all counted), and the stack's campaign-click function redirects, counts and
refuses exactly as the unit tests say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from deploy import registry
from local.config import LOCAL_CAMPAIGN_LINK_KEY, StackConfig
from shared.campaigns.links import CampaignLinks
from shared.platform.clock import system_clock
from shared.platform.store import FirestoreStore
from tests.campaign_click_cases import CAMPAIGN, CASES, LANDING, click_doc, seed

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_click_case_on_the_emulator(case, firestore_client: Any) -> None:
    case(FirestoreStore(firestore_client))


def stack_links(stack: StackConfig, store: FirestoreStore) -> CampaignLinks:
    """Links as the stack's task handler signs them: its click URL and its key."""
    return CampaignLinks(
        store=store,
        clock=system_clock,
        click_url=stack.url(registry.CAMPAIGN_CLICK),
        key=LOCAL_CAMPAIGN_LINK_KEY.encode(),
    )


def get(link: str) -> requests.Response:
    return requests.get(link, allow_redirects=False, timeout=30)


def test_the_stacks_click_function_redirects_and_counts_each_click(stack: StackConfig, firestore_client: Any) -> None:
    store = FirestoreStore(firestore_client)
    key = seed(store)
    link = stack_links(stack, store).link_for(CAMPAIGN, key, datetime.now(UTC) + timedelta(days=30))
    first, second = get(link), get(link)
    assert (first.status_code, first.headers["Location"]) == (302, LANDING)
    assert second.status_code == 302
    doc = click_doc(store, key)
    assert (doc["count"], doc["patient_id"], doc["clinic_id"]) == (2, "pat-1", "clinic-a")
    assert requests.head(link, allow_redirects=False, timeout=30).status_code == 302
    assert click_doc(store, key)["count"] == 2  # a preview's HEAD is not a click
    assert requests.post(link, timeout=30).status_code == 405
    assert click_doc(store, key)["count"] == 2


def test_the_stacks_click_function_refuses_forged_and_expired_links_without_a_5xx(
    stack: StackConfig, firestore_client: Any
) -> None:
    store = FirestoreStore(firestore_client)
    key = seed(store)
    links = stack_links(stack, store)
    valid = links.link_for(CAMPAIGN, key, datetime.now(UTC) + timedelta(days=30))
    forged = valid[:-3] + ("AAA" if not valid.endswith("AAA") else "BBB")
    expired = links.link_for(CAMPAIGN, key, datetime(2020, 1, 1, tzinfo=UTC))
    answers = {name: get(url) for name, url in (("forged", forged), ("expired", expired))}
    answers["malformed"] = get(stack.url(registry.CAMPAIGN_CLICK) + "not-a-token")
    assert {name: r.status_code for name, r in answers.items()} == {"forged": 404, "expired": 410, "malformed": 404}
    assert all("Location" not in r.headers for r in answers.values())
    assert store.get(f"campaign_clicks/{CAMPAIGN}~{key}") is None
