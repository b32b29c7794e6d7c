"""A campaign message's tracked link: `{CAMPAIGN_CLICK_URL}/{token}`, and the redirect behind it.

The token (shared.platform.signed_tokens, kind "c1", key CAMPAIGN_LINK_KEY from Secret Manager) names the
campaign id and the recipient's ledger key, nothing else, and expires 30 days after the campaign's window
ends. Following it: verify → read the campaign's link → count the click in
`campaign_clicks/{campaign_id}~{ledger_key}` → 302 to the link. A forged or malformed token answers 404, an
expired one 410, each with a classified log line and before anything is read; a campaign that is gone or has
no link answers 404. docs/campaigns.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from shared.contract.ids import is_doc_id
from shared.contract.models import count_or_zero
from shared.messaging import ledger as ledger_module
from shared.messaging.keys import is_key
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.platform.signed_tokens import SignedTokens, TokenRefused
from shared.platform.store import Store

CAMPAIGNS = "campaigns"  # written by the campaigns' lifecycle module; read here
CLICKS = "campaign_clicks"  # written here only
LINK_LIFETIME_AFTER_WINDOW = timedelta(days=30)
MAX_LINK_CHARS = 2000
CAS_ATTEMPTS = 32  # re-reads when concurrent clicks on one recipient's link changed its count under us
LINK_TOKENS = SignedTokens(version="c1", what="campaign link token", key_name="CAMPAIGN_LINK_KEY", ids=2)
_UNSAFE = re.compile(r"[\s<>\"'\\^`{|}\x00-\x1f\x7f]")

# What a refused token answers: a patient's browser sees a plain page, never a 5xx.
REFUSED_STATUS = {"malformed_token": 404, "forged_token": 404, "expired_token": 410}
PAGES = {
    404: "This link is not valid. Please contact the clinic.",
    410: "This link has expired. Please contact the clinic.",
}


class LinkRefused(PermanentError):
    """A campaign's link is not one we redirect to (not an absolute http(s) URL)."""

    code = "invalid_campaign_link"


def check_link(url: object) -> str:
    """The link as a campaign stores it, or LinkRefused: an absolute http(s) URL with a host, nothing unsafe."""
    if not isinstance(url, str) or not url.strip():
        raise LinkRefused("the campaign link is empty")
    link = url.strip()
    if len(link) > MAX_LINK_CHARS or _UNSAFE.search(link) or not link.isascii():
        raise LinkRefused("the campaign link holds characters a URL may not")
    try:
        parts = urlsplit(link)
        host = parts.hostname
    except ValueError:
        raise LinkRefused("the campaign link is not a URL") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise LinkRefused("the campaign link must be an absolute http(s) URL")
    return link


def link_expiry(window_end: datetime) -> datetime:
    """When a campaign's links stop working: 30 days after its send window ends."""
    return window_end + LINK_LIFETIME_AFTER_WINDOW


# Signs only the segment estimate's sample link: a token's length depends on the ids and the expiry's digits, never
# on the key, so a sample signed with it is exactly as long as every recipient's real link.
_SAMPLE_KEY = b"segment-estimate-only"
_SAMPLE_LEDGER_KEY = "campaign_message-" + "0" * 40


def sample_link(click_url: str, campaign_id: str, window_end: datetime) -> str:
    """A tracked link as long as each recipient's will be: what the segment estimate counts."""
    token = LINK_TOKENS.sign(_SAMPLE_KEY, (campaign_id, _SAMPLE_LEDGER_KEY), link_expiry(window_end))
    return f"{click_url.rstrip('/')}/{token}"


def click_path(campaign_id: str, ledger_key: str) -> str:
    return f"{CLICKS}/{campaign_id}~{ledger_key}"


@dataclass(frozen=True)
class Answer:
    """What following a link answers: a 302 to the campaign's link, or a plain page (404, 410)."""

    status: int
    outcome: str  # redirected | malformed_token | forged_token | expired_token | no_campaign | no_link
    location: str | None = None

    def response(self) -> tuple[str, int, dict[str, str]]:
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        if self.location is not None:
            return "", self.status, {**headers, "Location": self.location}
        page = f"<!doctype html><title>Link</title><p>{PAGES.get(self.status, PAGES[404])}</p>\n"
        return page, self.status, {**headers, "Content-Type": "text/html; charset=utf-8"}


class CampaignLinks:
    """Signs campaign links (the sender) and follows them (campaign-click)."""

    def __init__(self, *, store: Store, clock: Clock, click_url: str, key: bytes) -> None:
        self.store, self.clock, self.click_url, self.key = store, clock, click_url.rstrip("/"), key

    def link_for(self, campaign_id: str, ledger_key: str, expires: datetime) -> str:
        """The tracked link of one recipient's message (ids only: no PHI in the URL)."""
        if not is_doc_id(campaign_id) or not is_key(ledger_key):
            raise PermanentError("a campaign link names a campaign id and a ledger key", code="invalid_link_ids")
        return f"{self.click_url}/{LINK_TOKENS.sign(self.key, (campaign_id, ledger_key), expires)}"

    def follow(self, token: object, *, record: bool = True) -> Answer:
        """Verify, count the click (with `record`), and answer the redirect or the page that says why not."""
        try:
            (campaign_id, ledger_key), _ = LINK_TOKENS.verify(self.key, token, self.clock.now())
            if not is_doc_id(campaign_id) or not is_key(ledger_key):
                raise TokenRefused("campaign link token malformed", code="malformed_token")
        except TokenRefused as exc:
            log.warning("campaign link refused", error_code=exc.code)
            return Answer(REFUSED_STATUS.get(exc.code, 404), exc.code)
        campaign_path, entry_path = f"{CAMPAIGNS}/{campaign_id}", ledger_module.path(ledger_key)
        docs = self.store.get_all([campaign_path, entry_path])
        campaign = docs.get(campaign_path)
        if campaign is None:
            log.warning("campaign link names no campaign", campaign_id=campaign_id, error_code="no_campaign")
            return Answer(404, "no_campaign")
        message = campaign.get("message")
        try:
            link = check_link(message.get("link") if isinstance(message, dict) else None)
        except LinkRefused as exc:
            log.warning("campaign has no link to redirect to", campaign_id=campaign_id, error_code=exc.code)
            return Answer(404, "no_link")
        if record:
            entry = docs.get(entry_path)
            self._count(campaign_id, ledger_key, campaign.data, entry.data if entry is not None else {})
        return Answer(302, "redirected", link)

    def _count(self, campaign_id: str, ledger_key: str, campaign: dict[str, Any], entry: dict[str, Any]) -> None:
        """One more click on this recipient's link; a click the store could not count still redirects."""
        try:
            clicks = self.record_click(campaign_id, ledger_key, campaign, entry)
        except RetryableError as exc:
            log.warning("campaign click not counted", campaign_id=campaign_id, error_code=exc.code)
            return
        log.info("campaign link followed", campaign_id=campaign_id, ledger_key=ledger_key, clicks=clicks)

    def record_click(self, campaign_id: str, ledger_key: str, campaign: dict[str, Any], entry: dict[str, Any]) -> int:
        """Count one click: created on the first, then a versioned update, so concurrent clicks all count."""
        path, now = click_path(campaign_id, ledger_key), self.clock.now()
        patient_id = entry.get("patient_id") if entry.get("campaign_id") == campaign_id else None
        first = {
            "campaign_id": campaign_id,
            "clinic_id": campaign.get("clinic_id"),
            "patient_id": patient_id if isinstance(patient_id, str) else None,
            "ledger_key": ledger_key,
            "count": 1,
            "first_at": now,
            "last_at": now,
        }
        for _ in range(CAS_ATTEMPTS):
            doc = self.store.get(path)
            if doc is None:
                if self.store.create(path, first) is not None:
                    return 1
                continue
            count = count_or_zero(doc.get("count")) + 1
            if self.store.update(path, {"count": count, "last_at": now}, version=doc.version) is not None:
                return count
        raise RetryableError("campaign click contended past every attempt", code="click_contended")
