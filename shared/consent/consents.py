"""consents/{patient_id}: each patient's consent per purpose and channel, with an append-only history.

A minimal implementation of the contract's API, enough for campaigns to run against;
the consent module proper replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.platform.clock import Clock
from shared.platform.store import Create, Put, Store

COLLECTION = "consents"
HISTORY_RETENTION = timedelta(days=5 * 365)


class Purpose(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ConsentEvent:
    patient_id: str
    clinic_id: str
    purpose: Purpose
    channel: str
    status: ConsentStatus
    at: datetime
    source: str
    wording_version: str
    event_id: str
    message_sid: str | None = None


def _slot(purpose: Purpose | str, channel: str) -> str:
    return f"{channel}_{Purpose(purpose).value}"


@dataclass(frozen=True)
class ConsentState:
    patient_id: str
    events: dict[str, ConsentEvent] = field(default_factory=dict)  # "<channel>_<purpose>" → latest event

    def latest(self, purpose: Purpose | str, channel: str) -> ConsentEvent | None:
        return self.events.get(_slot(purpose, channel))

    def allows_marketing(self, channel: str = "sms") -> bool:
        """An explicit grant, not revoked since."""
        event = self.latest(Purpose.MARKETING, channel)
        return event is not None and event.status == ConsentStatus.GRANTED

    def marketing_basis(self, channel: str = "sms") -> str | None:
        event = self.latest(Purpose.MARKETING, channel)
        return f"consent:{event.event_id}" if event is not None and self.allows_marketing(channel) else None

    def revoked(self, purpose: Purpose | str, channel: str) -> bool:
        event = self.latest(purpose, channel)
        return event is not None and event.status == ConsentStatus.REVOKED


def _event_of(patient_id: str, clinic_id: str, slot: str, raw: Any) -> ConsentEvent | None:
    channel, _, purpose = slot.partition("_")
    if not isinstance(raw, dict) or raw.get("status") not in tuple(ConsentStatus):
        return None
    at = raw.get("at")
    return ConsentEvent(
        patient_id=patient_id,
        clinic_id=clinic_id,
        purpose=Purpose(purpose),
        channel=channel,
        status=ConsentStatus(raw["status"]),
        at=at if isinstance(at, datetime) else datetime.min,
        source=str(raw.get("source", "")),
        wording_version=str(raw.get("wording_version", "")),
        event_id=str(raw.get("event_id", "")),
    )


SLOTS = tuple(_slot(purpose, channel) for channel in ("sms", "email") for purpose in Purpose)


class Consents:
    """The only writer of consents/."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def _state(self, patient_id: str, data: dict[str, Any] | None) -> ConsentState:
        if not data:
            return ConsentState(patient_id)
        clinic_id = str(data.get("clinic_id", ""))
        events = {slot: e for slot in SLOTS if (e := _event_of(patient_id, clinic_id, slot, data.get(slot)))}
        return ConsentState(patient_id, events)

    def current(self, patient_id: str) -> ConsentState:
        return self.current_many([patient_id])[patient_id]

    def current_many(self, patient_ids: Sequence[str]) -> dict[str, ConsentState]:
        """Every patient's state, in one batched read."""
        docs = self.store.get_all([f"{COLLECTION}/{pid}" for pid in patient_ids])
        return {
            pid: self._state(pid, doc.data if (doc := docs.get(f"{COLLECTION}/{pid}")) else None) for pid in patient_ids
        }

    def record(self, event: ConsentEvent) -> bool:
        """False: that event_id was recorded before."""
        now = self.clock.now()
        history = {
            "clinic_id": event.clinic_id,
            "patient_id": event.patient_id,
            "purpose": event.purpose.value,
            "channel": event.channel,
            "status": event.status.value,
            "at": event.at,
            "source": event.source,
            "wording_version": event.wording_version,
            "recorded_at": now,
            "expire_at": event.at + HISTORY_RETENTION,
        }
        if event.message_sid:
            history["message_sid"] = event.message_sid
        current = {
            "clinic_id": event.clinic_id,
            "patient_id": event.patient_id,
            "updated_at": now,
            _slot(event.purpose, event.channel): {
                "status": event.status.value,
                "at": event.at,
                "source": event.source,
                "wording_version": event.wording_version,
                "event_id": event.event_id,
            },
        }
        written = self.store.commit(
            [
                Create(f"{COLLECTION}/{event.patient_id}/history/{event.event_id}", history),
                Put(f"{COLLECTION}/{event.patient_id}", current, merge=True),
            ]
        )
        return written is not None
