"""Messages that can no longer finish on their own, made visible in failed_tasks.

A sender that dies on the queue's last attempt leaves its ledger doc `sending` with no task left to
retry it; an answer lost on the last attempt leaves it `unconfirmed` (recorded then, but a crash could
lose that record too); a message still `scheduled` an hour after it was due lost its task some other
way. Past every retry a queue gives (STUCK_AFTER), such a doc gets a failed_tasks record once — with
the task rebuilt from the ledger doc, so that an operator's retry re-sends it through the retry sweep,
which reconciles before sending again. Run by the retry-sweep function on its schedule.

A message a provider's callback failed after accepting it (Twilio `undelivered` / `failed`, SendGrid
`bounce` / `dropped`) cannot finish either: the webhook records it the same way at once
(`record_provider_failure`), so every failure a clinic cares about is in failed_tasks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from shared.messaging.ledger import PROVIDER_REASON, Entry, Ledger, State
from shared.platform import log
from shared.platform.clock import Clock
from shared.tasks.failed_tasks import FailedTasks
from shared.tasks.router import TaskType

STUCK_AFTER = timedelta(hours=1)  # longer than a queue's whole retry span (8 attempts, backoff to 600 s)


def record_stuck(
    ledger: Ledger,
    failures: FailedTasks,
    types: Mapping[str, TaskType[Any]],
    clock: Clock,
    *,
    after: timedelta = STUCK_AFTER,
) -> dict[str, int]:
    """Record every stuck message not recorded yet; returns counts by outcome (for the log line)."""
    outcomes: Counter[str] = Counter()
    for entry in ledger.stuck(older_than=clock.now() - after):
        written = _record(
            entry,
            failures,
            types,
            error_code=f"stuck_{entry.state.value}",
            error=f"the message is still {entry.state.value} and no delivery is left to finish it",
            only_if_new=True,
        )
        outcomes["recorded" if written else "already_recorded"] += 1
    if outcomes:
        log.warning("stuck messages found", **dict(outcomes))
    return dict(outcomes)


def record_provider_failure(
    ledger: Ledger, failures: FailedTasks, types: Mapping[str, TaskType[Any]], key: str, *, replayed: bool = False
) -> bool:
    """A provider's callback has failed the message `key`: record it, re-opening an earlier record as any new
    failure does. A `replayed` callback (the ledger already said failed) records only if no record exists:
    the first one's write may have failed, and an operator's record stands."""
    entry = ledger.read(key)
    if entry is None or entry.state != State.FAILED:
        return False
    if not entry.reason.startswith(PROVIDER_REASON):
        return False  # the sender's own failure: the router recorded it
    report = entry.delivery
    status, code = (report.status, report.error_code) if report is not None else (None, None)
    return _record(
        entry,
        failures,
        types,
        error_code=entry.reason,
        error=f"the provider accepted the message, then reported it {status} (code {code or 'none'})",
        only_if_new=replayed,
    )


def _record(
    entry: Entry,
    failures: FailedTasks,
    types: Mapping[str, TaskType[Any]],
    *,
    error_code: str,
    error: str,
    only_if_new: bool,
) -> bool:
    """One failed_tasks record for a ledger doc, its task rebuilt from the doc so a retry can re-send it."""
    kind = types.get(entry.kind)
    # The task's own fields (appointment_id, offset_hours, …) are the task type's to read from the doc.
    task = kind.from_ledger(entry.key, entry.data) if kind and kind.from_ledger else None
    payload = task.to_json() if task is not None else {"dedup_key": entry.key}
    return failures.record(
        entry.key,
        task_type=kind.name if kind else "unrecognised",
        task_name=None,
        payload=payload,
        error_code=error_code,
        http_status=0,
        attempts=entry.attempts,
        error=error,
        clinic_id=entry.clinic_id,
        queue=kind.queue if kind else None,
        only_if_new=only_if_new,
    )
