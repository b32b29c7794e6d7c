"""Send records: one per intended patient message, what became of it and on what basis, kept beyond the
4-year claim window (docs/compliance.md). The only writer of `send_records/`.

`send_records/{ledger_key}`: clinic_id, patient_id, kind, purpose, basis ("transactional" or
"consent:<event_id>"), channel, outcome (sent | skipped | failed | unconfirmed), reason,
provider_message_id, campaign_id, at, delivery {status, error_code, at} (from the providers' callbacks),
expire_at (the TTL field). No phone, no email, no message text: a record proves what happened, never
what was said or to whom beyond the patient's id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.platform.clock import Clock
from shared.platform.store import Put, Store

COLLECTION = "send_records"
# 4 years (one leap day among them) and 60 days: a claim filed on the window's last day is still answered.
RETENTION = timedelta(days=4 * 365 + 1 + 60)
TRANSACTIONAL = "transactional"
MARKETING = "marketing"
MISSING_BASIS = "missing"  # a marketing message whose service named no consent: shown, never hidden


class SendOutcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class SendRecord:
    """One record as read back (ops compliance)."""

    key: str
    clinic_id: str
    patient_id: str
    kind: str
    purpose: str
    basis: str
    channel: str | None
    outcome: str
    reason: str | None
    provider_message_id: str | None
    campaign_id: str | None
    at: datetime | None
    delivery: Mapping[str, Any] | None

    @classmethod
    def of(cls, key: str, data: Mapping[str, Any]) -> SendRecord:
        delivery = data.get("delivery")
        return cls(
            key=key,
            clinic_id=str(data.get("clinic_id", "")),
            patient_id=str(data.get("patient_id", "")),
            kind=str(data.get("kind", "")),
            purpose=str(data.get("purpose", TRANSACTIONAL)),
            basis=str(data.get("basis", "")),
            channel=data.get("channel"),
            outcome=str(data.get("outcome", "")),
            reason=data.get("reason"),
            provider_message_id=data.get("provider_message_id"),
            campaign_id=data.get("campaign_id"),
            at=data.get("at"),
            delivery=delivery if isinstance(delivery, Mapping) else None,
        )


def path(key: str) -> str:
    return f"{COLLECTION}/{key}"


class SendRecords:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def record(
        self,
        key: str,
        fields: Mapping[str, Any],
        outcome: SendOutcome | str,
        *,
        channel: str | None = None,
        reason: str | None = None,
        provider_message_id: str | None = None,
    ) -> bool:
        """Write what became of the message `key` (a later outcome replaces an earlier one: unconfirmed →
        sent). `fields` are the ledger fields the service gave the sender. False: not a patient's message
        (staff emails carry no patient_id), nothing recorded."""
        write = self.write_for(
            key, fields, outcome, channel=channel, reason=reason, provider_message_id=provider_message_id
        )
        if write is None:
            return False
        self.store.put(write.path, write.data, merge=write.merge)
        return True

    def write_for(
        self,
        key: str,
        fields: Mapping[str, Any],
        outcome: SendOutcome | str,
        *,
        channel: str | None = None,
        reason: str | None = None,
        provider_message_id: str | None = None,
    ) -> Put | None:
        """The record's write, for a caller that commits it with its own (the ledger's "sent", all or nothing);
        None for a message that is not a patient's."""
        patient_id = fields.get("patient_id")
        if not patient_id:
            return None
        purpose = str(fields.get("purpose") or TRANSACTIONAL)
        basis = fields.get("basis") or (TRANSACTIONAL if purpose == TRANSACTIONAL else MISSING_BASIS)
        now = self.clock.now()
        record: dict[str, Any] = {
            "clinic_id": fields.get("clinic_id"),
            "patient_id": patient_id,
            "kind": fields.get("kind"),
            "purpose": purpose,
            "basis": basis,
            "channel": channel,
            "outcome": SendOutcome(outcome).value,
            "reason": reason,
            "provider_message_id": provider_message_id,
            "campaign_id": fields.get("campaign_id"),
            "at": now,
            "expire_at": now + RETENTION,
        }
        return Put(path(key), record, merge=True)  # merge: a delivery callback may have come first

    def delivery(self, key: str, status: str, error_code: str | None) -> None:
        """A provider's callback the ledger accepted as newer (the ledger orders them): its status here too."""
        now = self.clock.now()
        update = {"delivery": {"status": status, "error_code": error_code, "at": now}, "expire_at": now + RETENTION}
        self.store.put(path(key), update, merge=True)

    def of_patient(self, patient_id: str) -> list[SendRecord]:
        """Every record of one patient, oldest first."""
        docs = self.store.query(COLLECTION, where=[("patient_id", "==", patient_id)], order_by=[("at", "asc")])
        return [SendRecord.of(doc.id, doc.data) for doc in docs]

    def marketing_sent_since(self, patient_id: str, since: datetime) -> int:
        """Marketing messages that went to this patient at or after `since` (one aggregation query)."""
        where = [
            ("patient_id", "==", patient_id),
            ("purpose", "==", MARKETING),
            ("outcome", "in", [SendOutcome.SENT.value, SendOutcome.UNCONFIRMED.value]),
            ("at", ">=", since),
        ]
        return self.store.count(COLLECTION, where=where)
