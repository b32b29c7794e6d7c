"""One-time claim tokens: the opaque part of an email offer's link. Signed (shared.platform.signed_tokens,
HMAC-SHA256) with the key from Secret Manager (WAITLIST_TOKEN_KEY), expiring with the patient's window, used
once (the offer's answer marker, shared.waitlist.offers, makes a second use a refusal).

    v1.<base64url(offer_id|entry_id|expires epoch)>.<base64url(HMAC of the first two parts)>

A token names ids only. Every refusal is a `TokenRefused` with a code (malformed, forged, expired) and is
decided before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.contract.ids import is_doc_id
from shared.platform.signed_tokens import SignedTokens, TokenRefused

__all__ = ["ClaimToken", "TokenRefused", "sign", "verify"]

CLAIM_TOKENS = SignedTokens(version="v1", what="claim token", key_name="WAITLIST_TOKEN_KEY", ids=2)


@dataclass(frozen=True)
class ClaimToken:
    offer_id: str
    entry_id: str
    expires_at: datetime


def sign(key: bytes, offer_id: str, entry_id: str, expires_at: datetime) -> str:
    """A token for claiming offer_id as entry_id until expires_at."""
    return CLAIM_TOKENS.sign(key, (offer_id, entry_id), expires_at)


def verify(key: bytes, token: object, now: datetime) -> ClaimToken:
    """The claim a token grants, or TokenRefused: its signature is checked before its content is read."""
    (offer_id, entry_id), expires_at = CLAIM_TOKENS.verify(key, token, now)
    if not is_doc_id(offer_id) or not is_doc_id(entry_id):
        raise TokenRefused("claim token malformed", code="malformed_token")
    return ClaimToken(offer_id, entry_id, expires_at)
