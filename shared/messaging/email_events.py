"""SendGrid's signed Event Webhook → the ledger: an email's delivery status, and the evidence that an
email whose send answer was lost was accepted (SendGrid's base API has no message lookup and no
idempotency key, so this is the only way to know).

SendGrid POSTs a JSON array of events, signed with ECDSA (X-Twilio-Email-Event-Webhook-Signature over
timestamp + body, checked with SendGrid's own EventWebhook helper against the verification key from
Mail Settings). Each event carries our custom arg `ledger_key` ("<key>:<generation>", set by
shared.messaging.sender) and `sg_message_id` ("<X-Message-Id>.<filter…>"). A forged or stale request
is refused (403) before anything is read; within a genuine batch, an event that names nothing of ours
is counted and skipped, so SendGrid (which retries non-2xx) is never asked to send it again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared.contract.bodies import check_value
from shared.messaging.keys import is_key
from shared.messaging.ledger import FAILED_BEFORE, FAILED_NOW, Ledger, OnFailed, State
from shared.platform import log
from shared.platform.errors import ConfigError, PermanentError, RetryableError, Unauthorized

if TYPE_CHECKING:
    from shared.consent.evidence import SendRecords

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_EVENTS = 1000
MAX_AGE_SECONDS = 600  # an older signed batch is a replay
# SendGrid event names in the ledger's delivery vocabulary (shared.messaging.ledger.DELIVERY_RANK).
EVENT_STATUS = {
    "processed": "sent",
    "deferred": "sent",
    "delivered": "delivered",
    "bounce": "failed",
    "dropped": "failed",
}


WEBHOOK_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"  # noqa: S105 - the variable's name; the key itself is public
KEY_MISSING_RETRY_AFTER_SECONDS = 600


def verification_key(read_secret: Callable[[str], str]) -> str:
    """SendGrid's verification key, or RetryableError (503 + Retry-After) while it is not configured.

    SendGrid shows the key only once its Event Webhook points at this function's URL, so a first deploy runs
    without it (deploy/registry.py OPTIONAL_SECRETS). Until the operator stores it and re-deploys, nothing can be
    verified: answering 503 makes SendGrid retry each batch later rather than drop it, and names the cause."""
    try:
        return read_secret(WEBHOOK_KEY_ENV)
    except ConfigError:
        raise RetryableError(
            f"{WEBHOOK_KEY_ENV} is not configured: add SendGrid's verification key to Secret Manager and re-run "
            "deploy.sh (docs/deploy.md, First deploy)",
            code="webhook_key_missing",
            retry_after_seconds=KEY_MISSING_RETRY_AFTER_SECONDS,
        ) from None


def verify_sendgrid_signature(
    public_key: str, body: bytes, signature: str | None, timestamp: str | None, *, now: float | None = None
) -> None:
    """Raise Unauthorized (403) unless the batch is signed by SendGrid's key and recent."""
    from sendgrid.helpers.eventwebhook import EventWebhook

    if not signature or not timestamp or not timestamp.isdigit() or len(timestamp) > 12:
        raise Unauthorized("missing or malformed SendGrid signature headers", forbidden=True)
    if abs((now if now is not None else time.time()) - int(timestamp)) > MAX_AGE_SECONDS:
        raise Unauthorized("stale SendGrid signature timestamp", forbidden=True)
    try:
        valid = EventWebhook(public_key).verify_signature(body.decode("utf-8"), signature, timestamp)
    except (ValueError, TypeError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise Unauthorized("bad SendGrid event webhook signature", forbidden=True)


class Unnamed(StrEnum):
    """Why an event (or a whole batch) names nothing the ledger tracks: counted and acknowledged."""

    NOT_AN_OBJECT = "not_an_object"
    IGNORED_EVENT = "ignored_event"  # opens, clicks, unsubscribes: nothing the ledger tracks
    NO_LEDGER_KEY = "no_ledger_key"
    BAD_LEDGER_KEY = "bad_ledger_key"
    NO_MESSAGE_ID = "no_message_id"
    OVERSIZED = "oversized"  # the batch
    MALFORMED = "malformed"  # the batch
    OVER_LIMIT = "over_limit"  # events past MAX_EVENTS


@dataclass(frozen=True)
class EmailEvent:
    ledger_key: str
    generation: int
    message_id: str
    status: str


def parse_event(event: Any) -> EmailEvent | Unnamed:
    """One event as the ledger needs it, or why it names nothing of ours."""
    if not isinstance(event, dict):
        return Unnamed.NOT_AN_OBJECT
    status = EVENT_STATUS.get(str(event.get("event")))
    if status is None:
        return Unnamed.IGNORED_EVENT
    reference = event.get("ledger_key")
    if not isinstance(reference, str) or reference.count(":") != 1:
        return Unnamed.NO_LEDGER_KEY
    key, _, generation = reference.partition(":")
    if (
        not is_key(key)
        or not (generation.isascii() and generation.isdigit())
        or len(generation) > 7
        or not 0 < int(generation) <= 1_000_000
    ):
        return Unnamed.BAD_LEDGER_KEY
    message_id = event.get("sg_message_id")
    if not isinstance(message_id, str) or not 0 < len(message_id) <= 200:
        return Unnamed.NO_MESSAGE_ID
    return EmailEvent(key, int(generation), message_id.split(".", 1)[0], status)


def apply_events(
    ledger: Ledger, body: bytes, on_failed: OnFailed | None = None, evidence: SendRecords | None = None
) -> dict[str, int]:
    """Record every event of an (authenticated) batch; returns counts by outcome, for the answer.
    `on_failed(key, replayed)` makes a message an event failed (bounce, dropped) visible in failed_tasks; a
    status the ledger took as newer also goes on the message's send record (`evidence`)."""
    if len(body) > MAX_BODY_BYTES:
        log.warning("email event batch too large; acknowledged", bytes=len(body))
        return {Unnamed.OVERSIZED: 1}
    try:
        events = json.loads(body.decode("utf-8"))
        check_value(events, what="event batch")
    except (UnicodeDecodeError, ValueError, RecursionError, PermanentError):
        log.warning("email event batch is not clean JSON; acknowledged")
        return {Unnamed.MALFORMED: 1}
    if not isinstance(events, list):
        return {Unnamed.MALFORMED: 1}
    outcomes: Counter[str] = Counter()  # by Unnamed, State or Unrecorded
    for event in events[:MAX_EVENTS]:
        parsed = parse_event(event)
        if isinstance(parsed, Unnamed):
            outcomes[parsed] += 1
            continue
        outcome = ledger.record_delivery(
            parsed.ledger_key,
            generation=parsed.generation,
            message_id=parsed.message_id,
            status=parsed.status,
            error_code=None,
        )
        outcomes[outcome] += 1
        if evidence is not None and isinstance(outcome, State):
            evidence.delivery(parsed.ledger_key, parsed.status, None)
        if on_failed is not None and outcome in (FAILED_NOW, FAILED_BEFORE):
            on_failed(parsed.ledger_key, outcome == FAILED_BEFORE)
    if len(events) > MAX_EVENTS:
        outcomes[Unnamed.OVER_LIMIT] += len(events) - MAX_EVENTS
    log.info("email events recorded", **{k: v for k, v in outcomes.items() if v})
    return dict(outcomes)


def headers_of(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    return headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
