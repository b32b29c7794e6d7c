"""Who may call the task handler and the fan-out units: Cloud Tasks, proven by an OIDC token
(docs/architecture.md, "Who may call a private function").

Every task carries `Authorization: Bearer <Google-signed ID token>` for the tasks service account, with the
function's URL as audience. Where the two happen depends on how the function is deployed:
- behind IAM (`--no-allow-unauthenticated`, which deploy.sh sets as INVOKER_IAM_CHECK=on from the same
  registry row): Cloud Run has already verified the token's signature and the caller's roles/run.invoker
  binding, and forwards the token with its signature replaced by SIGNATURE_REMOVED_BY_GOOGLE. The function
  cannot verify that signature again; it checks the claims (issuer, audience, expiry, the tasks service
  account, email_verified) and trusts the platform for the signature.
- anywhere else a stripped token is refused (anyone can write the marker), and a signed token is verified in
  full with `google.oauth2.id_token` against Google's certificates (fetched once an hour per instance).
A token with a real signature is verified in full in both cases.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from shared.platform.errors import RetryableError, Unauthorized
from shared.platform.settings import Settings

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"  # what Cloud Run leaves of a token it verified
CERTS_TTL_SECONDS = 3600
CERTS_TIMEOUT_SECONDS = 5
CLOCK_SKEW_SECONDS = 10


class CachedCerts:
    """A google.auth transport that answers repeated GETs of a certificates URL from memory for an hour, so a
    full verification costs one fetch per instance and hour, not one per task; other requests pass through."""

    def __init__(self, ttl_seconds: float = CERTS_TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._inner: Any = None

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        if self._inner is None:
            from google.auth.transport.requests import Request

            self._inner = Request()
        if method != "GET":
            return self._inner(url, method=method, body=body, headers=headers, **kwargs)
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and time.monotonic() - cached[0] < self.ttl_seconds:
                return cached[1]
        kwargs.setdefault("timeout", CERTS_TIMEOUT_SECONDS)
        response = self._inner(url, method=method, body=body, headers=headers, **kwargs)
        if response.status == 200:
            try:
                certs = json.loads(response.data)
            except ValueError:
                certs = None
            if not isinstance(certs, dict) or not certs:
                # A page that is not Google's certificates (a proxy's, say) is an outage, not a bad token: retry.
                from google.auth.exceptions import TransportError

                raise TransportError(  # type: ignore[no-untyped-call]  # google-auth leaves its exceptions unannotated
                    f"the certificates at {url} are not a JSON object of keys"
                )
            with self._lock:
                self._cache[url] = (time.monotonic(), response)
        return response


class TaskAuthenticator:
    """Checks the caller of a private task endpoint: the platform's check where deployed behind IAM, else its own."""

    def __init__(self, settings: Settings, *, certs_url: str = GOOGLE_CERTS_URL, transport: Any = None) -> None:
        self.settings, self.certs_url = settings, certs_url
        self.transport: Any = transport or CachedCerts()

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
        header = headers.get("Authorization") or headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing bearer token")
        from google.auth import exceptions as auth_exceptions
        from google.auth import jwt

        # Claims before signature: a token naming the wrong caller, audience, issuer or expiry is refused
        # without a certificate fetch, so no refusal depends on the network.
        try:
            jwt.decode_header(token)  # type: ignore[no-untyped-call]  # google-auth's jwt is unannotated
            claims = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError, auth_exceptions.GoogleAuthError):
            raise Unauthorized("malformed token") from None
        if token.rpartition(".")[2] == SIGNATURE_REMOVED:
            if not self.settings.invoker_iam_check:
                # Only Cloud Run's front end, having checked the signature, may remove it; here nothing did.
                raise Unauthorized("token without a signature, and this function is not deployed behind IAM")
            self._check_claims(claims)
            return dict(claims)
        self._check_claims(claims)
        return self._verified(token)

    def _verified(self, token: str) -> dict[str, Any]:
        """The token verified in full against Google's certificates (503 while they cannot be fetched)."""
        from google.auth import exceptions as auth_exceptions
        from google.oauth2 import id_token

        try:
            claims = id_token.verify_token(
                token,
                self.transport,
                audience=self.settings.task_audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except auth_exceptions.TransportError:
            raise RetryableError(
                "Google's signing certificates could not be fetched", retry_after_seconds=30, code="certs_unavailable"
            ) from None
        except (ValueError, auth_exceptions.GoogleAuthError) as exc:
            raise Unauthorized(f"invalid token: {type(exc).__name__}") from None
        self._check_claims(claims)
        return dict(claims)
