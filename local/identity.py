"""The local stack's stand-in for Google's identity: the OIDC issuer whose tokens Cloud Tasks and Eventarc
attach to every dispatch and push, and the ingress key that marks a request as coming from inside the
project (docs/architecture.md, "Local stack").

In the cloud, Cloud Tasks and Eventarc sign each request's ID token as a service account with Google's keys,
and Cloud Run's front end verifies it before a private function runs. Locally the same tokens are signed by
a key made once per state dir (never committed; loopback only), whose certificates the front serves and
checks. The token's claims are Google's (issuer accounts.google.com, audience the function's URL, the
service account's email, email_verified), so the functions run their production check unchanged.

Used from both venvs: the Cloud Tasks emulator's (.venv-tasks) mints, the stack's (.venv) mints and
verifies; only google-auth and cryptography are needed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ISSUER = "https://accounts.google.com"
TOKEN_LIFETIME_SECONDS = 3600  # Google's ID tokens live an hour
# The header that stands for "this request comes from inside the project" (Cloud Tasks, Eventarc, a VM in the
# VPC): Cloud Run's internal-only ingress lets nothing else reach a private function. The front removes it.
INGRESS_HEADER = "X-Medspa-Local-Ingress"


def identity_dir(state_dir: Path) -> Path:
    return state_dir / "identity"


def service_account(project: str, account_id: str) -> str:
    """A service account's email, as deploy.sh creates it."""
    return f"{account_id}@{project}.iam.gserviceaccount.com"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)


def ensure(state_dir: Path) -> None:
    """Make the issuer's key and the ingress key once per state dir (the stack calls this before it starts)."""
    folder = identity_dir(state_dir)
    if not (folder / "issuer.pem").is_file():
        _write_private(folder / "issuer.pem", new_private_key())
    if not (folder / "ingress.key").is_file():
        _write_private(folder / "ingress.key", secrets.token_urlsafe(24).encode())


def ingress_key(state_dir: Path) -> str:
    """The value of INGRESS_HEADER that the stack's own callers send."""
    ensure(state_dir)
    return (identity_dir(state_dir) / "ingress.key").read_text().strip()


def internal_headers(state_dir: Path) -> dict[str, str]:
    """The header a caller inside the project (Cloud Tasks, Eventarc, a test acting as a VPC client) sends."""
    return {INGRESS_HEADER: ingress_key(state_dir)}


def caller_headers(state_dir: Path, *, email: str, audience: str) -> dict[str, str]:
    """What a caller inside the project sends a private function: the ingress header and a token for `email`."""
    token = Issuer.load(state_dir).mint(email=email, audience=audience)
    return {**internal_headers(state_dir), "Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Issuer:
    """Signs and verifies Google-style ID tokens with the stack's key."""

    private_pem: bytes
    cert_pem: str

    @classmethod
    def load(cls, state_dir: Path) -> Issuer:
        """The state dir's issuer; loaded once per key file (a test's caller loads it for every request)."""
        ensure(state_dir)
        key = identity_dir(state_dir) / "issuer.pem"
        return _issuer(str(key), key.stat().st_mtime_ns)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.private_pem).hexdigest()[:16]

    def certs(self) -> dict[str, str]:
        """{key id: PEM certificate}, the format of Google's oauth2/v1/certs."""
        return {self.key_id: self.cert_pem}

    def mint(self, *, email: str, audience: str, lifetime: int = TOKEN_LIFETIME_SECONDS, **overrides: Any) -> str:
        """A token for `email` and `audience`, as Cloud Tasks or Eventarc attach it (None in overrides drops one)."""
        from google.auth import jwt

        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "azp": hashlib.sha256(email.encode()).hexdigest()[:21],
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + lifetime,
            "sub": hashlib.sha256(email.encode()).hexdigest()[:21],
        }
        claims.update(overrides)
        return jwt.encode(self._signer, {k: v for k, v in claims.items() if v is not None}).decode("ascii")

    @functools.cached_property
    def _signer(self) -> Any:
        """The parsed key, once per issuer: the Cloud Tasks wrapper mints a token on every dispatch."""
        from google.auth import crypt

        return crypt.RSASigner.from_string(self.private_pem, key_id=self.key_id)

    def verify(self, token: str, audiences: Sequence[str]) -> dict[str, Any]:
        """The claims of a token this issuer signed for one of `audiences`; ValueError otherwise."""
        from google.auth import exceptions, jwt

        try:
            claims = jwt.decode(token, certs=self.certs(), audience=list(audiences), clock_skew_in_seconds=10)
        except exceptions.GoogleAuthError as exc:
            raise ValueError(str(exc)) from None
        if claims.get("iss") != ISSUER:
            raise ValueError("token not issued by the local stand-in for accounts.google.com")
        return dict(claims)


@functools.lru_cache(maxsize=8)
def _issuer(key_path: str, mtime_ns: int) -> Issuer:
    """Keyed by the file's mtime too: a state dir made anew holds a new key."""
    private_pem = Path(key_path).read_bytes()
    return Issuer(private_pem, self_signed_certificate(private_pem))


def new_private_key() -> bytes:
    """A fresh RSA-2048 key, PEM (PKCS#8), as Google signs ID tokens with."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def self_signed_certificate(private_pem: bytes, name: str = "medspa local issuer") -> str:
    """A certificate for a key, PEM, as Google's oauth2/v1/certs serves them (a deterministic one: the same key
    always yields the same text)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = serialization.load_pem_private_key(private_pem, password=None)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 30))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
