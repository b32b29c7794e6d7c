"""Google-style OIDC tokens for tests of the task handler's caller check: an RS256 key and its certificate,
tokens with chosen claims, and the matrix of callers that must all be refused."""

from __future__ import annotations

import time
from typing import Any

from google.auth import crypt, jwt

from local import identity


def key_and_cert(name: str) -> tuple[bytes, str]:
    """A fresh RSA key (PEM) and a self-signed certificate for it (PEM), as Google's endpoint serves them."""
    private_pem = identity.new_private_key()
    return private_pem, identity.self_signed_certificate(private_pem, name)


def signer(name: str, key_id: str = "kid-1") -> tuple[Any, str]:
    private_pem, cert_pem = key_and_cert(name)
    return crypt.RSASigner.from_string(private_pem, key_id=key_id), cert_pem


def token(signing: Any, *, audience: str, caller: str, **overrides: Any) -> str:
    """A token as Cloud Tasks mints it for `caller`, with any claim overridden (None drops it)."""
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": audience,
        "email": caller,
        "email_verified": True,
        "iat": now,
        "exp": now + 300,
        "sub": "1234",
    }
    claims.update(overrides)
    return jwt.encode(signing, {k: v for k, v in claims.items() if v is not None}).decode()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def refusals(signing: Any, *, audience: str, caller: str) -> dict[str, dict[str, str]]:
    """Every way a caller fails to prove it is Cloud Tasks signing as the tasks service account."""
    now = int(time.time())
    other, _ = signer("attacker")

    def signed(by: Any = signing, **overrides: Any) -> dict[str, str]:
        return bearer(token(by, audience=audience, caller=caller, **overrides))

    return {
        "no token": {},
        "not bearer": {"Authorization": "Basic abc"},
        "empty bearer": {"Authorization": "Bearer "},
        "garbage": bearer("not.a.jwt"),
        "garbage segments": bearer("eyJhbGciOiJSUzI1NiJ9.e30.AAAA"),
        "wrong key": signed(other),
        "wrong audience": signed(aud="https://someone-else.example.com/"),
        "expired": signed(exp=now - 600, iat=now - 900),
        "no expiry": signed(exp=None),
        "foreign issuer": signed(iss="https://evil.example.com"),
        "other service account": signed(email="intruder@p.iam.gserviceaccount.com"),
        "email_verified false": signed(email_verified=False),
        "email_verified 'true'": signed(email_verified="true"),
        "email_verified 'false'": signed(email_verified="false"),
        "email_verified 1": signed(email_verified=1),
        "email_verified missing": signed(email_verified=None),
    }
