"""Ports, project id and environment of the local stack: the one place the stack's layout is written down.

Every value can be overridden from the environment (see the README's configuration table), so two
stacks can run side by side (CI and a developer's demo) by choosing another MEDSPA_PORT_BASE.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy import registry
from local import identity, webhook_keys
from local.sandbox import settings as sandbox_credentials
from shared.platform import env as envvars
from shared.platform import resources
from shared.platform.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent

# Cloud Tasks queues and Pub/Sub topics the local stack creates; deploy.sh creates the same in the cloud.
QUEUES = ("default", *resources.QUEUES)
FUNCTION_SETTING_PREFIX = "MEDSPA_FN_"
# The local queues held to a rate, as deploy.env holds them in the cloud: the campaigns' at a toll-free sender's
# 10/s (below what the local handler answers, so the pacing is the queue's; docs/campaigns.md). The reminders'
# queues are not: the sandbox stands in for a Twilio that does not throttle, and the demo compresses a day.
LOCAL_QUEUE_RATES: dict[str, float] = {resources.QUEUE_CAMPAIGNS: 10.0}
TOPICS = resources.TOPICS
LOCAL_WAITLIST_TOKEN_KEY = "local-stack-waitlist-claim-key"  # signs claim links locally (Secret Manager in the cloud)
LOCAL_CAMPAIGN_LINK_KEY = "local-stack-campaign-link-key"  # signs campaign links locally (Secret Manager in the cloud)
LOCAL_BOOKING_LINK_KEY = (
    "local-stack-booking-link-key"  # signs booking restore links locally (Secret Manager in the cloud)
)
LOCAL_FEEDBACK_LINK_KEY = "local-stack-feedback-link-key"  # signs survey links locally (Secret Manager in the cloud)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: everything the local stack serves binds only these."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class EntryPoint:
    """One functions-framework process: a function folder's entry point on its own port."""

    name: str  # the deployed Cloud Function's name
    folder: str  # functions/<folder>
    target: str  # the Python function in main.py
    signature: str  # "http" or "cloudevent"
    port: int  # its URL's port: where every caller reaches it (through the front when it is behind IAM)
    topic: str | None = None  # Pub/Sub topic that triggers it (cloudevent only)
    backend_port: int = 0  # where its functions-framework listens: behind the front, or `port` itself
    behind_iam: bool = False  # private: the front checks ingress, token and invoker binding first


@dataclass(frozen=True)
class StackConfig:
    project: str
    location: str
    host: str
    firestore_port: int
    pubsub_port: int
    tasks_port: int
    sandbox_port: int
    identity_port: int  # the local issuer's certificates (local/front.py)
    state_dir: Path
    entry_points: tuple[EntryPoint, ...]
    demo_time_scale: int = 1
    # Knobs of a chaos run (tests/chaos.py); the defaults are the everyday local stack's.
    tasks_min_backoff: float = 0.1  # the Cloud Tasks wrapper's retry backoff, real seconds
    tasks_max_backoff: float = 1.0
    duplicate_deliveries: bool = False  # every dispatch sent twice
    # Function settings set for this stack only: MEDSPA_FN_<NAME>=<value> gives every function <NAME>=<value>
    # (e.g. MEDSPA_FN_LEDGER_LEASE_SECONDS=5 for a chaos run); see shared/platform/settings.py for the names.
    function_settings: tuple[tuple[str, str], ...] = ()
    # Queues dispatched at most N a second, as their max_dispatches_per_second does in the cloud (the Cloud Tasks
    # wrapper's --rate): MEDSPA_QUEUE_RATES="queue=N,..." over LOCAL_QUEUE_RATES.
    queue_rates: tuple[tuple[str, float], ...] = ()

    @property
    def clock_file(self) -> Path:
        """The local clock file: the functions' "now" and the Cloud Tasks emulator's dispatch clock."""
        return self.state_dir / "clock.json"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.host}:{self.sandbox_port}"

    def entry_point(self, name: str) -> EntryPoint:
        for entry in self.entry_points:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.entry_point(name).port}/"

    def queue_path(self, queue: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/queues/{queue}"

    def function_env(self) -> dict[str, str]:
        """The environment every function process (and every test client) gets locally."""
        return {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "FIRESTORE_EMULATOR_HOST": f"{self.host}:{self.firestore_port}",
            "PUBSUB_EMULATOR_HOST": f"{self.host}:{self.pubsub_port}",
            "CLOUD_TASKS_EMULATOR_HOST": f"{self.host}:{self.tasks_port}",
            "PROVIDER_SANDBOX_URL": self.sandbox_url,
            "TASKS_LOCATION": self.location,
            "TASK_HANDLER_URL": self.url(registry.TASK_HANDLER),
            "FANOUT_UNIT_URL": self.url(registry.FANOUT_UNIT),
            "TASKS_SERVICE_ACCOUNT": identity.service_account(self.project, registry.TASKS_INVOKER),
            "TWILIO_ACCOUNT_SID": sandbox_credentials.DEFAULT_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": sandbox_credentials.DEFAULT_AUTH_TOKEN,
            "SENDGRID_API_KEY": sandbox_credentials.DEFAULT_SENDGRID_KEY,
            # Twilio's test credentials, as the smoke clinic sends with them (ops/smoke.py; optional in the cloud)
            "TWILIO_TEST_ACCOUNT_SID": sandbox_credentials.DEFAULT_TEST_ACCOUNT_SID,
            "TWILIO_TEST_AUTH_TOKEN": sandbox_credentials.DEFAULT_TEST_AUTH_TOKEN,
            "MEDSPA_CLOCK_FILE": str(self.clock_file),
            "STATUS_CALLBACK_URL": self.url(registry.STATUS_CALLBACK),
            "SENDGRID_WEBHOOK_PUBLIC_KEY": webhook_keys.public_key(self.state_dir),
            **dict(self.function_settings),
            "INBOUND_SMS_URL": self.url(registry.INBOUND_SMS),
            "WAITLIST_CLAIM_URL": self.url(registry.CLAIM_LINK),
            "WAITLIST_TOKEN_KEY": LOCAL_WAITLIST_TOKEN_KEY,
            "CAMPAIGN_CLICK_URL": self.url(registry.CAMPAIGN_CLICK),
            "CAMPAIGN_LINK_KEY": LOCAL_CAMPAIGN_LINK_KEY,
            "BOOKING_RESTORE_URL": self.url(registry.BOOKING_RESTORE),
            "BOOKING_LINK_KEY": LOCAL_BOOKING_LINK_KEY,
            "FEEDBACK_PAGE_URL": self.url(registry.FEEDBACK_PAGE),
            "FEEDBACK_LINK_KEY": LOCAL_FEEDBACK_LINK_KEY,
        }


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return envvars.integer(env, name, default)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def _number_env(env: Mapping[str, str], name: str, default: float) -> float:
    if not env.get(name, "").strip():
        return default
    try:
        return envvars.number(env, name, 0.0)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def _queue_rates(text: str) -> tuple[tuple[str, float], ...]:
    rates = dict(LOCAL_QUEUE_RATES)
    for pair in filter(None, (part.strip() for part in text.split(","))):
        queue, _, rate = pair.partition("=")
        try:
            rates[queue.strip()] = float(rate)
        except ValueError:
            raise SystemExit(f"MEDSPA_QUEUE_RATES: {pair!r} is not queue=N") from None
    return tuple(sorted((queue, rate) for queue, rate in rates.items() if rate > 0))


def load(environ: Mapping[str, str] | None = None) -> StackConfig:
    """Read the stack's layout from MEDSPA_* variables, with defaults that fit one developer machine."""
    env = os.environ if environ is None else environ
    base = _int_env(env, "MEDSPA_PORT_BASE", 8600)
    host = "127.0.0.1"
    # Each function's URL at +20 + its slot; the private ones' functions-frameworks just past the last URL, one
    # after another in slot order (+35, +36… with 15 slots), the front before them (local/front.py). The whole
    # layout stays within +1…+44 (tests/spare_ports.py relies on it).
    backends = 21 + max(fn.local_slot for fn in registry.FUNCTIONS)
    private = sorted(fn.local_slot for fn in registry.FUNCTIONS if fn.behind_iam)
    entry_points = tuple(
        EntryPoint(
            fn.name,
            fn.folder,
            fn.target,
            fn.signature,
            base + 20 + fn.local_slot,
            topic=fn.topic,
            backend_port=base + (backends + private.index(fn.local_slot) if fn.behind_iam else 20 + fn.local_slot),
            behind_iam=fn.behind_iam,
        )
        for fn in registry.FUNCTIONS
    )
    return StackConfig(
        project=env.get("MEDSPA_PROJECT", "medspa-local"),
        location=env.get("MEDSPA_LOCATION", "us-central1"),
        host=host,
        firestore_port=_int_env(env, "MEDSPA_FIRESTORE_PORT", base + 1),
        pubsub_port=_int_env(env, "MEDSPA_PUBSUB_PORT", base + 2),
        tasks_port=_int_env(env, "MEDSPA_TASKS_PORT", base + 3),
        sandbox_port=_int_env(env, "MEDSPA_SANDBOX_PORT", base + 4),
        identity_port=_int_env(env, "MEDSPA_IDENTITY_PORT", base + 5),
        state_dir=Path(env.get("MEDSPA_STATE_DIR", REPO_ROOT / ".local")),
        demo_time_scale=max(1, _int_env(env, "MEDSPA_DEMO_TIME_SCALE", 1)),
        entry_points=entry_points,
        tasks_min_backoff=_number_env(env, "MEDSPA_TASKS_MIN_BACKOFF", 0.1),
        tasks_max_backoff=_number_env(env, "MEDSPA_TASKS_MAX_BACKOFF", 1.0),
        duplicate_deliveries=env.get("MEDSPA_DUPLICATE_DELIVERIES", "") == "1",
        queue_rates=_queue_rates(env.get("MEDSPA_QUEUE_RATES", "")),
        function_settings=tuple(
            sorted(
                (name[len(FUNCTION_SETTING_PREFIX) :], value)
                for name, value in env.items()
                if name.startswith(FUNCTION_SETTING_PREFIX) and value.strip()
            )
        ),
    )
