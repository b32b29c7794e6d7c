"""One frozen Settings object read from the environment, failing fast with the missing variable's name."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from shared.platform import env as envvars
from shared.platform import resources
from shared.platform.errors import ConfigError

DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_MAX_EVENT_AGE_SECONDS = 6 * 3600
DEFAULT_PROVIDER_TIMEOUT_SECONDS = 10.0
DEFAULT_LEDGER_LEASE_SECONDS = 120  # a sender's claim; must outlast a send on every channel
DEFAULT_UNCONFIRMED_WAIT_SECONDS = 60  # how long a lost answer's evidence (callback, event) is awaited


_NEEDED = {
    "fanout_unit_url": ("FANOUT_UNIT_URL", " (the reminder-fanout-unit URL)"),
    "inbound_sms_url": ("INBOUND_SMS_URL", " (the waitlist-inbound-sms URL)"),
    "claim_url": ("WAITLIST_CLAIM_URL", " (the waitlist-claim URL)"),
    "campaign_click_url": ("CAMPAIGN_CLICK_URL", " (the campaign-click URL)"),
    "booking_restore_url": ("BOOKING_RESTORE_URL", " (the booking-restore URL)"),
    "feedback_page_url": ("FEEDBACK_PAGE_URL", " (the feedback-page URL)"),
}


@dataclass(frozen=True)
class Settings:
    """Everything a function needs from its environment; secrets arrive as variables from Secret Manager."""

    project: str
    tasks_location: str
    task_handler_url: str
    tasks_service_account: str  # the identity Cloud Tasks signs OIDC tokens as
    task_audience: str  # the audience the handler expects in those tokens
    queue_sms: str
    queue_email: str
    queue_waitlist: str
    queue_reports: str
    queue_fanout: str  # the reminders tick's units
    queue_campaigns: str  # campaign messages (docs/campaigns.md)
    queue_campaign_planning: str  # a campaign's plan and batches
    queue_max_attempts: int
    status_callback_url: str  # the twilio-status function's public URL; empty → no delivery callbacks
    max_event_age_seconds: int  # a scheduled tick older than this is acknowledged and logged, not run
    provider_timeout_seconds: float  # per Twilio / SendGrid call
    ledger_lease_seconds: int  # how long a sender's claim holds before another delivery may take it over
    unconfirmed_wait_seconds: int  # a send whose answer was lost is re-sent only after this without evidence
    # Deployed --no-allow-unauthenticated (deploy.sh sets INVOKER_IAM_CHECK=on from the registry): Cloud Run has
    # verified the caller's token and invoker binding before the request arrives (shared/tasks/auth.py).
    invoker_iam_check: bool
    # Set on the functions that need them (deploy.sh, local/config.py); read by name when used, so a function
    # that never needs one does not fail for its absence.
    fanout_unit_url: str  # the reminder-fanout-unit function's URL: units are POSTed there, its audience
    inbound_sms_url: str  # the waitlist-inbound-sms URL exactly as configured in Twilio (signatures cover it)
    claim_url: str  # the waitlist-claim URL; email offers link to it
    campaign_click_url: str  # the campaign-click URL; every campaign message's tracked link starts with it
    booking_restore_url: str  # the booking-restore URL; every booking nudge's restore link starts with it
    feedback_page_url: str  # the feedback-page URL; every emailed survey's link starts with it (docs/feedback.md)

    def queue(self, role: str) -> str:
        """The deployed name of the queue with this role (shared/tasks/declaration.py Queue)."""
        return {
            "sms": self.queue_sms,
            "email": self.queue_email,
            "waitlist": self.queue_waitlist,
            "reports": self.queue_reports,
            "fanout": self.queue_fanout,
            "campaigns": self.queue_campaigns,
            "campaign_planning": self.queue_campaign_planning,
        }[role]

    def needed(self, name: str) -> str:
        """One of the URLs above, or a ConfigError naming its variable."""
        value = getattr(self, name)
        if not value:
            variable, what = _NEEDED[name]
            raise ConfigError(f"missing required environment variable {variable}{what}")
        return str(value)

    @classmethod
    def from_env(cls, environ: envvars.Environ | None = None) -> Settings:
        env = envvars.environ(environ)
        handler_url = envvars.required(env, "TASK_HANDLER_URL")
        return cls(
            project=envvars.required(env, "GOOGLE_CLOUD_PROJECT"),
            tasks_location=envvars.required(env, "TASKS_LOCATION"),
            task_handler_url=handler_url,
            tasks_service_account=envvars.required(env, "TASKS_SERVICE_ACCOUNT"),
            task_audience=envvars.text(env, "TASK_AUDIENCE", handler_url),
            queue_sms=envvars.text(env, "QUEUE_SMS", resources.QUEUE_SMS),
            queue_email=envvars.text(env, "QUEUE_EMAIL", resources.QUEUE_EMAIL),
            queue_waitlist=envvars.text(env, "QUEUE_WAITLIST", resources.QUEUE_WAITLIST),
            queue_reports=envvars.text(env, "QUEUE_REPORTS", resources.QUEUE_REPORTS),
            queue_fanout=envvars.text(env, "QUEUE_FANOUT", resources.QUEUE_FANOUT),
            queue_campaigns=envvars.text(env, "QUEUE_CAMPAIGNS", resources.QUEUE_CAMPAIGNS),
            queue_campaign_planning=envvars.text(env, "QUEUE_CAMPAIGN_PLANNING", resources.QUEUE_CAMPAIGN_PLANNING),
            queue_max_attempts=envvars.integer(env, "QUEUE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, minimum=1, maximum=100),
            status_callback_url=envvars.text(env, "STATUS_CALLBACK_URL"),
            max_event_age_seconds=envvars.integer(
                env, "MAX_EVENT_AGE_SECONDS", DEFAULT_MAX_EVENT_AGE_SECONDS, minimum=60
            ),
            provider_timeout_seconds=envvars.number(
                env, "PROVIDER_TIMEOUT_SECONDS", DEFAULT_PROVIDER_TIMEOUT_SECONDS, minimum=0.1
            ),
            ledger_lease_seconds=envvars.integer(
                env, "LEDGER_LEASE_SECONDS", DEFAULT_LEDGER_LEASE_SECONDS, minimum=5, maximum=3600
            ),
            unconfirmed_wait_seconds=envvars.integer(
                env, "UNCONFIRMED_WAIT_SECONDS", DEFAULT_UNCONFIRMED_WAIT_SECONDS, minimum=0, maximum=86400
            ),
            invoker_iam_check=envvars.switch(env, "INVOKER_IAM_CHECK"),
            **{name: envvars.text(env, variable) for name, (variable, _) in _NEEDED.items()},
        )


@functools.cache
def settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
