"""One frozen Settings object read from the environment, failing fast with the missing variable's name."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from shared.platform.errors import ConfigError

EMULATOR_VARIABLES = ("FIRESTORE_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST")


def on_emulator(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """True only on the local stack: every Google service we write to is an emulator.

    Local-only switches (unauthenticated tasks, a settable clock) take effect only when this is true,
    so they can never be left on in production, where these variables are never set.
    """
    env = os.environ if environ is None else environ
    return all(env.get(name) for name in EMULATOR_VARIABLES)


def _require(env: dict[str, str] | os._Environ[str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing required environment variable {name}")
    return value


def _int(env: dict[str, str] | os._Environ[str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    """Everything a function needs from its environment; secrets arrive here from Secret Manager."""

    project: str
    tasks_location: str
    task_handler_url: str
    tasks_service_account: str  # the identity Cloud Tasks signs OIDC tokens as
    task_audience: str  # the audience the handler expects in those tokens
    queue_sms: str
    queue_email: str
    queue_waitlist: str
    queue_max_attempts: int
    status_callback_url: str  # the twilio_status function's public URL; empty → no delivery callbacks
    allow_unauthenticated_tasks: bool  # effective only on the emulator, see on_emulator()
    demo_time_scale: int  # local demo only: divide the wait until a task's send time by this

    @classmethod
    def from_env(cls, environ: dict[str, str] | os._Environ[str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        handler_url = _require(env, "TASK_HANDLER_URL")
        emulator = on_emulator(env)
        return cls(
            project=_require(env, "GOOGLE_CLOUD_PROJECT"),
            tasks_location=_require(env, "TASKS_LOCATION"),
            task_handler_url=handler_url,
            tasks_service_account=_require(env, "TASKS_SERVICE_ACCOUNT"),
            task_audience=env.get("TASK_AUDIENCE", "").strip() or handler_url,
            queue_sms=env.get("QUEUE_SMS", "").strip() or "reminders-sms",
            queue_email=env.get("QUEUE_EMAIL", "").strip() or "reminders-email",
            queue_waitlist=env.get("QUEUE_WAITLIST", "").strip() or "waitlist",
            queue_max_attempts=_int(env, "QUEUE_MAX_ATTEMPTS", 8),
            status_callback_url=env.get("STATUS_CALLBACK_URL", "").strip(),
            allow_unauthenticated_tasks=emulator
            and env.get("ALLOW_UNAUTHENTICATED_TASKS_ON_EMULATOR", "") == "1",
            demo_time_scale=max(1, _int(env, "DEMO_TIME_SCALE", 1)) if emulator else 1,
        )


@functools.cache
def settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
