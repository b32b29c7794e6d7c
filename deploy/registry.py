"""The one registry of deployed functions, read by deploy.sh and by the local stack.

Each `Function` is one Cloud Function (gen2): one entry point of one functions/<folder>/main.py, with
its trigger, its own service account and exactly what that account may use. deploy.sh turns each row
into a service account, IAM bindings, secret mappings, a trigger and a `gcloud functions deploy`
(docs/deploy.md); the local stack runs each row as a functions-framework process on its own port.
A function that is not written yet is simply not listed: it arrives with its code.

    python -m deploy.registry            # the registry as JSON (what deploy.sh reads)
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

from shared.platform import resources as r

SECRET_TWILIO_SID = "TWILIO_ACCOUNT_SID"  # noqa: S105 - the variable names, not secrets
SECRET_TWILIO_TOKEN = "TWILIO_AUTH_TOKEN"  # noqa: S105
SECRET_SENDGRID_KEY = "SENDGRID_API_KEY"  # noqa: S105
SECRETS = (SECRET_TWILIO_SID, SECRET_TWILIO_TOKEN, SECRET_SENDGRID_KEY)


@dataclass(frozen=True)
class Function:
    """One deployed function and everything its identity is allowed to touch."""

    name: str  # the Cloud Function's name (hyphenated, as the v2 API documents) and its account's suffix
    folder: str  # functions/<folder>: main.py + requirements.txt, staged with a copy of shared/
    target: str  # the Python function in main.py
    topic: str | None = None  # Pub/Sub trigger topic; None = an HTTP function
    public: bool = False  # HTTP only: reachable from the internet, verifies its caller's signature itself
    secrets: tuple[str, ...] = ()  # environment variables mapped from Secret Manager
    enqueues: tuple[str, ...] = ()  # Cloud Tasks queues it creates tasks in
    publishes: tuple[str, ...] = ()  # Pub/Sub topics it publishes to
    memory: str = "256Mi"
    cpu: str = "0.167"  # gen2 vCPU share; chosen per function from measured figures (docs/deploy.md)
    timeout_seconds: int = 60
    local_slot: int = 0  # the local stack serves it on MEDSPA_PORT_BASE + 20 + local_slot

    @property
    def signature(self) -> str:
        """functions-framework's signature type."""
        return "http" if self.topic is None else "cloudevent"

    @property
    def account_id(self) -> str:
        """The runtime service account's id (at most 30 characters)."""
        return f"fn-{self.name}"


FUNCTIONS: tuple[Function, ...] = (
    Function("reminder-fanout", "reminder_fanout", "on_reminders_tick", topic=r.TOPIC_REMINDERS_TICK,
             enqueues=(r.QUEUE_SMS, r.QUEUE_EMAIL), memory="512Mi", cpu="0.333", timeout_seconds=540,
             local_slot=0),
    Function("appointment-events", "reminder_fanout", "on_appointment_event", topic=r.TOPIC_APPOINTMENT_EVENTS,
             enqueues=(r.QUEUE_SMS, r.QUEUE_EMAIL), timeout_seconds=120, local_slot=1),
    Function("task-handler", "task_handler", "handle_task",
             secrets=(SECRET_TWILIO_SID, SECRET_TWILIO_TOKEN, SECRET_SENDGRID_KEY), local_slot=2),
    Function("twilio-status", "task_handler", "twilio_status", public=True, secrets=(SECRET_TWILIO_TOKEN,),
             local_slot=3),
    Function("retry-sweep", "task_handler", "sweep_failed_tasks", topic=r.TOPIC_FAILED_TASKS_SWEEP,
             enqueues=r.QUEUES, timeout_seconds=300, local_slot=7),
)

TASK_HANDLER = "task-handler"  # Cloud Tasks calls it (OIDC); every enqueuing function needs its URL
STATUS_CALLBACK = "twilio-status"  # its URL goes out with every SMS as StatusCallback


def function(name: str) -> Function:
    for entry in FUNCTIONS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def folders() -> list[str]:
    return sorted({entry.folder for entry in FUNCTIONS})


def as_json() -> str:
    rows = [{**asdict(entry), "signature": entry.signature, "account_id": entry.account_id} for entry in FUNCTIONS]
    return json.dumps({"functions": rows, "queues": list(r.QUEUES), "topics": list(r.TOPICS),
                       "secrets": list(SECRETS), "task_handler": TASK_HANDLER,
                       "status_callback": STATUS_CALLBACK}, indent=2)


if __name__ == "__main__":
    sys.stdout.write(as_json() + "\n")
