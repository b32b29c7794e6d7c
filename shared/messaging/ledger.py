"""The notification ledger: notifications/{dedup_key}, one document per intended message, and the only
module that writes it. Its state machine in outline (every transition and its guard: docs/architecture.md,
"The notifications ledger"):

    (none) ──schedule──► scheduled ──claim──► sending ──sent──► sent ──callback──► delivered
      │                   │  ▲                 │  │ ▲                 └─callback──► failed
      │                   │  └──release────────┘  │ └─claim (lease ran out: takeover, generation+1)
      └──skip─► skipped ◄─┘                       ├──answer lost──► unconfirmed ──evidence──► sent
                          scheduled/sending ──fail (permanent, or the last attempt)──► failed
                                              failed ──reopen (operator retry)──► scheduled

Every transition is one write with a single-document precondition: `create()` for a document that must
not exist yet, otherwise `update(version=…)` at the version just read, so two writers that both read
the same state cannot both win. A claim numbers its generation; a sender's later writes (sent, failed,
released, unconfirmed) apply only while the document still holds that generation, so a stale sender
finishing after a takeover cannot overwrite the rescuer's result. Delivery callbacks only ever advance
(queued < sending < sent < delivered | undelivered | failed) and never move a closed state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from shared.contract.models import DocReader
from shared.messaging.channels import Channel
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, RetryableError
from shared.platform.store import Create, Doc, Store, Update, Write
from shared.tasks.declaration import Reopen

COLLECTION = "notifications"
DEFAULT_LEASE = timedelta(minutes=2)
RETENTION = timedelta(days=90)  # expire_at, for the TTL policy
CAS_ATTEMPTS = 5  # re-reads when a concurrent writer (a callback) changed the document under us


class State(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    UNCONFIRMED = "unconfirmed"  # the provider may have accepted it: its answer was lost
    SENT = "sent"
    DELIVERED = "delivered"
    SKIPPED = "skipped"
    FAILED = "failed"


class Unrecorded(StrEnum):
    """Why record_delivery changed nothing (otherwise it answers the state the message reached)."""

    UNKNOWN_STATUS = "unknown_status"
    UNKNOWN_LEDGER = "unknown_ledger"  # no such ledger doc
    OTHER_MESSAGE = "other_message"  # a callback for an earlier attempt's message
    NOT_NEWER = "not_newer"  # a replay, or a late callback overtaken by a newer one
    IGNORED_DELIVERED = "ignored_delivered"  # closed states: a callback never moves them
    IGNORED_SKIPPED = "ignored_skipped"
    IGNORED_FAILED = "ignored_failed"


# What record_delivery answers when a callback failed the message now, or found it failed already.
FAILED_NOW, FAILED_BEFORE = State.FAILED, Unrecorded.IGNORED_FAILED
OnFailed = Callable[[str, bool], None]  # (ledger key, replayed): a webhook's hook for a message a provider failed
PROVIDER_REASON = "provider_"  # the prefix of a failure a provider's callback reported (not the sender's)
DONE = frozenset({State.SENT, State.DELIVERED, State.SKIPPED, State.FAILED})  # nothing more to send
CLOSED = frozenset({State.DELIVERED, State.SKIPPED, State.FAILED})  # callbacks never move these

# Twilio's message statuses in the order they happen; a callback never moves delivery_status backwards.
DELIVERY_RANK = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "read": 6,
    "undelivered": 5,
    "failed": 5,
}
DELIVERY_FINAL = {
    "delivered": State.DELIVERED,
    "read": State.DELIVERED,
    "undelivered": State.FAILED,
    "failed": State.FAILED,
}


def path(key: str) -> str:
    return f"{COLLECTION}/{key}"


@dataclass(frozen=True)
class DeliveryReport:
    """The latest provider callback recorded on a message (record_delivery): which message, how far it got."""

    status: str  # a key of DELIVERY_RANK
    message_id: str
    generation: int | None  # the claim the callback named (Twilio's `g`, SendGrid's reference); None: none named
    error_code: str | None

    @property
    def final(self) -> State | None:
        """The state this status settles a sent message in (delivered, failed), or None while it may move on."""
        return DELIVERY_FINAL.get(self.status)


@dataclass(frozen=True)
class Entry:
    """One ledger document as read, every field this module writes typed, with the version a transition's
    precondition names. `from_doc` is the one place a ledger doc is checked."""

    key: str
    state: State
    generation: int
    attempts: int
    lease_until: datetime | None
    reason: str  # why it was skipped, released or failed ("" when nothing said why)
    channel: Channel | None  # the channel it went out on (or was planned for)
    provider_message_id: str | None
    claimed_at: datetime | None
    unconfirmed_at: datetime | None
    updated_at: datetime | None
    delivery: DeliveryReport | None
    kind: str  # the task type it was written for ("" when the writer named none)
    clinic_id: str | None
    data: dict[str, Any]  # the doc as stored: what a transition's write merges into, a task is rebuilt from
    version: Any

    @classmethod
    def from_doc(cls, doc: Doc) -> Entry:
        """The entry a ledger doc holds; InvalidDocument (permanent) naming the field when it breaks the
        contract (a hand edit: an unknown state, a counter that is not a whole number, a time that is not one)."""
        r = DocReader(COLLECTION, doc.id, doc.data)
        channel = _one_of(r, "channel", tuple(Channel))
        status = _one_of(r, "delivery_status", tuple(DELIVERY_RANK))
        delivery = None
        if status is not None:
            named = r.raw("delivery_generation", required=False)
            delivery = DeliveryReport(
                status=status,
                message_id=r.text("delivery_message_id"),
                generation=None if named is None else r.integer("delivery_generation", minimum=1),
                error_code=r.text("delivery_error_code", required=False) or None,
            )
        return cls(
            key=doc.id,
            state=State(r.choice("state", tuple(State))),
            generation=r.integer("generation", default=0, minimum=0),
            attempts=r.integer("attempts", default=0, minimum=0),
            lease_until=r.instant("lease_until", required=False),
            reason=r.text("reason", required=False),
            channel=None if channel is None else Channel(channel),
            provider_message_id=r.text("provider_message_id", required=False) or None,
            claimed_at=r.instant("claimed_at", required=False),
            unconfirmed_at=r.instant("unconfirmed_at", required=False),
            updated_at=r.instant("updated_at", required=False),
            delivery=delivery,
            kind=r.text("kind", required=False),
            clinic_id=r.text("clinic_id", required=False) or None,
            data=doc.data,
            version=doc.version,
        )

    def with_fields(self, fields: Mapping[str, Any], version: Any) -> Entry:
        """The entry as a write of `fields` at `version` left it."""
        return Entry.from_doc(Doc(path(self.key), {**self.data, **fields}, version))

    @property
    def is_done(self) -> bool:
        return self.state in DONE

    def live_lease(self, now: datetime) -> datetime | None:
        """When the live claim a sender holds on this message runs out, or None when no claim is live."""
        if self.state == State.SENDING and self.lease_until is not None and self.lease_until > now:
            return self.lease_until
        return None

    def live_claim(self, now: datetime) -> bool:
        return self.live_lease(now) is not None

    def proven_by_callback(self) -> DeliveryReport | None:
        """A provider callback recorded for this claim's own generation: the message went, whatever the lease."""
        if self.state not in (State.SENDING, State.UNCONFIRMED) or self.delivery is None:
            return None
        return self.delivery if self.delivery.generation == self.generation else None


def _rank(report: DeliveryReport | None) -> int:
    return DELIVERY_RANK[report.status] if report is not None else 0


def _one_of(r: DocReader, name: str, options: tuple[str, ...]) -> str | None:
    """An optional field that, when present, holds one of `options`."""
    value = r.text(name, required=False)
    if value and value not in options:
        r.fail(name, f"must be one of {', '.join(options)}")
    return value or None


def _final_fields(final: State, error_code: str | None, status: str, now: datetime) -> dict[str, Any]:
    if final == State.DELIVERED:
        return {"state": final.value, "delivered_at": now}
    return {"state": final.value, "reason": f"{PROVIDER_REASON}{error_code or status}"[:40], "failed_at": now}


def _sent_fields(entry: Entry, channel: str, provider_message_id: str, now: datetime) -> dict[str, Any]:
    """The fields of "sent"; a final callback already recorded for this very message decides the state."""
    fields: dict[str, Any] = {
        "state": State.SENT.value,
        "channel": Channel(channel).value,
        "sent_at": now,
        "provider_message_id": provider_message_id,
        "lease_until": None,
        "reason": None,
    }
    report = entry.delivery
    if report is not None and report.final is not None and report.message_id == provider_message_id:
        fields.update(_final_fields(report.final, report.error_code, report.status, now))
    return fields


def _untouched_since(entry: Entry, moment: datetime) -> bool:
    return entry.updated_at is None or entry.updated_at < moment


@dataclass(frozen=True)
class Claim:
    """The right to send one generation of a message."""

    key: str
    generation: int
    took_over: bool
    previous: State | None  # what the document held before this claim
    written: Entry | None = None  # the document as the claim left it: the sender's next write needs no re-read


class AlreadyDone(Exception):
    """The message already reached a state where nothing more is sent: a duplicate delivery."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(f"ledger {entry.key} is already {entry.state}")
        self.entry = entry


class StaleClaim(Exception):
    """This sender's generation is no longer the document's: another sender took over; its result stands."""


@dataclass(frozen=True)
class Planned:
    """One message to schedule: its key, the fields the document records, and its first state."""

    key: str
    fields: Mapping[str, Any]
    skipped_reason: str | None = None  # set: recorded as skipped with this reason, never sent


class Ledger:
    """Every transition of notifications/{key}; `store` is the services' Store (Firestore in production)."""

    def __init__(self, store: Store, clock: Clock, *, lease: timedelta = DEFAULT_LEASE) -> None:
        self.store, self.clock, self.lease = store, clock, lease

    # ------------------------------------------------------------------------------------------ reads

    def stuck(self, *, older_than: datetime, limit: int = 500) -> list[Entry]:
        """Messages that can no longer finish on their own (shared.messaging.stuck): still sending or
        unconfirmed and untouched since `older_than`, or still scheduled though they were due before it —
        past every retry a queue gives them."""
        now = self.clock.now()
        stalled = self.store.query(
            COLLECTION,
            where=[("state", "in", [State.SENDING.value, State.UNCONFIRMED.value]), ("updated_at", "<", older_than)],
            limit=limit,
        )
        overdue = self.store.query(
            COLLECTION, where=[("state", "==", State.SCHEDULED.value), ("send_at", "<", older_than)], limit=limit
        )
        entries = []
        for doc in (*stalled, *overdue):
            try:
                entries.append(Entry.from_doc(doc))
            except InvalidDocument as broken:  # one hand-broken doc must not hide every other stuck message
                log.warning("ledger doc breaks the contract; not checked", dedup_key=doc.id, field=broken.field)
        return [entry for entry in entries if not entry.live_claim(now) and _untouched_since(entry, older_than)]

    def messages_of_others(self, key: str, message_ids: Sequence[str]) -> set[str]:
        """Which of these provider message ids another ledger doc already holds (so they are not this one's)."""
        taken: set[str] = set()
        ids = list(dict.fromkeys(message_ids))
        for start in range(0, len(ids), 30):  # Firestore's `in` takes at most 30 values
            for doc in self.store.query(
                COLLECTION,
                where=[("provider_message_id", "in", ids[start : start + 30])],
                fields=["provider_message_id"],
            ):
                if doc.id != key:
                    taken.add(str(doc.get("provider_message_id")))
        return taken

    def read(self, key: str) -> Entry | None:
        doc = self.store.get(path(key))
        return Entry.from_doc(doc) if doc else None

    def read_many(self, keys: Sequence[str]) -> dict[str, Entry]:
        docs = self.store.get_all([path(key) for key in keys])
        return {doc.id: Entry.from_doc(doc) for doc in docs.values()}

    # ------------------------------------------------------------------------------------- scheduling

    def _new(self, planned: Planned, now: datetime) -> dict[str, Any]:
        doc = {
            **planned.fields,
            "state": State.SCHEDULED.value,
            "attempts": 0,
            "generation": 0,
            "created_at": now,
            "updated_at": now,
            "expire_at": now + RETENTION,
        }
        if planned.skipped_reason:
            doc.update(state=State.SKIPPED.value, reason=planned.skipped_reason)
        return doc

    def schedule(self, planned: Sequence[Planned]) -> tuple[set[str], dict[str, Entry]]:
        """Create the ledger docs of up to 500 messages in one atomic commit of creates (a first run's one
        round trip); when some exist (a re-run, a concurrent run) the commit applies nothing, and the
        missing ones are created again after one batched read. Returns (keys created by this call, the
        entries that already existed)."""
        now = self.clock.now()
        pending = {item.key: item for item in planned}
        existing: dict[str, Entry] = {}
        created: set[str] = set()
        for _ in range(CAS_ATTEMPTS):
            if not pending:
                break
            if self.store.commit([Create(path(key), self._new(item, now)) for key, item in pending.items()]):
                created |= set(pending)
                pending = {}
                break
            found = self.read_many(list(pending))
            existing.update(found)
            pending = {key: item for key, item in pending.items() if key not in found}
        for key, item in pending.items():  # still racing a concurrent run: settle each alone
            if self.store.create(path(key), self._new(item, now)) is not None:
                created.add(key)
            elif (entry := self.read(key)) is not None:
                existing[key] = entry
        return created, existing

    # ----------------------------------------------------------------------------------- the sender

    def claim(self, key: str, current: Entry | None, fields: Mapping[str, Any]) -> Claim:
        """Claim the right to send. Raises AlreadyDone, or RetryableError when another sender holds a live
        claim or won the race for this one (the caller answers 429 and Cloud Tasks comes back later)."""
        now = self.clock.now()
        if current is not None and current.is_done:
            raise AlreadyDone(current)
        lease = current.live_lease(now) if current is not None else None
        if lease is not None:
            wait = int((lease - now).total_seconds()) + 1
            raise RetryableError(
                "another delivery of this message is in flight",
                retry_after_seconds=wait,
                code="claim_in_flight",
                throttled=True,
            )
        generation = (current.generation if current else 0) + 1
        claimed = {
            "state": State.SENDING.value,
            "generation": generation,
            "lease_until": now + self.lease,
            "attempts": (current.attempts if current else 0) + 1,
            "claimed_at": now,
            "updated_at": now,
        }
        if current is None:
            # No scheduled doc (its task outlived the doc, or a re-enqueued failure): the claim creates it.
            data = {**fields, **claimed, "created_at": now, "expire_at": now + RETENTION}
            won = self.store.create(path(key), data)
        else:
            won = self.store.update(path(key), claimed, version=current.version)
        if won is None:
            raise RetryableError(
                "lost the claim race to a concurrent delivery", retry_after_seconds=5, code="claim_lost", throttled=True
            )
        return Claim(
            key=key,
            generation=generation,
            took_over=current is not None and current.state == State.SENDING,
            previous=current.state if current else None,
            written=Entry.from_doc(Doc(path(key), data, won)) if current is None else current.with_fields(claimed, won),
        )

    def _as_claimant(
        self,
        claim: Claim,
        allowed: frozenset[State],
        fields: Callable[[Entry], dict[str, Any]],
        *,
        also: Write | None = None,
    ) -> None:
        """Apply `fields(entry)` while the doc still holds this claim's generation in an allowed state (with
        `also` in the same commit)."""

        def change(entry: Entry) -> dict[str, Any] | None:
            if entry.generation != claim.generation or entry.state not in allowed:
                raise StaleClaim(
                    f"ledger {claim.key} is at generation {entry.generation} ({entry.state}); "
                    f"this sender held {claim.generation}"
                )
            return fields(entry)

        # a callback in between: the version check re-reads
        self._transition(claim.key, change, first=claim.written, also=also)

    def mark_sent(self, claim: Claim, *, channel: str, provider_message_id: str, also: Write | None = None) -> None:
        """Sent; if the provider's final callback for this very message overtook us, its verdict stands. `also`:
        one more write committed with it, all or nothing (the message's send record, shared/consent/evidence.py)."""
        now = self.clock.now()
        self._as_claimant(
            claim,
            frozenset({State.SENDING, State.UNCONFIRMED}),
            lambda entry: _sent_fields(entry, channel, provider_message_id, now),
            also=also,
        )

    def mark_unconfirmed(self, claim: Claim, *, channel: str, reason: str) -> None:
        """The provider may have accepted the message but its answer was lost: never silently resend."""
        now = self.clock.now()
        self._as_claimant(
            claim,
            frozenset({State.SENDING}),
            lambda entry: {
                "state": State.UNCONFIRMED.value,
                "channel": Channel(channel).value,
                "reason": reason,
                "lease_until": None,
                "unconfirmed_at": now,
            },
        )

    def release(self, claim: Claim, reason: str) -> None:
        """A transient failure before anything was sent: hand the message back to the retry."""
        self._as_claimant(
            claim,
            frozenset({State.SENDING}),
            lambda entry: {"state": State.SCHEDULED.value, "reason": reason, "lease_until": None},
        )

    def fail(self, claim: Claim, reason: str) -> None:
        """A permanent failure, or the queue's last attempt: the ledger says failed, with the code."""
        now = self.clock.now()
        self._as_claimant(
            claim,
            frozenset({State.SENDING}),
            lambda entry: {"state": State.FAILED.value, "reason": reason, "lease_until": None, "failed_at": now},
        )

    def retime(self, key: str, send_at: datetime) -> bool:
        """A scheduled message moved to a later task (a marketing message outside its recipient's window): its
        `send_at` follows, so the stuck-message sweep waits for the new time. False: no longer scheduled."""
        left = self._transition(key, lambda entry: {"send_at": send_at} if entry.state == State.SCHEDULED else None)
        return left is not None and left.state == State.SCHEDULED

    def skip(self, key: str, current: Entry | None, reason: str, fields: Mapping[str, Any]) -> State:
        """Record a message that must not go out (cancelled, moved, opted out, past). Only a scheduled (or
        missing) message is skipped; returns the state the ledger holds afterwards."""
        if current is None:
            if self._create_as(key, {**fields, "state": State.SKIPPED.value, "reason": reason}):
                return State.SKIPPED
            current = self.read(key)
            if current is None:
                return State.SKIPPED
        outcome = self._transition(
            key,
            lambda entry: (
                {"state": State.SKIPPED.value, "reason": reason, "lease_until": None}
                if entry.state == State.SCHEDULED
                else None
            ),
            first=current,
        )
        return outcome.state if outcome else State.SKIPPED

    def _create_as(self, key: str, doc: dict[str, Any]) -> bool:
        now = self.clock.now()
        return (
            self.store.create(
                path(key),
                {
                    "attempts": 0,
                    "generation": 0,
                    **doc,
                    "created_at": now,
                    "updated_at": now,
                    "expire_at": now + RETENTION,
                },
            )
            is not None
        )

    # ----------------------------------------------------------------------------- provider evidence

    def record_delivery(
        self, key: str, *, generation: int | None, message_id: str, status: str, error_code: str | None
    ) -> State | Unrecorded:
        """A provider's delivery callback. Returns what happened (for the log line): the state reached,
        or why nothing changed. Statuses only advance; closed states never move; a callback for an
        attempt whose answer was lost is the evidence that the message went (unconfirmed → sent)."""
        now = self.clock.now()
        rank = DELIVERY_RANK.get(status)
        if rank is None:
            return Unrecorded.UNKNOWN_STATUS
        outcome: State | Unrecorded = Unrecorded.UNKNOWN_LEDGER  # until the doc is read

        def change(entry: Entry) -> dict[str, Any] | None:
            nonlocal outcome
            if entry.state in CLOSED:
                outcome = Unrecorded(f"ignored_{entry.state}")
                return None
            if entry.provider_message_id and entry.provider_message_id != message_id:
                outcome = Unrecorded.OTHER_MESSAGE
                return None
            report = entry.delivery
            if (report is None or report.message_id == message_id) and _rank(report) >= rank:
                outcome = Unrecorded.NOT_NEWER
                return None
            update: dict[str, Any] = {"delivery_status": status, "delivery_message_id": message_id, "updated_at": now}
            if generation is not None:
                update["delivery_generation"] = generation
            if error_code:
                update["delivery_error_code"] = error_code[:10]
            ours = generation is None or generation == entry.generation
            if entry.state == State.UNCONFIRMED and ours:
                update.update(state=State.SENT.value, provider_message_id=message_id, sent_at=now, reason=None)
                entry_state = State.SENT
            else:
                entry_state = entry.state
            final = DELIVERY_FINAL.get(status)
            if final is not None and entry_state == State.SENT:
                update.update(_final_fields(final, error_code, status, now))
                entry_state = final
            outcome = entry_state
            return update

        self._transition(key, change)
        return outcome

    def confirm(self, found: Entry, *, channel: str, provider_message_id: str, proven: bool = False) -> bool:
        """A send whose answer was lost (unconfirmed), or whose sender died (sending, lease run out), was found
        at the provider or in a recorded callback: it went. Mark it sent (or delivered / failed, when that
        message's final callback already came: no other will). With `proven` (the provider's callback for the
        claim's own generation), a live lease does not stand in the way: the message went."""
        now = self.clock.now()
        generation = found.generation
        applied = False

        def change(entry: Entry) -> dict[str, Any] | None:
            nonlocal applied
            abandoned = entry.state == State.SENDING and (proven or not entry.live_claim(now))
            applied = entry.generation == generation and (entry.state == State.UNCONFIRMED or abandoned)
            return _sent_fields(entry, channel, provider_message_id, now) if applied else None

        moved = self._transition(found.key, change, first=found)
        return moved is not None and (applied or moved.state == State.SENT)

    # -------------------------------------------------------------------------------- operator retry

    def reopen(self, key: str) -> Reopen:
        """An operator asked for a retry: a failed message goes back to scheduled for the new task; a live
        claim is never touched; a message already sent or rightly skipped is not re-sent."""
        now = self.clock.now()
        verdict = Reopen.REOPENED

        def change(entry: Entry) -> dict[str, Any] | None:
            nonlocal verdict
            if entry.state in (State.SENT, State.DELIVERED, State.SKIPPED):
                verdict = Reopen.ALREADY_DONE
            elif entry.live_claim(now):
                verdict = Reopen.IN_FLIGHT
            elif entry.state == State.FAILED:
                verdict = Reopen.REOPENED
                return {"state": State.SCHEDULED.value, "reason": "operator_retry", "lease_until": None}
            else:
                verdict = Reopen.REOPENED  # scheduled, an expired claim, unconfirmed: the task settles it
            return None

        self._transition(key, change)
        return verdict

    # ---------------------------------------------------------------------------------- the machinery

    def _transition(
        self,
        key: str,
        change: Callable[[Entry], dict[str, Any] | None],
        *,
        first: Entry | None = None,
        also: Write | None = None,
    ) -> Entry | None:
        """Read → decide → write at the version read, again if a concurrent writer got in between.
        `change` returns the fields to write, or None for no change; `also` is committed with that write.
        Returns the entry as left (None when the doc does not exist)."""
        entry = first
        for attempt in range(CAS_ATTEMPTS):
            if entry is None or attempt > 0:
                entry = self.read(key)
            if entry is None:
                return None
            fields = change(entry)
            if fields is None:
                return entry
            fields = {**fields, "updated_at": fields.get("updated_at", self.clock.now())}
            if also is None:
                version = self.store.update(path(key), fields, version=entry.version)
            else:
                versions = self.store.commit([Update(path(key), fields, entry.version), also])
                version = versions[0] if versions else None
            if version is not None:
                return entry.with_fields(fields, version)
        raise RetryableError(
            f"ledger {key} kept changing under this write", retry_after_seconds=5, code="ledger_contended"
        )
