"""The notification ledger: notifications/{dedup_key}, claimed before every send (DESIGN §3.2–3.3).

Protocol: scheduled → sending (claimed) → sent → delivered, or → skipped / failed. Every transition
that must happen once is guarded by a single-document precondition, never by a transaction (the local
Firestore stand-in's transactions are not isolated, and one precondition is one round trip):

- scheduling is `create()` of the ledger doc: a second scheduler gets AlreadyExists;
- a claim is one atomic batch: `create()` of the marker doc notifications/{key}/claims/{generation}
  plus the update of the ledger doc to state sending with that generation and a lease. Two claimers of
  the same generation race on the marker's create; exactly one batch commits;
- a claim whose lease ran out (the sender crashed mid-send) is taken over by claiming generation + 1,
  again through a marker create, so two rescuers of one stale claim cannot both win.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc

from shared.platform.clock import Clock
from shared.platform.errors import RetryableError

COLLECTION = "notifications"
CLAIMS = "claims"
TERMINAL_STATES = ("sent", "delivered", "skipped", "failed")
DEFAULT_LEASE = timedelta(minutes=2)
RETENTION = timedelta(days=90)  # expire_at for the TTL policy


def dedup_key(kind: str, appointment_id: str, send_slot: str) -> str:
    """Stable key of one intended message: kind + appointment + send slot (e.g. '24h' or an ISO instant)."""
    digest = hashlib.sha256(f"{kind}\x1f{appointment_id}\x1f{send_slot}".encode()).hexdigest()
    return f"{kind}-{digest[:40]}"


@dataclass(frozen=True)
class LedgerEntry:
    key: str
    state: str
    generation: int
    lease_until: datetime | None
    attempts: int
    data: dict[str, Any]

    @classmethod
    def from_snapshot(cls, key: str, data: dict[str, Any]) -> LedgerEntry:
        return cls(
            key=key,
            state=str(data.get("state", "scheduled")),
            generation=int(data.get("generation", 0) or 0),
            lease_until=data.get("lease_until"),
            attempts=int(data.get("attempts", 0) or 0),
            data=data,
        )

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class Claim:
    key: str
    generation: int
    took_over: bool


class AlreadyFinal(Exception):
    """The message already reached a terminal state: a duplicate delivery; answer 2xx, send nothing."""

    def __init__(self, entry: LedgerEntry) -> None:
        super().__init__(f"ledger {entry.key} is already {entry.state}")
        self.entry = entry


class Ledger:
    """Reads and moves notifications/{key} docs; `db` is a google.cloud.firestore Client."""

    def __init__(self, db: Any, clock: Clock, *, lease: timedelta = DEFAULT_LEASE) -> None:
        self.db, self.clock, self.lease = db, clock, lease

    def ref(self, key: str) -> Any:
        return self.db.collection(COLLECTION).document(key)

    def _scheduled_doc(self, fields: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            **fields,
            "state": "scheduled",
            "attempts": 0,
            "generation": 0,
            "created_at": now,
            "updated_at": now,
            "expire_at": now + RETENTION,
        }

    def schedule(self, key: str, fields: dict[str, Any]) -> bool:
        """Write the ledger doc in state scheduled. False when it already existed (a re-run)."""
        try:
            self.ref(key).create(self._scheduled_doc(fields, self.clock.now()))
        except gexc.AlreadyExists:
            return False
        return True

    def schedule_all(self, entries: list[tuple[str, dict[str, Any]]]) -> bool:
        """Write up to 500 ledger docs in state scheduled in one batch of `create()`s: one round trip instead
        of one per doc. False when any of them already exists (a concurrent run got there first); the caller
        then goes doc by doc. Firestore applies nothing of a failed batch, but the local stand-in's batches
        are not atomic (the writes before the failing one stay), so a caller must recognise its own docs."""
        if not entries:
            return True
        now = self.clock.now()
        batch = self.db.batch()
        for key, fields in entries:
            batch.create(self.ref(key), self._scheduled_doc(fields, now))
        try:
            batch.commit()
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Conflict):
            return False
        return True

    def entry(self, snapshot: Any) -> LedgerEntry | None:
        """A LedgerEntry from a snapshot read elsewhere (e.g. in one batched get_all)."""
        if snapshot is None or not snapshot.exists:
            return None
        return LedgerEntry.from_snapshot(snapshot.id, snapshot.to_dict() or {})

    def read(self, key: str) -> LedgerEntry | None:
        return self.entry(self.ref(key).get())

    def claim(self, key: str, current: LedgerEntry | None, fields: dict[str, Any] | None = None) -> Claim:
        """Claim the right to send, in one atomic batch. Raises AlreadyFinal, or RetryableError when another
        sender holds a live claim (the caller answers 429/503 and Cloud Tasks comes back later)."""
        now = self.clock.now()
        if current is not None and current.is_terminal:
            raise AlreadyFinal(current)
        took_over = False
        if current is not None and current.state == "sending":
            if current.lease_until is not None and current.lease_until > now:
                wait = int((current.lease_until - now).total_seconds()) + 1
                raise RetryableError("another delivery of this message is in flight",
                                     retry_after_seconds=wait, code="claim_in_flight", throttled=True)
            took_over = True
        generation = (current.generation if current else 0) + 1
        ledger_ref = self.ref(key)
        batch = self.db.batch()
        batch.create(ledger_ref.collection(CLAIMS).document(str(generation)),
                     {"claimed_at": now, "expire_at": now + RETENTION})
        claim_fields = {
            "state": "sending",
            "generation": generation,
            "lease_until": now + self.lease,
            "attempts": (current.attempts if current else 0) + 1,
            "updated_at": now,
        }
        if current is None:
            # No scheduled doc (a task whose ledger write was lost, or a re-enqueued failure): create it.
            batch.set(ledger_ref, {**(fields or {}), **claim_fields, "created_at": now,
                                   "expire_at": now + RETENTION})
        else:
            batch.update(ledger_ref, claim_fields)
        try:
            batch.commit()
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Conflict, gexc.Aborted):
            raise RetryableError("lost the claim race to a concurrent delivery", retry_after_seconds=5,
                                 code="claim_lost", throttled=True) from None
        return Claim(key=key, generation=generation, took_over=took_over)

    def _finish(self, key: str, fields: dict[str, Any]) -> None:
        self.ref(key).update({**fields, "updated_at": self.clock.now()})

    def mark_sent(self, claim: Claim, *, channel: str, provider_message_id: str) -> None:
        now = self.clock.now()
        self._finish(claim.key, {"state": "sent", "channel": channel, "sent_at": now,
                                 "provider_message_id": provider_message_id, "lease_until": None})

    def mark_skipped(self, key: str, reason: str, *, exists: bool = True, fields: dict[str, Any] | None = None) -> None:
        """Skip a message that should not go out (cancelled, moved, opted out, past)."""
        now = self.clock.now()
        update = {"state": "skipped", "reason": reason, "lease_until": None}
        if exists:
            self._finish(key, update)
        else:
            self.ref(key).set({**(fields or {}), **update, "created_at": now, "updated_at": now,
                               "expire_at": now + RETENTION}, merge=True)

    def mark_failed(self, key: str, reason: str) -> None:
        self._finish(key, {"state": "failed", "reason": reason, "lease_until": None})

    def release(self, claim: Claim, reason: str) -> None:
        """A transient failure after claiming: hand the message back so the retry can claim it."""
        self._finish(claim.key, {"state": "scheduled", "reason": reason, "lease_until": None})
