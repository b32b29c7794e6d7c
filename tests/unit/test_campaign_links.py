"""Campaign links on the in-memory store: signed ids only, refusals classified before anything is read,
one click counted per request, and the link a campaign may carry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.campaigns.links import CLICKS, LinkRefused, check_link, link_expiry
from shared.platform.errors import PermanentError
from shared.platform.signed_tokens import SignedTokens
from shared.waitlist import tokens as claim_tokens
from tests.campaign_click_cases import (
    CAMPAIGN,
    CASES,
    CLICK_URL,
    KEY,
    LANDING,
    NOW,
    PATIENT,
    links,
    recipient_key,
    seed,
    token_of,
)
from tests.fakes import FixedClock, MemoryStore


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_click_case(case):
    case(MemoryStore())


def test_a_link_names_ids_only_and_starts_with_the_click_url():
    store = MemoryStore()
    key = seed(store)
    link = links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=30))
    assert link.startswith(CLICK_URL) and "/" not in token_of(link)
    assert PATIENT not in link and "clinic" not in link
    (campaign_id, ledger_key), expires = SignedTokens("c1", "t", "K", 2).verify(KEY, token_of(link), NOW)
    assert (campaign_id, ledger_key, expires) == (CAMPAIGN, key, NOW + timedelta(days=30))


def mangled(token: str) -> list[str]:
    head, body, mac = token.split(".")
    return [
        f"{head}.{body}.{mac[:-2]}AA",  # another signature
        f"{head}.{body[:-2]}AA.{mac}",  # another body under the old signature
    ]


@pytest.mark.parametrize("which", [0, 1])
def test_a_forged_token_is_a_404_and_counts_nothing(which):
    store = MemoryStore()
    key = seed(store)
    token = token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=30)))
    answer = links(store).follow(mangled(token)[which])
    assert (answer.status, answer.outcome, answer.location) == (404, "forged_token", None)
    assert store.docs(CLICKS) == {}


def test_a_token_signed_with_another_key_is_forged():
    store = MemoryStore()
    key = seed(store)
    other = links(store)
    other.key = b"another-key-of-sixteen-bytes"
    answer = links(store).follow(token_of(other.link_for(CAMPAIGN, key, NOW + timedelta(days=1))))
    assert (answer.status, answer.outcome) == (404, "forged_token")


def test_a_waitlist_claim_token_under_the_same_key_opens_no_campaign_link():
    store = MemoryStore()
    seed(store)
    claim = claim_tokens.sign(KEY, CAMPAIGN, recipient_key(), NOW + timedelta(days=1))
    assert links(store).follow(claim).outcome == "malformed_token"


def test_an_expired_token_is_a_410_and_counts_nothing():
    store = MemoryStore()
    key = seed(store)
    token = token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=30)))
    answer = links(store, FixedClock(NOW + timedelta(days=30))).follow(token)
    assert (answer.status, answer.outcome) == (410, "expired_token")
    assert "expired" in answer.response()[0] and store.docs(CLICKS) == {}


@pytest.mark.parametrize("token", ["", "abc", "c1.x", "c1.a.b.c", "v1.a.b", "c1." + "a" * 800 + ".b", None, "ü.a.b"])
def test_a_malformed_token_is_a_404_never_an_error(token):
    store = MemoryStore()
    seed(store)
    answer = links(store).follow(token)
    assert (answer.status, answer.outcome) == (404, "malformed_token")
    body, status, headers = answer.response()
    assert status == 404 and "not valid" in body and "Location" not in headers


def test_a_signed_token_naming_something_else_than_a_ledger_key_is_malformed():
    store = MemoryStore()
    seed(store)
    odd = SignedTokens("c1", "t", "K", 2).sign(KEY, (CAMPAIGN, "not-a-ledger-key"), NOW + timedelta(days=1))
    assert links(store).follow(odd).outcome == "malformed_token"


def test_link_for_refuses_ids_that_are_not_ids():
    with pytest.raises(PermanentError):
        links(MemoryStore()).link_for("a/b", recipient_key(), NOW)


def test_a_campaign_gone_or_without_a_link_is_a_404():
    store = MemoryStore()
    key = seed(store, link=None)
    token = token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=1)))
    assert (links(store).follow(token).status, links(store).follow(token).outcome) == (404, "no_link")
    gone = token_of(links(store).link_for("camp-gone", key, NOW + timedelta(days=1)))
    assert links(store).follow(gone).outcome == "no_campaign"
    assert store.docs(CLICKS) == {}


def test_a_head_request_redirects_without_counting():
    store = MemoryStore()
    key = seed(store)
    token = token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=1)))
    answer = links(store).follow(token, record=False)
    assert (answer.status, answer.location) == (302, LANDING)
    assert store.docs(CLICKS) == {}


def test_the_redirect_carries_the_link_and_no_referrer():
    store = MemoryStore()
    key = seed(store)
    body, status, headers = (
        links(store).follow(token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(1)))).response()
    )
    assert (status, headers["Location"], headers["Referrer-Policy"], body) == (302, LANDING, "no-referrer", "")


class EveryUpdateLoses(MemoryStore):
    """A store where a rival wrote the document before every versioned update."""

    def update(self, path, data, *, version=None):
        return None


def test_a_click_the_store_cannot_count_still_redirects():
    store = EveryUpdateLoses()
    key = seed(store)
    token = token_of(links(store).link_for(CAMPAIGN, key, NOW + timedelta(days=1)))
    store.put(f"{CLICKS}/{CAMPAIGN}~{key}", {"count": 1})
    answer = links(store).follow(token)
    assert answer.status == 302 and store.docs(CLICKS)[f"{CAMPAIGN}~{key}"]["count"] == 1


def test_links_expire_thirty_days_after_the_window():
    assert link_expiry(NOW) == NOW + timedelta(days=30)


@pytest.mark.parametrize(
    "url", ["https://clinic.example/x?a=1", "http://clinic.example", "  https://clinic.example/  ", "HTTPS://A.B/c"]
)
def test_http_links_are_accepted(url):
    assert check_link(url) == url.strip()


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://clinic.example/x",
        "//clinic.example/x",
        "clinic.example/x",
        "https://",
        "https://clinic.example/a b",
        "https://clinic.example/\nx",
        "data:text/html,hi",
        "",
        None,
        42,
        "https://clinic.example/" + "a" * 2000,
        "https://[::1/",
    ],
)
def test_other_links_are_refused_at_create_time(url):
    with pytest.raises(LinkRefused):
        check_link(url)
