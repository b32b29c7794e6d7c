"""Who may call the task handler: Cloud Tasks, proven by an OIDC token (docs/architecture.md, "Message contracts").

In production every request must carry `Authorization: Bearer <Google-signed ID token>` whose audience
is the handler and whose email is the tasks service account. The local Cloud Tasks emulator sends no
token; ALLOW_UNAUTHENTICATED_TASKS_ON_EMULATOR=1 lets it through, and Settings honours that switch only
while the emulator variables are set, so it cannot be left on in production.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from shared.platform.errors import RetryableError, Unauthorized
from shared.platform.settings import Settings

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CERTS_TTL_SECONDS = 3600
CLOCK_SKEW_SECONDS = 10


class TaskAuthenticator:
    """Verifies the caller's OIDC token against Google's signing certificates, cached per instance."""

    def __init__(self, settings: Settings, *, certs_url: str = GOOGLE_CERTS_URL) -> None:
        self.settings, self.certs_url = settings, certs_url
        self._certs: Mapping[str, str] | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _signing_certs(self) -> Mapping[str, str]:
        """Google's certificates (cached); a fetch that fails is a RetryableError (503), never a raw exception."""
        with self._lock:
            if self._certs is None or time.monotonic() - self._fetched_at > CERTS_TTL_SECONDS:
                import requests

                try:
                    response = requests.get(self.certs_url, timeout=5)
                    response.raise_for_status()
                    certs = response.json()
                except (requests.RequestException, ValueError):
                    certs = None
                if not isinstance(certs, dict) or not certs:
                    raise RetryableError(
                        "Google's signing certificates could not be fetched",
                        retry_after_seconds=30,
                        code="certs_unavailable",
                    )
                self._certs, self._fetched_at = certs, time.monotonic()
            return self._certs

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        """Who the token says it is, for whom and until when; Unauthorized (401, or 403 for another caller)."""
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("token not issued by Google")
        audience = claims.get("aud")
        if audience != self.settings.task_audience and not (
            isinstance(audience, list) and self.settings.task_audience in audience
        ):
            raise Unauthorized("token is for another audience")
        expires = claims.get("exp")
        if (
            isinstance(expires, bool)
            or not isinstance(expires, int | float)
            or expires < time.time() - CLOCK_SKEW_SECONDS
        ):
            raise Unauthorized("token expired or without an expiry")
        # email_verified must be the JSON boolean true: the string "false" is truthy.
        if claims.get("email") != self.settings.tasks_service_account or claims.get("email_verified") is not True:
            raise Unauthorized("token is not the tasks service account's", forbidden=True)

    def verify(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """Return the token's claims, or raise Unauthorized (401: no/bad token; 403: wrong caller)."""
        if self.settings.allow_unauthenticated_tasks:
            return {"email": "local-emulator", "local": True}
        header = headers.get("Authorization") or headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token")
        from google.auth import exceptions as auth_exceptions
        from google.auth import jwt

        # Claims before signature: a token naming the wrong caller, audience, issuer or expiry is refused
        # without a certificate fetch, so no refusal depends on the network; only a token whose claims are
        # right needs the certificates, and when they cannot be fetched the answer is a retry (503).
        try:
            jwt.decode_header(token)
            self._check_claims(jwt.decode(token, verify=False))
        except (ValueError, TypeError, auth_exceptions.GoogleAuthError):
            raise Unauthorized("malformed token") from None
        try:
            claims = jwt.decode(
                token,
                certs=self._signing_certs(),
                audience=self.settings.task_audience,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from None
        self._check_claims(claims)
        return dict(claims)
