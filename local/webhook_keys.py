"""The local stack's SendGrid Event Webhook key pair: the sandbox signs event batches with the private
key, the sendgrid-events function verifies them with the public one, as SendGrid and its Mail Settings
verification key do. Generated once per state dir (never committed); loopback only."""

from __future__ import annotations

import base64
from pathlib import Path


def private_key_path(state_dir: Path) -> Path:
    return state_dir / "sendgrid-webhook-key.pem"


def public_key(state_dir: Path) -> str:
    """The verification key as SendGrid shows it (base64 of the DER public key); made on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = private_key_path(state_dir)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        tmp.replace(path)
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def sign(private_pem: bytes, timestamp: str, payload: bytes) -> str:
    """X-Twilio-Email-Event-Webhook-Signature for `payload` sent at `timestamp`."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return base64.b64encode(key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))).decode("ascii")
