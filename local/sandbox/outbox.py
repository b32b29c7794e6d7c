"""The in-memory outbox: every SMS and email the sandbox accepted or played, with its status history."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit


def utc_now() -> datetime:
    """The provider's clock: the stack's (the local clock file moves it, as it moves the functions')."""
    from shared.platform.clock import system_clock

    return system_clock.now().astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def address_key(address: str | None) -> str:
    """Compare addresses loosely: emails case-blind, phones by digits (a `+` in a query string is a space)."""
    value = (address or "").strip()
    if "@" in value:
        return value.lower()
    digits = "".join(ch for ch in value if ch.isdigit())
    return f"+{digits}" if digits else value


def ledger_reference(status_callback: str | None, custom_args: Mapping[str, Any] | None) -> str | None:
    """The ledger doc and generation a send was made for, "key:generation": an SMS names them in its
    StatusCallback (?ledger=key&g=generation), an email in its custom arg ledger_key ("key:generation").
    A refused send carries the same reference as the message that later went through."""
    if status_callback:
        query = parse_qs(urlsplit(status_callback).query)
        key, generation = (query.get("ledger") or [""])[0], (query.get("g") or [""])[0]
        if key:
            return f"{key}:{generation}" if generation else key
    reference = (custom_args or {}).get("ledger_key")
    return reference if isinstance(reference, str) and reference else None


@dataclass
class Message:
    """One message as the provider saw it; mutable only through the Outbox, under its lock."""

    id: str  # Twilio MessageSid, or SendGrid X-Message-Id
    channel: str  # "sms" | "email"
    # "outbound" (sent through the API) | "inbound" (from the patient) | "reply": the automatic answer the
    # inbound webhook's TwiML made Twilio send back (Twilio's direction "outbound-reply"); kept apart from
    # "outbound" so whoever counts the API's sends per ledger doc counts what the functions sent
    direction: str
    to: str
    from_: str | None
    status: str
    created_at: datetime = field(default_factory=utc_now)  # the stack's clock (compressed in the quick demo)
    updated_at: datetime = field(default_factory=utc_now)
    # Real time when the sandbox received it, whatever the stack's clock said: what orders the console's lists
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int = 0  # arrival number, set by the Outbox: a cursor for paging that no clock can reorder
    body: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    error_code: int | None = None
    account_sid: str | None = None
    messaging_service_sid: str | None = None
    num_segments: int | None = None
    media_urls: list[str] = field(default_factory=list)
    status_callback: str | None = None
    custom_args: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)  # SendGrid's: filename, type, content (base64)
    history: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    reply: str | None = None  # inbound: the text of the webhook's TwiML <Message>, which Twilio sends back
    in_reply_to: str | None = None  # a "reply": the inbound MessageSid it answers
    fault: str | None = None  # the fault rule that touched it ("f3 timeout: answer lost"), for the console

    def __post_init__(self) -> None:
        if not self.history:
            self.history.append({"status": self.status, "at": iso(self.created_at), "error_code": None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "direction": self.direction,
            "to": self.to,
            "from": self.from_,
            "status": self.status,
            "error_code": self.error_code,
            "body": self.body,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "received_at": iso(self.received_at),
            "seq": self.seq,
            "account_sid": self.account_sid,
            "messaging_service_sid": self.messaging_service_sid,
            "num_segments": self.num_segments,
            "media_urls": list(self.media_urls),
            "status_callback": self.status_callback,
            "custom_args": dict(self.custom_args),
            "attachments": [dict(attachment) for attachment in self.attachments],
            "history": [dict(step) for step in self.history],
            "callbacks": [dict(attempt) for attempt in self.callbacks],
            "reply": self.reply,
            "in_reply_to": self.in_reply_to,
            "fault": self.fault,
        }


@dataclass(frozen=True)
class Refusal:
    """A send the provider answered with an error (validation, opt-out or an injected fault): no message."""

    channel: str
    to: str
    from_: str | None
    http_status: int
    code: int | None  # Twilio's error code; None for SendGrid
    summary: str  # the SMS body or the email subject, to match it with the attempt that later went through
    fault: str | None = None
    ledger: str | None = None  # ledger_reference() of the refused send: its message's timeline finds it by this
    at: str = field(default_factory=lambda: iso(utc_now()))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["from"] = data.pop("from_")
        return data


class Outbox:
    """Thread-safe record of messages in arrival order; readers get copies, never live objects.

    Holds at most `max_messages` (oldest dropped first) so a long load test cannot exhaust memory.
    """

    def __init__(self, max_messages: int = 50_000, max_refusals: int = 5_000) -> None:
        self._max_messages = max_messages
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0  # bumped on every change: the console's live view waits on it
        self._messages: list[Message] = []
        self._by_id: dict[str, list[Message]] = {}
        self._refusals: deque[Refusal] = deque(maxlen=max_refusals)
        self._arrivals = 0

    def _touch(self) -> None:
        """Called under the lock after a change: wake whoever waits for one."""
        self._version += 1
        self._changed.notify_all()

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def wait_change(self, since: int, timeout: float) -> int:
        """The version once it differs from `since`, or the same one after `timeout` seconds (or a wake)."""
        with self._changed:
            if self._version == since:
                self._changed.wait(timeout)
            return self._version

    def note_change(self) -> None:
        """Something the console shows changed outside the outbox (a fault rule): tell the live views."""
        with self._lock:
            self._touch()

    def wake(self) -> None:
        """Release every waiter now (shutdown)."""
        with self._changed:
            self._changed.notify_all()

    def refuse(self, refusal: Refusal) -> None:
        with self._lock:
            self._refusals.append(refusal)
            self._touch()

    def refusals(self, *, newest: int | None = None) -> list[dict[str, Any]]:
        """Refused sends, oldest first (or the newest N)."""
        with self._lock:
            chosen = list(self._refusals)
        if newest is not None:
            chosen = chosen[-newest:] if newest > 0 else []
        return [refusal.to_dict() for refusal in chosen]

    def add(self, message: Message) -> dict[str, Any]:
        with self._lock:
            self._touch()
            self._arrivals += 1
            message.seq = self._arrivals
            self._messages.append(message)
            self._by_id.setdefault(message.id, []).append(message)
            while len(self._messages) > self._max_messages:
                oldest = self._messages.pop(0)
                siblings = [kept for kept in self._by_id[oldest.id] if kept is not oldest]
                if siblings:
                    self._by_id[oldest.id] = siblings
                else:
                    del self._by_id[oldest.id]
            return message.to_dict()

    def set_status(self, message_id: str, status: str, error_code: int | None = None) -> dict[str, Any] | None:
        """Move every record carrying this provider id to `status`, appending to its history."""
        with self._lock:
            records = self._by_id.get(message_id, [])
            now = utc_now()
            for record in records:
                record.status = status
                record.updated_at = now
                if error_code is not None:
                    record.error_code = error_code
                record.history.append({"status": status, "at": iso(now), "error_code": error_code})
            if records:
                self._touch()
            return records[0].to_dict() if records else None

    def note_callback(self, message_id: str, attempt: dict[str, Any]) -> None:
        with self._lock:
            for record in self._by_id.get(message_id, []):
                record.callbacks.append({**attempt, "at": iso(utc_now())})
            self._touch()

    def set_reply(self, message_id: str, reply: str | None) -> None:
        """Record what the webhook answered an inbound message with (the TwiML reply Twilio sends)."""
        with self._lock:
            for record in self._by_id.get(message_id, []):
                record.reply = reply
            self._touch()

    def records(self, message_id: str) -> list[dict[str, Any]]:
        """Every record carrying this provider id (an email to several recipients shares one X-Message-Id)."""
        with self._lock:
            return [record.to_dict() for record in self._by_id.get(message_id, [])]

    def get(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            records = self._by_id.get(message_id)
            return records[0].to_dict() if records else None

    def list(
        self,
        *,
        to: str | None = None,
        channel: str | None = None,
        direction: str | None = None,
        newest: int | None = None,
    ) -> list[dict[str, Any]]:
        """Messages oldest first, optionally only one recipient's, channel's or direction's, or the newest N."""
        wanted = address_key(to) if to else None
        with self._lock:
            chosen = [
                message
                for message in self._messages
                if (wanted is None or address_key(message.to) == wanted)
                and (channel is None or message.channel == channel)
                and (direction is None or message.direction == direction)
            ]
            if newest is not None:
                chosen = chosen[-newest:] if newest > 0 else []
            return [message.to_dict() for message in chosen]

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)

    def clear(self) -> int:
        with self._lock:
            count = len(self._messages)
            self._messages.clear()
            self._by_id.clear()
            self._refusals.clear()
            self._touch()
            return count
