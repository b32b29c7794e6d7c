"""The one registry of deployed functions, read by deploy.sh and by the local stack.

Each `Function` is one Cloud Function (gen2): one entry point of one functions/<folder>/main.py, with
its trigger, its own service account and exactly what that account may use. deploy.sh turns each row
into a service account, IAM bindings, secret mappings, a trigger and a `gcloud functions deploy`
(docs/deploy.md); the local stack runs each row as a functions-framework process on its own port.
A function that is not written yet is simply not listed: it arrives with its code.

`Queue` and `Job` rows say how a queue dispatches and when a scheduler job publishes; deploy.sh makes
one only when a registered function uses it (deploy/plan.py works that out).

    python -m deploy.registry            # the registry as JSON
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

from shared.platform import resources as r

# The Cloud Functions runtime every function is deployed on (gcloud functions deploy --runtime); the local
# stack serves the functions on the same Python where this machine has it (local/runtime.py, .venv-312).
RUNTIME = "python312"

# Environment variable names the functions read their credentials from (values live in Secret Manager).
SECRET_TWILIO_SID = "TWILIO_ACCOUNT_SID"  # noqa: S105
SECRET_TWILIO_TOKEN = "TWILIO_AUTH_TOKEN"  # noqa: S105
SECRET_SENDGRID_KEY = "SENDGRID_API_KEY"  # noqa: S105
# SendGrid's Event Webhook verification key (Mail Settings → Signed Event Webhook): public, but managed like
# the others so an operator pastes it in one place.
SECRET_SENDGRID_WEBHOOK_KEY = "SENDGRID_WEBHOOK_PUBLIC_KEY"  # noqa: S105
SECRET_WAITLIST_TOKEN_KEY = "WAITLIST_TOKEN_KEY"  # noqa: S105 - signs the waitlist's claim links
SECRET_CAMPAIGN_LINK_KEY = "CAMPAIGN_LINK_KEY"  # noqa: S105 - signs campaign messages' tracked links
SECRET_BOOKING_LINK_KEY = "BOOKING_LINK_KEY"  # noqa: S105 - signs booking nudges' restore links
SECRET_FEEDBACK_LINK_KEY = "FEEDBACK_LINK_KEY"  # noqa: S105 - signs emailed surveys' page links (docs/feedback.md)
# Twilio's test credentials (Console → Account → API keys & tokens → Test credentials): the smoke test's clinic
# sends its SMS with these only (`python -m ops smoke`, docs/runbook.md). Optional: without them the smoke SMS is
# recorded as a permanent failure, never sent with the live credentials.
SECRET_TWILIO_TEST_SID = "TWILIO_TEST_ACCOUNT_SID"  # noqa: S105
SECRET_TWILIO_TEST_TOKEN = "TWILIO_TEST_AUTH_TOKEN"  # noqa: S105
SECRETS = (
    SECRET_TWILIO_SID,
    SECRET_TWILIO_TOKEN,
    SECRET_SENDGRID_KEY,
    SECRET_SENDGRID_WEBHOOK_KEY,
    SECRET_WAITLIST_TOKEN_KEY,
    SECRET_CAMPAIGN_LINK_KEY,
    SECRET_BOOKING_LINK_KEY,
    SECRET_FEEDBACK_LINK_KEY,
    SECRET_TWILIO_TEST_SID,
    SECRET_TWILIO_TEST_TOKEN,
)
# Secrets a deployment may go without. SendGrid's verification key can only exist once the functions are deployed
# (SendGrid shows it only after its Event Webhook points at sendgrid-events' URL); Twilio's test credentials are
# needed only by the smoke test's clinic (ops/smoke.py). deploy.sh creates such a secret but maps it with
# --set-secrets only once it has an enabled version, and says in its summary how to add one; until then the code
# that needs it answers with a classified failure (sendgrid-events: 503 with Retry-After, so nothing is lost; a
# smoke SMS: failed_tasks twilio_test_credentials_missing, never a live send). Every other secret without a
# version stops the deploy.
OPTIONAL_SECRETS = frozenset({SECRET_SENDGRID_WEBHOOK_KEY, SECRET_TWILIO_TEST_SID, SECRET_TWILIO_TEST_TOKEN})


# The identities Google's services call private functions as (deploy.sh creates both accounts). Cloud Run checks
# the caller's token and its roles/run.invoker binding before a request reaches a private function, then hands the
# function the token with its signature removed (docs/deploy.md, "Who may call a private function").
TASKS_INVOKER = "tasks-invoker"  # Cloud Tasks signs its OIDC tokens as this account
EVENTS_INVOKER = "events-invoker"  # Eventarc pushes Pub/Sub events as this account
INVOKERS = (TASKS_INVOKER, EVENTS_INVOKER)


@dataclass(frozen=True)
class Function:
    """One deployed function and everything its identity is allowed to touch."""

    name: str  # the Cloud Function's name (hyphenated, as the v2 API documents) and its account's suffix
    folder: str  # functions/<folder>: main.py + requirements.txt, staged with a copy of shared/
    target: str  # the Python function in main.py
    topic: str | None = None  # Pub/Sub trigger topic; None = an HTTP function
    public: bool = False  # HTTP only: reachable from the internet, verifies its caller's signature itself
    # Accounts (INVOKERS) granted roles/run.invoker on a private HTTP function: the only callers Cloud Run lets
    # through (an event function's is always EVENTS_INVOKER, its trigger's identity). deploy.sh grants exactly
    # these, and the local stack's front refuses everyone else.
    invokers: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()  # environment variables mapped from Secret Manager
    enqueues: tuple[str, ...] = ()  # Cloud Tasks queues it creates tasks in
    # Re-enqueues failed tasks into the queue each failed on: it may enqueue into every task-handler queue
    # another deployed function enqueues into (deploy/plan.py works them out), and into no other.
    requeues: bool = False
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
    def ingress(self) -> str:
        """Cloud Run ingress: a public webhook takes the internet; everything else only its project's traffic."""
        return "all" if self.public else "internal-only"

    @property
    def invoker_accounts(self) -> tuple[str, ...]:
        """Every account bound roles/run.invoker on it: its invokers, and Eventarc's identity for an event function."""
        return (EVENTS_INVOKER, *self.invokers) if self.topic is not None else self.invokers

    @property
    def behind_iam(self) -> bool:
        """Deployed --no-allow-unauthenticated: Cloud Run verifies each caller's token before the function runs."""
        return not self.public

    @property
    def account_id(self) -> str:
        """The runtime service account's id (at most 30 characters)."""
        return f"fn-{self.name}"


@dataclass(frozen=True)
class Queue:
    """How one Cloud Tasks queue dispatches; the values are deploy.env settings named here."""

    name: str
    rate_setting: str  # the setting holding its max dispatches per second
    concurrency_setting: str | None = None  # the setting holding its max concurrent dispatches ...
    max_concurrent: int | None = None  # ... or a fixed number
    # Its retry backoff, when not deploy.env's QUEUE_MIN_BACKOFF / QUEUE_MAX_BACKOFF (a Cloud Tasks duration).
    min_backoff: str | None = None
    max_backoff: str | None = None
    # The function its tasks are POSTed to. The retry sweep re-enqueues only into the task handler's queues:
    # it sends every task it puts back to the handler.
    target: str = "task-handler"


@dataclass(frozen=True)
class Job:
    """One Cloud Scheduler job publishing to a topic; its cron schedule is a deploy.env setting."""

    name: str
    topic: str
    schedule_setting: str
    body: str  # the message data, JSON
    description: str


FUNCTIONS: tuple[Function, ...] = (
    Function(
        # The tick's coordinator: one unit per clinic-day into the fan-out queue, nothing else.
        "reminder-fanout",
        "reminder_fanout",
        "on_reminders_tick",
        topic=r.TOPIC_REMINDERS_TICK,
        enqueues=(r.QUEUE_FANOUT,),
        memory="256Mi",
        cpu="0.167",
        timeout_seconds=300,
        local_slot=0,
    ),
    Function(
        "appointment-events",
        "reminder_fanout",
        "on_appointment_event",
        topic=r.TOPIC_APPOINTMENT_EVENTS,
        enqueues=(r.QUEUE_SMS, r.QUEUE_EMAIL),
        timeout_seconds=120,
        local_slot=1,
    ),
    Function(
        "task-handler",
        "task_handler",
        "handle_task",
        secrets=(
            SECRET_TWILIO_SID,
            SECRET_TWILIO_TOKEN,
            SECRET_SENDGRID_KEY,
            SECRET_WAITLIST_TOKEN_KEY,
            SECRET_CAMPAIGN_LINK_KEY,  # a campaign message's link is signed as it is sent
            SECRET_BOOKING_LINK_KEY,  # a booking nudge's restore link, likewise
            SECRET_FEEDBACK_LINK_KEY,  # so is an emailed survey's page link
            SECRET_TWILIO_TEST_SID,
            SECRET_TWILIO_TEST_TOKEN,
        ),
        # waitlist waves: offers and results into the waitlist queue, a winner's appointment.created;
        # a campaign's plan and batches into the planning queue, its messages into the campaigns queue; a
        # rebooking nudge outside its recipient's window moved to a new task on the SMS queue (docs/rebooking.md)
        enqueues=(r.QUEUE_WAITLIST, r.QUEUE_CAMPAIGN_PLANNING, r.QUEUE_CAMPAIGNS, r.QUEUE_SMS),
        publishes=(r.TOPIC_APPOINTMENT_EVENTS,),
        invokers=(TASKS_INVOKER,),
        local_slot=2,
    ),
    Function(
        # One clinic-day (or a shard of one) per invocation, from the fan-out queue; splits a large day.
        "reminder-fanout-unit",
        "reminder_fanout",
        "run_fanout_unit",
        enqueues=(r.QUEUE_FANOUT, r.QUEUE_SMS, r.QUEUE_EMAIL),
        memory="256Mi",
        cpu="0.333",
        timeout_seconds=300,
        invokers=(TASKS_INVOKER,),
        local_slot=11,
    ),
    Function(
        "twilio-status", "task_handler", "twilio_status", public=True, secrets=(SECRET_TWILIO_TOKEN,), local_slot=3
    ),
    Function(
        "sendgrid-events",
        "task_handler",
        "sendgrid_events",
        public=True,
        secrets=(SECRET_SENDGRID_WEBHOOK_KEY,),
        local_slot=8,
    ),
    Function(
        "report-builder",
        "report_builder",
        "on_reports_tick",
        topic=r.TOPIC_REPORTS_TICK,
        enqueues=(r.QUEUE_REPORTS,),
        memory="512Mi",
        cpu="0.333",
        timeout_seconds=540,
        local_slot=9,
    ),
    Function(
        "inventory-check",
        "report_builder",
        "on_inventory_tick",
        topic=r.TOPIC_INVENTORY_TICK,
        enqueues=(r.QUEUE_REPORTS,),
        timeout_seconds=300,
        local_slot=10,
    ),
    Function(
        "waitlist-cancellations",
        "waitlist",
        "on_appointment_cancelled",
        topic=r.TOPIC_APPOINTMENT_EVENTS,  # the second function on this topic: each has its own subscription
        enqueues=(r.QUEUE_WAITLIST,),
        timeout_seconds=120,
        local_slot=4,
    ),
    Function(
        "waitlist-inbound-sms",
        "waitlist",
        "inbound_sms",
        public=True,  # Twilio's "A message comes in" webhook; verifies X-Twilio-Signature
        secrets=(SECRET_TWILIO_TOKEN,),
        enqueues=(r.QUEUE_WAITLIST, r.QUEUE_SMS, r.QUEUE_EMAIL),  # and a first score's review link or alert
        publishes=(r.TOPIC_APPOINTMENT_EVENTS,),
        local_slot=5,
    ),
    Function(
        "waitlist-claim",
        "waitlist",
        "claim_offer",
        public=True,  # a patient's browser follows an email offer's link; the signed token is the check
        secrets=(SECRET_WAITLIST_TOKEN_KEY,),
        enqueues=(r.QUEUE_WAITLIST,),
        publishes=(r.TOPIC_APPOINTMENT_EVENTS,),
        local_slot=6,
    ),
    # Public: a patient's phone follows a campaign message's link; the signed token is the check.
    Function(
        "campaign-click", "campaigns", "campaign_click", public=True, secrets=(SECRET_CAMPAIGN_LINK_KEY,), local_slot=12
    ),
    # Public: a patient follows a booking nudge's restore link (docs/booking-recovery.md); the token is the check.
    Function(
        "booking-restore",
        "patient_links",
        "booking_restore",
        public=True,
        secrets=(SECRET_BOOKING_LINK_KEY,),
        local_slot=13,
    ),
    # Public: a patient's browser opens an emailed survey's link; the signed token is the check (docs/feedback.md).
    Function(
        "feedback-page",
        "patient_links",
        "feedback_page",
        public=True,
        secrets=(SECRET_FEEDBACK_LINK_KEY,),
        enqueues=(r.QUEUE_SMS, r.QUEUE_EMAIL),  # a first score's review link or managers' alert
        local_slot=14,
    ),
    Function(
        "retry-sweep",
        "task_handler",
        "sweep_failed_tasks",
        topic=r.TOPIC_FAILED_TASKS_SWEEP,
        requeues=True,
        timeout_seconds=300,
        local_slot=7,
    ),
)

QUEUES: tuple[Queue, ...] = (
    # the Twilio sender's throughput: faster would only earn 20429 "too many requests"
    Queue(r.QUEUE_SMS, "TWILIO_MPS", concurrency_setting="SMS_MAX_CONCURRENT"),
    Queue(r.QUEUE_EMAIL, "EMAIL_MAX_PER_SECOND", concurrency_setting="EMAIL_MAX_CONCURRENT"),
    Queue(r.QUEUE_WAITLIST, "WAITLIST_MAX_PER_SECOND", max_concurrent=2),
    Queue(r.QUEUE_REPORTS, "REPORTS_MAX_PER_SECOND", max_concurrent=5),
    # Marketing SMS, apart from the reminders' queue: a campaign never delays a reminder (docs/campaigns.md).
    Queue(r.QUEUE_CAMPAIGNS, "CAMPAIGN_MPS", max_concurrent=4),
    Queue(r.QUEUE_CAMPAIGN_PLANNING, "CAMPAIGN_PLANNING_MAX_PER_SECOND", max_concurrent=2),
    # The tick's units: as many at once as the unit function may have instances; a failed unit is retried
    # within seconds, not minutes (its retry only fills the gap), and the tick is done well inside an hour.
    Queue(
        r.QUEUE_FANOUT,
        "FANOUT_MAX_PER_SECOND",
        concurrency_setting="FANOUT_MAX_CONCURRENT",
        min_backoff="2s",
        max_backoff="60s",
        target="reminder-fanout-unit",
    ),
)

JOBS: tuple[Job, ...] = (
    Job(
        "reminders-tick",
        r.TOPIC_REMINDERS_TICK,
        "REMINDER_SCHEDULE",
        "{}",
        "Daily reminders tick (every clinic, its local tomorrow)",
    ),
    Job(
        "reports-daily",
        r.TOPIC_REPORTS_TICK,
        "REPORT_SCHEDULE_DAILY",
        '{"period":"daily"}',
        "Daily clinic reports (every clinic, its local yesterday)",
    ),
    Job(
        "reports-weekly",
        r.TOPIC_REPORTS_TICK,
        "REPORT_SCHEDULE_WEEKLY",
        '{"period":"weekly"}',
        "Weekly clinic reports (every clinic, its last full Monday-Sunday week)",
    ),
    Job(
        "inventory-check",
        r.TOPIC_INVENTORY_TICK,
        "INVENTORY_SCHEDULE",
        "{}",
        "Daily inventory reorder check (every clinic, its local today)",
    ),
    Job(
        "failed-tasks-sweep",
        r.TOPIC_FAILED_TASKS_SWEEP,
        "SWEEP_SCHEDULE",
        "{}",
        "Re-enqueue failed tasks an operator marked retry",
    ),
)

TASK_HANDLER = "task-handler"  # Cloud Tasks calls it (OIDC); every enqueuing function needs its URL
FANOUT_UNIT = "reminder-fanout-unit"  # Cloud Tasks calls it too (OIDC); the coordinator enqueues for its URL
STATUS_CALLBACK = "twilio-status"  # its URL goes out with every SMS as StatusCallback
INBOUND_SMS = "waitlist-inbound-sms"  # its URL is what Twilio signs inbound webhooks with (INBOUND_SMS_URL)
CLAIM_LINK = "waitlist-claim"  # its URL starts every email offer's claim link (WAITLIST_CLAIM_URL)
CAMPAIGN_CLICK = "campaign-click"  # its URL starts every campaign message's tracked link (CAMPAIGN_CLICK_URL)
BOOKING_RESTORE = "booking-restore"  # its URL starts every booking nudge's restore link (BOOKING_RESTORE_URL)
FEEDBACK_PAGE = "feedback-page"  # its URL starts every emailed survey's link (FEEDBACK_PAGE_URL)
EMAIL_EVENTS = "sendgrid-events"  # its URL is SendGrid's Event Webhook URL (set in SendGrid; printed by deploy.sh)


def function(name: str) -> Function:
    """The registered function called `name`."""
    for entry in FUNCTIONS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def folders() -> list[str]:
    """Every function folder with at least one registered entry point."""
    return sorted({entry.folder for entry in FUNCTIONS})


def as_json() -> str:
    """The registry as JSON, with each function's derived signature and account id."""
    rows = [{**asdict(entry), "signature": entry.signature, "account_id": entry.account_id} for entry in FUNCTIONS]
    return json.dumps(
        {
            "functions": rows,
            "queues": list(r.QUEUES),
            "topics": list(r.TOPICS),
            "queue_settings": [asdict(queue) for queue in QUEUES],
            "jobs": [asdict(job) for job in JOBS],
            "secrets": list(SECRETS),
            "optional_secrets": sorted(OPTIONAL_SECRETS),
            "task_handler": TASK_HANDLER,
            "fanout_unit": FANOUT_UNIT,
            "status_callback": STATUS_CALLBACK,
            "inbound_sms": INBOUND_SMS,
            "claim_link": CLAIM_LINK,
            "campaign_click": CAMPAIGN_CLICK,
            "booking_restore": BOOKING_RESTORE,
            "feedback_page": FEEDBACK_PAGE,
            "email_events": EMAIL_EVENTS,
        },
        indent=2,
    )


if __name__ == "__main__":
    sys.stdout.write(as_json() + "\n")
