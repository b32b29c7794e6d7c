"""Twilio delivery status callbacks → the ledger. Signed requests only; every field checked first.

Twilio calls the StatusCallback URL we gave it (…?ledger=<key>&g=<generation>) as the message moves
queued → sent → delivered (or undelivered / failed), not always in order, and retries any non-2xx. So a
callback that names nothing we know (a malformed key, a missing MessageSid, an unknown status) is
answered 2xx and logged, never 4xx/5xx; a forged one is 403 before anything is read. What a valid
callback does to the ledger is the ledger's to decide (shared.messaging.ledger.Ledger.record_delivery).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared.messaging.keys import is_key
from shared.messaging.ledger import DELIVERY_RANK, FAILED_BEFORE, FAILED_NOW, Ledger, OnFailed, State, Unrecorded
from shared.platform import clients, log
from shared.platform.errors import Unauthorized

if TYPE_CHECKING:
    from shared.consent.evidence import SendRecords

MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
ERROR_CODE = re.compile(r"\d{1,10}")
MAX_GENERATION = 1_000_000


def verify_twilio_signature(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> None:
    """Raise Unauthorized (403) unless X-Twilio-Signature matches, checked with Twilio's own validator."""
    from twilio.request_validator import RequestValidator

    if not signature or not RequestValidator(auth_token).validate(url, dict(params), signature):
        raise Unauthorized("bad or missing X-Twilio-Signature", forbidden=True)


def verify_twilio_request(request: Any, public_url: str) -> None:
    """Raise Unauthorized (403) unless this webhook request (a Flask request: form, query string, headers) is
    signed by Twilio for `public_url`, the URL as configured in Twilio, with the auth token from Secret Manager."""
    signed_url = callback_url(public_url, request.query_string)
    signature = request.headers.get("X-Twilio-Signature")
    verify_twilio_signature(clients.secret("TWILIO_AUTH_TOKEN"), signed_url, request.form.to_dict(), signature)


def callback_url(public_url: str, query_string: bytes) -> str:
    """The URL Twilio signed: our configured public URL plus the query string exactly as it arrived."""
    query = query_string.decode("utf-8", "replace")
    return f"{public_url}?{query}" if query else public_url


class Unnamed(StrEnum):
    """Why a callback names nothing the ledger knows (answered 2xx: retrying cannot help)."""

    BAD_LEDGER_KEY = "bad_ledger_key"
    BAD_GENERATION = "bad_generation"
    BAD_MESSAGE_SID = "bad_message_sid"
    UNKNOWN_STATUS = "unknown_status"


@dataclass(frozen=True)
class StatusCallback:
    ledger_key: str
    generation: int | None
    message_sid: str
    status: str
    error_code: str | None


def parse_callback(query: Mapping[str, str], form: Mapping[str, str]) -> StatusCallback | Unnamed:
    """A validated callback, or the reason it names nothing."""
    key = query.get("ledger", "")
    if not is_key(key):
        return Unnamed.BAD_LEDGER_KEY
    raw_generation = query.get("g")
    generation = None
    if raw_generation is not None:
        # ASCII digits only ("²".isdigit() is True, int("²") raises), and short: int() of 5,000 digits raises too.
        digits = raw_generation.isascii() and raw_generation.isdigit() and len(raw_generation) <= 7
        if not digits or not 0 < int(raw_generation) <= MAX_GENERATION:
            return Unnamed.BAD_GENERATION
        generation = int(raw_generation)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not MESSAGE_SID.fullmatch(sid):
        return Unnamed.BAD_MESSAGE_SID
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if status not in DELIVERY_RANK:
        return Unnamed.UNKNOWN_STATUS
    code = form.get("ErrorCode") or None
    if code is not None and not ERROR_CODE.fullmatch(code):
        code = None
    return StatusCallback(key, generation, sid, status, code)


def apply_status(
    ledger: Ledger,
    query: Mapping[str, str],
    form: Mapping[str, str],
    on_failed: OnFailed | None = None,
    evidence: SendRecords | None = None,
) -> Unnamed | State | Unrecorded:
    """Record one (already authenticated) callback on the ledger; returns what happened, for the answer.
    `on_failed(key, replayed)` makes a message the callback failed visible in failed_tasks; a status the
    ledger took as newer also goes on the message's send record (`evidence`)."""
    callback = parse_callback(query, form)
    if isinstance(callback, Unnamed):
        log.warning("status callback names nothing; acknowledged", outcome=callback)
        return callback
    outcome = ledger.record_delivery(
        callback.ledger_key,
        generation=callback.generation,
        message_id=callback.message_sid,
        status=callback.status,
        error_code=callback.error_code,
    )
    log.info(
        "delivery status recorded", ledger_key=callback.ledger_key, provider_status=callback.status, outcome=outcome
    )
    if evidence is not None and isinstance(outcome, State):
        evidence.delivery(callback.ledger_key, callback.status, callback.error_code)
    if on_failed is not None and outcome in (FAILED_NOW, FAILED_BEFORE):
        on_failed(callback.ledger_key, outcome == FAILED_BEFORE)
    return outcome
