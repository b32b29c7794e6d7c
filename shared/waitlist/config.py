"""The waitlist's own environment: the public URLs Twilio and patients call, and the claim-token key.

deploy.sh sets INBOUND_SMS_URL and WAITLIST_CLAIM_URL from the deployed functions' URLs (the local stack
from local/config.py); WAITLIST_TOKEN_KEY arrives from Secret Manager. A missing one fails by name.
"""

from __future__ import annotations

from shared.platform import clients
from shared.platform import env as envvars

TOKEN_KEY = "WAITLIST_TOKEN_KEY"  # noqa: S105 - the variable's name, not a secret


def inbound_sms_url(environ: envvars.Environ | None = None) -> str:
    """The inbound-SMS webhook's public URL, exactly as configured in Twilio (its signatures cover it)."""
    return envvars.required(envvars.environ(environ), "INBOUND_SMS_URL", " (the waitlist-inbound-sms URL)")


def claim_url(environ: envvars.Environ | None = None) -> str:
    """The claim-link endpoint's public URL; email offers link to it."""
    return envvars.required(envvars.environ(environ), "WAITLIST_CLAIM_URL", " (the waitlist-claim URL)")


def token_key() -> bytes:
    """The claim tokens' signing key (Secret Manager in production)."""
    return clients.secret(TOKEN_KEY).encode("utf-8")
