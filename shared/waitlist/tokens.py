"""One-time claim tokens: the opaque part of an email offer's link. Signed (HMAC-SHA256) with the key from
Secret Manager (WAITLIST_TOKEN_KEY), expiring with the patient's window, used once (the offer's answer
marker, shared.waitlist.offers, makes a second use a refusal).

    v1.<base64url(offer_id|entry_id|expires epoch)>.<base64url(HMAC of the first two parts)>

A token names ids only. Every refusal is a `TokenRefused` with a code (malformed, forged, expired) and is
decided before anything is read or written.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone

from shared.contract.ids import is_doc_id
from shared.platform.errors import ConfigError, PermanentError

VERSION = "v1"
MAX_TOKEN_CHARS = 700
MIN_KEY_BYTES = 16


class TokenRefused(PermanentError):
    """This token does not open a claim: forged, expired or malformed (the code says which)."""

    code = "token_refused"


@dataclass(frozen=True)
class ClaimToken:
    offer_id: str
    entry_id: str
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_key(key: bytes) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"WAITLIST_TOKEN_KEY must hold at least {MIN_KEY_BYTES} bytes")
    return key


def _mac(key: bytes, signed: str) -> str:
    return _b64(hmac.new(_check_key(key), signed.encode("ascii"), hashlib.sha256).digest())


def sign(key: bytes, offer_id: str, entry_id: str, expires_at: datetime) -> str:
    """A token for claiming offer_id as entry_id until expires_at."""
    body = _b64(f"{offer_id}|{entry_id}|{int(expires_at.timestamp())}".encode())
    signed = f"{VERSION}.{body}"
    return f"{signed}.{_mac(key, signed)}"


def verify(key: bytes, token: object, now: datetime) -> ClaimToken:
    """The claim a token grants, or TokenRefused: its signature is checked before its content is read."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenRefused("claim token missing or malformed", code="malformed_token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TokenRefused("claim token malformed", code="malformed_token")
    if not hmac.compare_digest(_mac(key, f"{parts[0]}.{parts[1]}"), parts[2]):
        raise TokenRefused("claim token signature does not match", code="forged_token")
    try:
        offer_id, entry_id, expires = _unb64(parts[1]).decode("utf-8").split("|")
        expires_at = datetime.fromtimestamp(int(expires), timezone.utc)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError):
        raise TokenRefused("claim token malformed", code="malformed_token") from None
    if not is_doc_id(offer_id) or not is_doc_id(entry_id):
        raise TokenRefused("claim token malformed", code="malformed_token")
    if now >= expires_at:
        raise TokenRefused("claim token expired", code="expired_token")
    return ClaimToken(offer_id, entry_id, expires_at)
