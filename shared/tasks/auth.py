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

from shared.platform.errors import Unauthorized
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
        with self._lock:
            if self._certs is None or time.monotonic() - self._fetched_at > CERTS_TTL_SECONDS:
                import requests

                response = requests.get(self.certs_url, timeout=5)
                response.raise_for_status()
                self._certs, self._fetched_at = response.json(), time.monotonic()
            return self._certs

    def verify(self, headers: Mapping[str, str]) -> dict[str, Any]:
        """Return the token's claims, or raise Unauthorized (401: no/bad token; 403: wrong caller)."""
        if self.settings.allow_unauthenticated_tasks:
            return {"email": "local-emulator", "local": True}
        header = headers.get("Authorization") or headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("missing bearer token")
        from google.auth import exceptions as auth_exceptions
        from google.auth import jwt

        try:
            jwt.decode_header(token.strip())  # garbage is refused before any certificate fetch
        except (ValueError, TypeError):
            raise Unauthorized("malformed token") from None
        try:
            claims = jwt.decode(
                token.strip(),
                certs=self._signing_certs(),
                audience=self.settings.task_audience,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("token not issued by Google")
        if claims.get("email") != self.settings.tasks_service_account or not claims.get("email_verified"):
            raise Unauthorized("token is not the tasks service account's", forbidden=True)
        return dict(claims)
