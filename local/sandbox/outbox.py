"""The in-memory outbox: every SMS and email the sandbox accepted or played, with its status history."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


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


@dataclass
class Message:
    """One message as the provider saw it; mutable only through the Outbox, under its lock."""

    id: str  # Twilio MessageSid, or SendGrid X-Message-Id
    channel: str  # "sms" | "email"
    direction: str  # "outbound" | "inbound"
    to: str
    from_: str | None
    status: str
    created_at: datetime = field(default_factory=utc_now)
    updated_at: datetime = field(default_factory=utc_now)
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
            "account_sid": self.account_sid,
            "messaging_service_sid": self.messaging_service_sid,
            "num_segments": self.num_segments,
            "media_urls": list(self.media_urls),
            "status_callback": self.status_callback,
            "custom_args": dict(self.custom_args),
            "attachments": [dict(attachment) for attachment in self.attachments],
            "history": [dict(step) for step in self.history],
            "callbacks": [dict(attempt) for attempt in self.callbacks],
        }


class Outbox:
    """Thread-safe record of messages in arrival order; readers get copies, never live objects.

    Holds at most `max_messages` (oldest dropped first) so a long load test cannot exhaust memory.
    """

    def __init__(self, max_messages: int = 50_000) -> None:
        self._max_messages = max_messages
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._by_id: dict[str, list[Message]] = {}

    def add(self, message: Message) -> dict[str, Any]:
        with self._lock:
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
            return records[0].to_dict() if records else None

    def note_callback(self, message_id: str, attempt: dict[str, Any]) -> None:
        with self._lock:
            for record in self._by_id.get(message_id, []):
                record.callbacks.append(dict(attempt))

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
            return count
