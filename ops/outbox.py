"""A provider's outbox as `ops why` reads it: the messages sent to one address, ids and statuses only.

On the local stack the provider sandbox keeps every message (GET /_sandbox/messages?to=…); in the cloud
there is no such outbox to read (Twilio's and SendGrid's logs are searched by the provider message id the
ledger records). A message's text never leaves `ProviderMessage.from_sandbox`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.platform.masking import mask_address

TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ProviderMessage:
    """What a provider's outbox says of one message: ids, the masked address and its statuses."""

    id: str
    channel: str
    to: str  # masked
    ledger_key: str | None
    generation: int | None
    statuses: tuple[tuple[str, datetime | None, int | None], ...]  # (status, at, error code), oldest first

    @classmethod
    def from_sandbox(cls, record: Mapping[str, Any]) -> ProviderMessage:
        """A record of the provider sandbox's outbox; its text, subject and addresses stay behind."""
        key, generation = sent_for(record)
        history = record.get("history")
        return cls(
            id=str(record.get("id", ""))[:64],
            channel=str(record.get("channel", "")),
            to=mask_address(str(record.get("to") or "")),
            ledger_key=key,
            generation=generation,
            statuses=tuple(
                (str(step.get("status")), _instant(step.get("at")), _number(step.get("error_code")))
                for step in (history if isinstance(history, list) else [])
                if isinstance(step, Mapping)
            ),
        )


class Outbox(Protocol):
    def messages_to(self, address: str) -> list[ProviderMessage]:
        """Every outbound message the provider holds for this phone number or email address."""


class SandboxOutbox:
    """The local provider sandbox's outbox, over its HTTP API. Raises OSError when it cannot be read."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def messages_to(self, address: str) -> list[ProviderMessage]:
        import requests

        response = requests.get(
            f"{self.url}/_sandbox/messages", params={"to": address, "direction": "outbound"}, timeout=TIMEOUT_SECONDS
        )
        try:
            records = response.json() if response.status_code == 200 else None
        except ValueError:
            records = None
        if not isinstance(records, list):
            raise OSError(f"the provider sandbox answered {response.status_code} to GET /_sandbox/messages")
        return [ProviderMessage.from_sandbox(record) for record in records if isinstance(record, Mapping)]


def sent_for(record: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """(ledger key, generation) a provider message was sent for, read as the sandbox reads it
    (local.sandbox.outbox.ledger_reference: an SMS's StatusCallback ?ledger=key&g=generation, an email's custom
    arg ledger_key "key:generation")."""
    from local.sandbox.outbox import ledger_reference

    callback = record.get("status_callback") if record.get("channel") == "sms" else None
    custom = record.get("custom_args")
    reference = ledger_reference(
        str(callback) if callback else None, custom if not callback and isinstance(custom, Mapping) else None
    )
    if not reference:
        return None, None
    key, colon, generation = reference.rpartition(":")
    return (key, _number(generation)) if colon else (reference, None)


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None
