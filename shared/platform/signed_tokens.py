"""Signed, expiring tokens that name ids only: the opaque part of a link we send (an email offer's claim
link, a campaign's tracked link). Signed with HMAC-SHA256 under a key from Secret Manager:

    <version>.<base64url(id|id|…|expires epoch)>.<base64url(HMAC of the first two parts)>

The version names the kind of token and is signed with it, so a token of one kind never verifies as
another even under the same key. Every refusal is a `TokenRefused` with a code (malformed_token,
forged_token, expired_token), decided before anything is read or written; the signature is checked
before the content is parsed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from shared.platform.errors import ConfigError, PermanentError

MAX_TOKEN_CHARS = 700
MIN_KEY_BYTES = 16


class TokenRefused(PermanentError):
    """This token opens nothing: forged, expired or malformed (the code says which)."""

    code = "token_refused"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SignedTokens:
    """One kind of token: its version tag, what refusals call it, its key's variable and how many ids it names."""

    version: str  # "v1" (claim links), "c1" (campaign links): signed, so kinds never cross
    what: str  # "claim token": heads the refusals' messages
    key_name: str  # the Secret Manager variable holding its key (named when the key is too short)
    ids: int  # how many ids a token names

    def _mac(self, key: bytes, signed: str) -> str:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"{self.key_name} must hold at least {MIN_KEY_BYTES} bytes")
        return _b64(hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest())

    def sign(self, key: bytes, ids: Sequence[str], expires_at: datetime) -> str:
        """A token naming `ids` until expires_at."""
        if len(ids) != self.ids:
            raise ValueError(f"a {self.what} names {self.ids} ids")
        body = _b64("|".join([*ids, str(int(expires_at.timestamp()))]).encode())
        signed = f"{self.version}.{body}"
        return f"{signed}.{self._mac(key, signed)}"

    def _refused(self, problem: str, code: str) -> TokenRefused:
        return TokenRefused(f"{self.what} {problem}", code=code)

    def verify(self, key: bytes, token: object, now: datetime) -> tuple[tuple[str, ...], datetime]:
        """The ids a token names and when it expires, or TokenRefused."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise self._refused("missing or malformed", "malformed_token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != self.version:
            raise self._refused("malformed", "malformed_token")
        if not hmac.compare_digest(self._mac(key, f"{parts[0]}.{parts[1]}"), parts[2]):
            raise self._refused("signature does not match", "forged_token")
        try:
            *ids, expires = _unb64(parts[1]).decode("utf-8").split("|")
            expires_at = datetime.fromtimestamp(int(expires), timezone.utc)
        except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError):
            raise self._refused("malformed", "malformed_token") from None
        if len(ids) != self.ids:
            raise self._refused("malformed", "malformed_token")
        if now >= expires_at:
            raise self._refused("expired", "expired_token")
        return tuple(ids), expires_at
