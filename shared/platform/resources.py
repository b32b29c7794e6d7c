"""The names of the cloud resources the code refers to: Cloud Tasks queues and Pub/Sub topics.

Written once here; the settings' defaults, the deploy registry (deploy/registry.py) and the local
stack all read these, so a queue or topic is renamed in one place.
"""

from __future__ import annotations

QUEUE_SMS = "reminders-sms"  # rate = the Twilio sender's messages per second
QUEUE_EMAIL = "reminders-email"
QUEUE_WAITLIST = "waitlist"  # slow on purpose: offers go out in waves, the first reply wins
QUEUE_REPORTS = "reports"
QUEUE_FANOUT = "reminders-fanout"  # the reminders tick's units: one clinic-day (or shard) per task
QUEUE_CAMPAIGNS = "campaigns"  # marketing SMS, its own rate (CAMPAIGN_MPS): a campaign never delays a reminder
QUEUE_CAMPAIGN_PLANNING = "campaign-planning"  # a campaign's plan and its batches of recipients
QUEUES = (QUEUE_SMS, QUEUE_EMAIL, QUEUE_WAITLIST, QUEUE_REPORTS, QUEUE_FANOUT, QUEUE_CAMPAIGNS, QUEUE_CAMPAIGN_PLANNING)

TOPIC_REMINDERS_TICK = "reminders-tick"
TOPIC_APPOINTMENT_EVENTS = "appointment-events"
TOPIC_REPORTS_TICK = "reports-tick"
TOPIC_FAILED_TASKS_SWEEP = "failed-tasks-sweep"
TOPIC_INVENTORY_TICK = "inventory-tick"  # the daily reorder check (docs/reports.md)
TOPICS = (
    TOPIC_REMINDERS_TICK,
    TOPIC_APPOINTMENT_EVENTS,
    TOPIC_REPORTS_TICK,
    TOPIC_FAILED_TASKS_SWEEP,
    TOPIC_INVENTORY_TICK,
)


def dead_letter_topic(topic: str) -> str:
    """Where Pub/Sub parks a message of `topic` that its function refused too many times."""
    return f"{topic}-dead-letter"
