"""consents/: what each patient agreed to be sent, and what they revoked (docs/consent.md). The only writer.

- `consents/{patient_id}` holds the current entry per purpose and channel (`sms_marketing`,
  `sms_transactional`, `email_marketing`, `email_transactional`): the latest event for it by `at`.
- `consents/{patient_id}/history/{event_id}` keeps every event, created once and never overwritten, for
  at + 5 years (expire_at, for a TTL policy): longer than the 4-year window in which a claim can be made.

Recording is one commit: the history doc's create (which fails when the event was recorded before, so a
replay changes nothing) and, when the event is not older than the current entry, the current doc's
change at the version read (so two events racing are applied one after the other, never lost).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from shared.contract.ids import is_doc_id
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import RetryableError
from shared.platform.store import Create, Doc, Store, Update, Write

COLLECTION = "consents"
HISTORY = "history"
CHANNELS = ("sms", "email")
SOURCES = ("booking_form", "keyword", "front_desk", "import", "twilio_21610", "revocation_text")
RETENTION = timedelta(days=5 * 365 + 1)  # at + 5 years (one leap day): outlives the 4-year claim window
MAX_ATTEMPTS = 5  # commits lost to a rival writer of the same patient before answering "try again"


class Purpose(StrEnum):
    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    REVOKED = "revoked"


def entry_name(purpose: Purpose, channel: str) -> str:
    """The current doc's field for one purpose and channel: "sms_marketing"."""
    return f"{channel}_{purpose.value}"


@dataclass(frozen=True)
class ConsentEvent:
    """One grant or revocation, as recorded. `at` is when it happened (aware; kept in UTC)."""

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

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("a consent event's time must be timezone-aware")
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
        if not (is_doc_id(self.event_id) and is_doc_id(self.patient_id)):
            raise ValueError("a consent event's event_id and patient_id must be document ids")
        object.__setattr__(self, "at", self.at.astimezone(timezone.utc))
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        object.__setattr__(self, "status", ConsentStatus(self.status))

    @property
    def entry_name(self) -> str:
        return entry_name(self.purpose, self.channel)

    def entry(self) -> dict[str, Any]:
        """The current doc's map for this purpose and channel."""
        return {
            "status": self.status.value,
            "at": self.at,
            "source": self.source,
            "wording_version": self.wording_version,
            "event_id": self.event_id,
        }

    def history_fields(self, recorded_at: datetime) -> dict[str, Any]:
        fields = {
            "clinic_id": self.clinic_id,
            "patient_id": self.patient_id,
            "purpose": self.purpose.value,
            "channel": self.channel,
            "status": self.status.value,
            "at": self.at,
            "source": self.source,
            "wording_version": self.wording_version,
            "recorded_at": recorded_at,
            "expire_at": self.at + RETENTION,
        }
        return fields | ({"message_sid": self.message_sid} if self.message_sid else {})

    @classmethod
    def from_history(cls, doc: Doc) -> ConsentEvent:
        data = doc.data
        return cls(
            patient_id=str(data["patient_id"]),
            clinic_id=str(data["clinic_id"]),
            purpose=Purpose(data["purpose"]),
            channel=str(data["channel"]),
            status=ConsentStatus(data["status"]),
            at=data["at"],
            source=str(data["source"]),
            wording_version=str(data.get("wording_version") or ""),
            event_id=doc.id,
            message_sid=data.get("message_sid"),
        )


@dataclass(frozen=True)
class ConsentState:
    """One patient's current consents: the latest event per purpose and channel."""

    patient_id: str
    entries: Mapping[str, ConsentEvent]

    def latest(self, purpose: Purpose, channel: str) -> ConsentEvent | None:
        return self.entries.get(entry_name(purpose, channel))

    def allows_marketing(self, channel: str = "sms") -> bool:
        """An explicit grant of marketing on this channel, not revoked since."""
        latest = self.latest(Purpose.MARKETING, channel)
        return latest is not None and latest.status == ConsentStatus.GRANTED

    def marketing_basis(self, channel: str = "sms") -> str | None:
        """ "consent:<event_id>" of the grant a marketing message stands on; None when none allows it."""
        latest = self.latest(Purpose.MARKETING, channel)
        return f"consent:{latest.event_id}" if latest is not None and self.allows_marketing(channel) else None

    def revoked(self, purpose: Purpose, channel: str) -> bool:
        latest = self.latest(purpose, channel)
        return latest is not None and latest.status == ConsentStatus.REVOKED

    @classmethod
    def from_doc(cls, patient_id: str, doc: Doc | None) -> ConsentState:
        if doc is None:
            return cls(patient_id, {})
        clinic_id = str(doc.get("clinic_id") or "")
        entries = {}
        for purpose in Purpose:
            for channel in CHANNELS:
                name = entry_name(purpose, channel)
                entry = doc.get(name)
                if entry is None:
                    continue
                try:
                    entries[name] = ConsentEvent(
                        patient_id=patient_id,
                        clinic_id=clinic_id,
                        purpose=purpose,
                        channel=channel,
                        status=ConsentStatus(entry["status"]),
                        at=entry["at"],
                        source=str(entry.get("source") or ""),
                        wording_version=str(entry.get("wording_version") or ""),
                        event_id=str(entry.get("event_id") or ""),
                    )
                except (AttributeError, KeyError, TypeError, ValueError):
                    # Hand-edited: read as never recorded (no marketing rests on it); the next event rewrites it.
                    log.warning("consent entry breaks the contract; read as absent", patient_id=patient_id, field=name)
        return cls(patient_id, entries)


def _path(patient_id: str) -> str:
    return f"{COLLECTION}/{patient_id}"


def _history_path(patient_id: str, event_id: str) -> str:
    return f"{COLLECTION}/{patient_id}/{HISTORY}/{event_id}"


class Consents:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def record(self, event: ConsentEvent) -> bool:
        """Record one event; False when that event_id was recorded before (nothing changes)."""
        return bool(self._record([event]))

    def revoke_sms(
        self, patient_id: str, clinic_id: str, *, source: str, event_id: str, message_sid: str | None = None
    ) -> None:
        """Revoke marketing and transactional SMS now, in one commit (history ids `<event_id>-<purpose>`)."""
        at = self.clock.now()
        self._record(
            [
                ConsentEvent(
                    patient_id=patient_id,
                    clinic_id=clinic_id,
                    purpose=purpose,
                    channel="sms",
                    status=ConsentStatus.REVOKED,
                    at=at,
                    source=source,
                    wording_version="",
                    event_id=f"{event_id}-{purpose.value}",
                    message_sid=message_sid,
                )
                for purpose in Purpose
            ]
        )

    def current(self, patient_id: str) -> ConsentState:
        return ConsentState.from_doc(patient_id, self.store.get(_path(patient_id)))

    def current_many(self, patient_ids: Sequence[str]) -> dict[str, ConsentState]:
        """Every patient's state, in batched reads (a patient never recorded has an empty state)."""
        found = self.store.get_all([_path(patient_id) for patient_id in patient_ids])
        return {
            patient_id: ConsentState.from_doc(patient_id, found.get(_path(patient_id))) for patient_id in patient_ids
        }

    def history(self, patient_id: str) -> list[ConsentEvent]:
        """Every event recorded for the patient, oldest first."""
        events = []
        for doc in self.store.query(f"{COLLECTION}/{patient_id}/{HISTORY}", order_by=[("at", "asc")]):
            try:
                events.append(ConsentEvent.from_history(doc))
            except (AttributeError, KeyError, TypeError, ValueError):
                log.warning("consent history doc breaks the contract; skipped", patient_id=patient_id, doc_id=doc.id)
        return events

    def _record(self, events: Sequence[ConsentEvent]) -> list[ConsentEvent]:
        """Record one patient's events in one commit; the ones that were new. A replayed event is dropped;
        a commit lost to a rival writer is redone on a fresh read."""
        pending = list(events)
        for _ in range(MAX_ATTEMPTS):
            if not pending:
                return []
            patient_id = pending[0].patient_id
            current = self.store.get(_path(patient_id))
            if self.store.commit(self._writes(pending, current)) is not None:
                return pending
            seen = self.store.get_all([_history_path(patient_id, event.event_id) for event in pending], fields=[])
            pending = [event for event in pending if _history_path(patient_id, event.event_id) not in seen]
        raise RetryableError("consents changed under every attempt to record", code="consent_contention")

    def _writes(self, events: Sequence[ConsentEvent], current: Doc | None) -> list[Write]:
        now = self.clock.now()
        writes: list[Write] = [
            Create(_history_path(event.patient_id, event.event_id), event.history_fields(now)) for event in events
        ]
        changes: dict[str, Any] = {}
        state = ConsentState.from_doc(events[0].patient_id, current)
        for event in sorted(events, key=lambda event: event.at):
            latest = state.entries.get(event.entry_name)
            if latest is None or event.at >= latest.at:  # not older than what is there: it is the current entry
                changes[event.entry_name] = event.entry()
        if not changes:
            return writes
        changes |= {"clinic_id": events[-1].clinic_id, "updated_at": now}
        path = _path(events[0].patient_id)
        if current is None:
            return [*writes, Create(path, {"patient_id": events[0].patient_id, **changes})]
        return [*writes, Update(path, changes, version=current.version)]
