"""The sandbox's own settings: which credentials it accepts, how it signs, how slowly it plays delivery.

The DEFAULT_* credentials are the local stack's (local/config.py gives the same to every function). The
DEFAULT_TEST_* pair plays the Twilio account's test credentials (the smoke test's clinic sends with them):
requests made with them are answered as Twilio answers test credentials (local/sandbox/twilio_api.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.platform import env as envvars
from shared.platform.errors import ConfigError

DEFAULT_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
DEFAULT_SENDGRID_KEY = "SG.sandbox-key"
DEFAULT_TEST_ACCOUNT_SID = "AC11111111111111111111111111111111"
DEFAULT_TEST_AUTH_TOKEN = "sandbox-test-auth-token"


def _float(env: envvars.Environ, name: str, default: float) -> float:
    try:
        return envvars.number(env, name, default)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def _optional_int(env: envvars.Environ, name: str) -> int | None:
    try:
        return envvars.integer(env, name, -1) if env.get(name, "").strip() else None
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


@dataclass(frozen=True)
class SandboxSettings:
    """Credentials the sandbox accepts and signs with, plus the pacing of its simulated world."""

    account_sid: str = DEFAULT_ACCOUNT_SID  # the account inbound webhooks claim to come from
    auth_token: str = DEFAULT_AUTH_TOKEN  # checked on API calls, used for X-Twilio-Signature
    sendgrid_api_key: str = DEFAULT_SENDGRID_KEY  # the only Bearer key /v3/mail/send accepts
    test_account_sid: str = DEFAULT_TEST_ACCOUNT_SID  # Twilio test credentials: magic numbers, no delivery
    test_auth_token: str = DEFAULT_TEST_AUTH_TOKEN
    callback_delay_seconds: float = 0.5  # pause between queued → sent → delivered
    callback_timeout_seconds: float = 5.0  # how long a status callback POST may take
    hang_seconds: float = 15.0  # default length of a "timeout" fault (longer than the clients' 10 s)
    status_timeout_seconds: float = 2.0  # per Firestore call on the status view
    seed: int | None = None  # seeds the fault RNG so `rate` faults are reproducible
    sendgrid_events_url: str | None = None  # where SendGrid's signed Event Webhook batches go (none: not sent)
    sendgrid_signing_key_file: str | None = None  # the PEM private key they are signed with
    inbound_sms_url: str = ""  # where the console's "reply as the patient" posts (the inbound webhook)

    @classmethod
    def from_env(cls, environ: envvars.Environ | None = None) -> SandboxSettings:
        env = envvars.environ(environ)
        return cls(
            account_sid=env.get("TWILIO_ACCOUNT_SID", "").strip() or DEFAULT_ACCOUNT_SID,
            auth_token=env.get("TWILIO_AUTH_TOKEN", "").strip() or DEFAULT_AUTH_TOKEN,
            sendgrid_api_key=env.get("SENDGRID_API_KEY", "").strip() or DEFAULT_SENDGRID_KEY,
            test_account_sid=env.get("TWILIO_TEST_ACCOUNT_SID", "").strip() or DEFAULT_TEST_ACCOUNT_SID,
            test_auth_token=env.get("TWILIO_TEST_AUTH_TOKEN", "").strip() or DEFAULT_TEST_AUTH_TOKEN,
            callback_delay_seconds=_float(env, "SANDBOX_CALLBACK_DELAY_SECONDS", 0.5),
            callback_timeout_seconds=_float(env, "SANDBOX_CALLBACK_TIMEOUT_SECONDS", 5.0),
            hang_seconds=_float(env, "SANDBOX_HANG_SECONDS", 15.0),
            status_timeout_seconds=_float(env, "SANDBOX_STATUS_TIMEOUT_SECONDS", 2.0),
            seed=_optional_int(env, "SANDBOX_SEED"),
            sendgrid_events_url=env.get("SANDBOX_SENDGRID_EVENTS_URL", "").strip() or None,
            sendgrid_signing_key_file=env.get("SANDBOX_SENDGRID_SIGNING_KEY_FILE", "").strip() or None,
            inbound_sms_url=env.get("INBOUND_SMS_URL", "").strip(),
        )
