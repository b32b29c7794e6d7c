"""The one owner of a campaign's status (campaigns/{id}): every transition, its history, and the stop.

Each transition reads the document and writes it at the version read (Firestore's update precondition),
again when a concurrent writer got in between, so two writers can never both move a campaign from the
same state. A transition to the status the campaign already has changes nothing (a replayed task).

Stopping (pause, cancel) is two steps. The status write commits first; then the stop waits, bounded,
until no message of the campaign is `sending` under a live claim, and only then writes
`cancel_acknowledged_at` and answers. The send path re-reads the status after it claims its ledger
entry and before it calls the provider (shared/campaigns/sending.py): a sender that claimed before the
status write is waited for; one that claims after it reads the new status and sends nothing. So after
the acknowledgement nothing of the campaign is sent (docs/campaigns.md, "Pause and cancel").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.campaigns.model import COLLECTION, TRANSITIONS, Campaign, Estimate, Status
from shared.messaging import ledger
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.platform.store import Doc, Store

CAS_ATTEMPTS = 5
STOP_WAIT_SECONDS = 30.0  # how long a stop waits for the sends in flight (a provider call takes seconds)
STOP_POLL_SECONDS = 0.5
PENDING = (ledger.State.SCHEDULED.value, ledger.State.SENDING.value, ledger.State.UNCONFIRMED.value)


def path(campaign_id: str) -> str:
    return f"{COLLECTION}/{campaign_id}"


@dataclass(frozen=True)
class Acknowledgement:
    """What a pause or a cancel found: how many sends were in flight, and whether they all settled."""

    campaign_id: str
    status: Status
    in_flight: int  # sends holding a live claim right after the status write
    settled: bool  # none left in flight within the wait: nothing is sent after `acknowledged_at`
    acknowledged_at: datetime | None  # None when the wait ran out (run the stop again)


class Lifecycle:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        stop_wait_seconds: float = STOP_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`sleep` waits between looks at the sends in flight (tests pass one that lets them progress)."""
        self.store, self.clock, self.stop_wait_seconds, self.sleep = store, clock, stop_wait_seconds, sleep

    # ------------------------------------------------------------------------------------------ reads

    def read(self, campaign_id: str) -> Campaign:
        doc = self.store.get(path(campaign_id))
        if doc is None:
            raise PermanentError("campaign not found", code="campaign_missing")
        return Campaign.from_doc(doc.id, doc.data)

    def in_flight(self, campaign_id: str) -> int:
        """Messages of the campaign a sender holds a live claim on right now."""
        now = self.clock.now()
        docs = self.store.query(
            ledger.COLLECTION,
            where=[("campaign_id", "==", campaign_id), ("state", "==", ledger.State.SENDING.value)],
            fields=["state", "lease_until", "generation"],
        )
        return sum(1 for doc in docs if ledger.Entry.from_doc(doc).live_claim(now))

    def pending(self, campaign_id: str) -> int:
        """Messages of the campaign not settled yet (scheduled, sending or unconfirmed): one aggregation."""
        return self.store.count(
            ledger.COLLECTION, where=[("campaign_id", "==", campaign_id), ("state", "in", list(PENDING))]
        )

    def planned(self, campaign_id: str) -> int:
        """The campaign's ledger entries: one per recipient its batches planned."""
        return self.store.count(ledger.COLLECTION, where=[("campaign_id", "==", campaign_id)])

    # ------------------------------------------------------------------------------------ transitions

    def create(self, campaign_id: str, doc: dict[str, Any], *, by: str) -> Campaign:
        """A new draft (`doc`: clinic_id, name, audience, message, window, estimate)."""
        now = self.clock.now()
        data = {
            **doc,
            "status": Status.DRAFT.value,
            "history": [{"status": Status.DRAFT.value, "at": now, "by": by}],
            "created_at": now,
            "updated_at": now,
        }
        campaign = Campaign.from_doc(campaign_id, data)  # refuse a broken campaign before it is stored
        if self.store.create(path(campaign_id), data) is None:
            raise PermanentError("a campaign with this id exists", code="campaign_exists")
        return campaign

    def schedule(self, campaign_id: str, *, by: str) -> Campaign:
        return self._move(campaign_id, Status.SCHEDULED, by)

    def start(self, campaign_id: str, *, by: str) -> Campaign:
        """scheduled → sending: its window opened (the plan task), or an operator starts it now."""
        return self._move(campaign_id, Status.SENDING, by, only_from=Status.SCHEDULED)

    def resume(self, campaign_id: str, *, by: str) -> Campaign:
        """paused → sending, as a new dispatch round: the unsent messages are dispatched again."""
        return self._move(
            campaign_id, Status.SENDING, by, only_from=Status.PAUSED, fields=lambda c: {"round": c.round + 1}
        )

    def finish(self, campaign_id: str, *, by: str) -> Campaign:
        return self._move(campaign_id, Status.DONE, by)

    def pause(self, campaign_id: str, *, by: str) -> Acknowledgement:
        return self._stop(campaign_id, Status.PAUSED, by)

    def cancel(self, campaign_id: str, *, by: str) -> Acknowledgement:
        return self._stop(campaign_id, Status.CANCELLED, by)

    def record_estimate(self, campaign_id: str, estimate: Estimate, excluded: Mapping[str, int]) -> Campaign:
        """The estimate, and the planning counts the report reads: the patients the filter matched and those
        left out by reason (docs/campaigns.md)."""
        planning = {"audience": estimate.recipients + sum(excluded.values()), "excluded": dict(excluded)}
        return self._write(campaign_id, lambda c: {"estimate": estimate.to_doc(), "planning": planning})

    def record_batched(self, campaign_id: str) -> Campaign:
        """The last batch ran: every recipient has its ledger entry; `planned` says how many."""
        planned = self.planned(campaign_id)
        return self._write(campaign_id, lambda c: {"batched": True, "planned": planned})

    # ---------------------------------------------------------------------------------- the machinery

    def _stop(self, campaign_id: str, to: Status, by: str) -> Acknowledgement:
        """Write the status, then wait (bounded) for the sends in flight; acknowledge once none is left."""
        self._move(campaign_id, to, by)
        in_flight = remaining = self.in_flight(campaign_id)
        looks = int(self.stop_wait_seconds / STOP_POLL_SECONDS)
        while remaining and looks > 0:
            self.sleep(STOP_POLL_SECONDS)
            remaining, looks = self.in_flight(campaign_id), looks - 1
        if remaining:
            return Acknowledgement(campaign_id, to, in_flight, settled=False, acknowledged_at=None)
        at = self.clock.now()
        self._write(campaign_id, lambda c: {"cancel_acknowledged_at": at})
        return Acknowledgement(campaign_id, to, in_flight, settled=True, acknowledged_at=at)

    def _move(
        self,
        campaign_id: str,
        to: Status,
        by: str,
        *,
        only_from: Status | None = None,
        fields: Callable[[Campaign], dict[str, Any]] | None = None,
    ) -> Campaign:
        def change(campaign: Campaign, doc: Doc) -> dict[str, Any] | None:
            if campaign.status == to:
                return None
            if to not in TRANSITIONS[campaign.status] or (only_from is not None and campaign.status != only_from):
                raise PermanentError(f"a {campaign.status} campaign cannot become {to}", code="campaign_transition")
            now = self.clock.now()
            history = [*(doc.get("history") or []), {"status": to.value, "at": now, "by": by}]
            return {"status": to.value, "history": history, **(fields(campaign) if fields else {})}

        return self._transition(campaign_id, change)

    def _write(self, campaign_id: str, fields: Callable[[Campaign], dict[str, Any]]) -> Campaign:
        return self._transition(campaign_id, lambda campaign, doc: fields(campaign))

    def _transition(self, campaign_id: str, change: Callable[[Campaign, Doc], dict[str, Any] | None]) -> Campaign:
        """Read → decide → write at the version read, again if a concurrent writer got in between."""
        for _ in range(CAS_ATTEMPTS):
            doc = self.store.get(path(campaign_id))
            if doc is None:
                raise PermanentError("campaign not found", code="campaign_missing")
            campaign = Campaign.from_doc(doc.id, doc.data)
            written = change(campaign, doc)
            if written is None:
                return campaign
            written = {**written, "updated_at": self.clock.now()}
            if self.store.update(path(campaign_id), written, version=doc.version) is not None:
                return Campaign.from_doc(doc.id, {**doc.data, **written})
        raise RetryableError(
            "the campaign kept changing under this write", retry_after_seconds=5, code="campaign_contended"
        )
