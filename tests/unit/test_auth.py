"""The task handler's caller check: real RS256 tokens verified against certificates fetched over HTTP."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from shared.platform.errors import Unauthorized
from shared.platform.settings import Settings
from shared.tasks.auth import TaskAuthenticator

AUDIENCE = "https://handler.example.com/"
CALLER = "tasks@p.iam.gserviceaccount.com"
SETTINGS = Settings.from_env(
    {"GOOGLE_CLOUD_PROJECT": "p", "TASKS_LOCATION": "l", "TASK_HANDLER_URL": AUDIENCE, "TASKS_SERVICE_ACCOUNT": CALLER}
)


def _key_and_cert(name: str) -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return private_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def google_keys():
    """A local stand-in for Google's certificate endpoint, serving one signing certificate."""
    private_pem, cert_pem = _key_and_cert("google")
    certs = json.dumps({"kid-1": cert_pem}).encode()

    class Certs(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(certs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield crypt.RSASigner.from_string(private_pem, key_id="kid-1"), f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def token(signer, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": CALLER,
        "email_verified": True,
        "iat": now,
        "exp": now + 300,
        "sub": "1234",
    }
    claims.update(overrides)
    return jwt.encode(signer, claims).decode()


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_a_token_from_the_tasks_service_account_is_accepted(google_keys):
    signer, certs_url = google_keys
    claims = TaskAuthenticator(SETTINGS, certs_url=certs_url).verify(bearer(token(signer)))
    assert claims["email"] == CALLER


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"}, bearer("not.a.jwt")])
def test_missing_or_garbled_tokens_are_401(google_keys, headers):
    with pytest.raises(Unauthorized) as caught:
        TaskAuthenticator(SETTINGS, certs_url=google_keys[1]).verify(headers)
    assert not caught.value.forbidden


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://someone-else.example.com/"},
        {"exp": int(time.time()) - 600, "iat": int(time.time()) - 900},
        {"iss": "https://evil.example.com"},
    ],
)
def test_wrong_audience_expired_or_foreign_issuer_is_401(google_keys, overrides):
    signer, certs_url = google_keys
    with pytest.raises(Unauthorized):
        TaskAuthenticator(SETTINGS, certs_url=certs_url).verify(bearer(token(signer, **overrides)))


def test_a_token_signed_by_another_key_is_401(google_keys):
    other_pem, _ = _key_and_cert("attacker")
    forged = token(crypt.RSASigner.from_string(other_pem, key_id="kid-1"))
    with pytest.raises(Unauthorized):
        TaskAuthenticator(SETTINGS, certs_url=google_keys[1]).verify(bearer(forged))


def test_another_service_account_is_403(google_keys):
    signer, certs_url = google_keys
    with pytest.raises(Unauthorized) as caught:
        TaskAuthenticator(SETTINGS, certs_url=certs_url).verify(bearer(token(signer, email="intruder@p.iam.x")))
    assert caught.value.forbidden


def test_the_emulator_switch_does_nothing_off_the_emulator(google_keys):
    production = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "TASKS_LOCATION": "l",
            "TASK_HANDLER_URL": AUDIENCE,
            "TASKS_SERVICE_ACCOUNT": CALLER,
            "ALLOW_UNAUTHENTICATED_TASKS_ON_EMULATOR": "1",
        }
    )
    with pytest.raises(Unauthorized):
        TaskAuthenticator(production, certs_url=google_keys[1]).verify({})
