"""Twilio delivery status callbacks → the ledger. Signed requests only; terminal states never regress.

Twilio calls the StatusCallback URL we gave it (…?ledger=<dedup key>) as the message moves
queued → sent → delivered (or undelivered / failed), not always in order. `delivery_status` always
records the latest provider word; `state` only moves forward (sent → delivered | failed) and never
leaves delivered, failed or skipped. A callback that overtakes our own "sent" write (state still
sending) records delivery_status only: the state write that follows it is ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.messaging.ledger import COLLECTION
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, Unauthorized

PROVIDER_TO_STATE = {"sent": "sent", "delivered": "delivered", "read": "delivered",
                     "undelivered": "failed", "failed": "failed"}
FINAL_STATES = ("delivered", "failed", "skipped")


def verify_twilio_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> None:
    """Raise Unauthorized (403) unless X-Twilio-Signature matches, checked with Twilio's own validator."""
    from twilio.request_validator import RequestValidator

    if not signature or not RequestValidator(auth_token).validate(url, dict(params), signature):
        raise Unauthorized("bad or missing X-Twilio-Signature", forbidden=True)


def apply_status(db: Any, clock: Clock, ledger_key: str, params: Mapping[str, str]) -> str:
    """Record one status callback on the ledger; returns what happened (for the log line)."""
    provider_status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    message_sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not ledger_key or not message_sid:
        raise PermanentError("status callback without ledger key or MessageSid", code="bad_callback")
    ref = db.collection(COLLECTION).document(ledger_key)
    snapshot = ref.get()
    if not snapshot.exists:
        return "unknown_ledger"
    current = snapshot.to_dict() or {}
    known_sid = current.get("provider_message_id")
    if known_sid and known_sid != message_sid:
        return "other_message"  # a callback for an earlier attempt's message
    target = PROVIDER_TO_STATE.get(provider_status)
    state = current.get("state")
    if state in FINAL_STATES:
        return f"ignored_{state}"
    update: dict[str, Any] = {"delivery_status": provider_status, "updated_at": clock.now()}
    if params.get("ErrorCode"):
        update["delivery_error_code"] = str(params["ErrorCode"])[:10]
    if target in ("delivered", "failed") and state == "sent":
        update["state"] = target
        if target == "delivered":
            update["delivered_at"] = clock.now()
        else:
            update["reason"] = f"twilio_{params.get('ErrorCode') or provider_status}"
    ref.update(update)
    log.info("delivery status recorded", ledger_key=ledger_key, provider_status=provider_status,
             state=update.get("state", state))
    return update.get("state", state) or "recorded"
