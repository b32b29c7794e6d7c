"""`python -m ops smoke`: a smoke test of a deployed project (or of the local stack) that messages no patient.

It seeds a clinic reserved for the smoke test (ops/smoke_plan.py: `smoke_test: true`, Twilio's magic test
numbers, SendGrid's sandbox mode), publishes what the platform and Cloud Scheduler publish (appointment
events, a reminders tick, a reports tick, an inventory tick), waits (bounded) for every function's
evidence in Firestore, marks the invalid number's failure for retry and runs the retry sweep once, asks each
public webhook an unsigned request, then deletes everything of its clinic, even when a check failed, and
prints one PASS/FAIL line per check. The same code runs against a real project (GOOGLE_CLOUD_PROJECT and
application-default credentials) and the local stack (its emulator variables): only the endpoints differ.
What each check proves: docs/runbook.md, "Smoke test".
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ops.smoke_plan import SmokePlan
from shared.consent import evidence
from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, PRODUCTS, WAITLIST
from shared.messaging import ledger
from shared.platform import resources
from shared.platform.clock import Clock
from shared.platform.masking import mask_address
from shared.platform.store import Delete, Doc, Put, Store
from shared.reminders import planned_days
from shared.reports import purchase_orders, report_docs
from shared.tasks import failed_tasks
from shared.tasks.failed_tasks import FailedTasks
from shared.waitlist import offers
from shared.waitlist.offers import offer_id_for

DONE = ("sent", "delivered", "skipped", "failed")
SENT = ("sent", "delivered")  # Twilio's test sends and SendGrid's sandbox get no callback: "sent" is final
# What a run may leave for its clinic besides what it seeded; all are found by their clinic_id field.
RUN_COLLECTIONS = (
    ledger.COLLECTION,
    failed_tasks.COLLECTION,
    planned_days.COLLECTION,
    report_docs.COLLECTION,
    purchase_orders.COLLECTION,
    offers.COLLECTION,
    evidence.COLLECTION,  # the smoke clinic's send records: test messages, no patient's evidence
)
SEEDED_COLLECTIONS = (PATIENTS, APPOINTMENTS, PRODUCTS, WAITLIST)
# The public webhooks and the request each must refuse: an unsigned (or token-less) one.
WEBHOOKS = {
    "twilio-status": "POST",
    "sendgrid-events": "POST",
    "waitlist-inbound-sms": "POST",
    "waitlist-claim": "GET",
    "campaign-click": "GET",
    "booking-restore": "GET",
    "feedback-page": "GET",  # a survey page without its token: 403
}
# What refuses such a request, when not 401 or 403: a campaign or restore link without its token is a 404 page.
REFUSED = {"campaign-click": (404,), "booking-restore": (404,)}
POLL_SECONDS = 2.0
MAX_BATCH = 400


@dataclass(frozen=True)
class Check:
    """One line of the report: a named check, the functions it proves answered, and what was seen (masked)."""

    name: str
    passed: bool
    detail: str
    functions: tuple[str, ...] = ()


def report(checks: Iterable[Check], *, clinic_id: str, target: str) -> str:
    """The printed report: a header, one PASS/FAIL line per check, a verdict. Details are masked by the checks."""
    checks = list(checks)
    width = max((len(check.name) for check in checks), default=0)
    lines = [f"smoke test {clinic_id} on {target}"]
    lines += [f"{'PASS' if c.passed else 'FAIL'}  {c.name:{width}}  {c.detail}" for c in checks]
    failed = sum(not check.passed for check in checks)
    verdict = f"{len(checks) - failed} passed, {failed} FAILED" if failed else f"all {len(checks)} passed"
    lines.append(f"smoke: {verdict}")
    return "\n".join(lines)


def new_run_id() -> str:
    return secrets.token_hex(4)


@dataclass
class Evidence:
    """What Firestore holds for the smoke clinic, read in one pass."""

    docs: dict[str, list[Doc]] = field(default_factory=dict)  # collection → its docs of the clinic

    def by_id(self, collection: str) -> dict[str, Doc]:
        return {doc.id: doc for doc in self.docs.get(collection, [])}

    def count(self) -> int:
        return sum(len(found) for found in self.docs.values())


def observe(store: Store, clinic_id: str, collections: Iterable[str] = RUN_COLLECTIONS) -> Evidence:
    where = [("clinic_id", "==", clinic_id)]
    return Evidence({name: list(store.query(name, where=where)) for name in collections})


def wait_for(
    read: Callable[[], Evidence], done: Callable[[Evidence], bool], *, timeout: float, sleep: Callable[[float], None]
) -> tuple[Evidence, bool]:
    """Read until `done` or `timeout` seconds (monotonic) have passed; the last read and whether it was done."""
    deadline = time.monotonic() + timeout
    while True:
        evidence = read()
        if done(evidence) or time.monotonic() >= deadline:
            return evidence, done(evidence)
        sleep(POLL_SECONDS)


# --------------------------------------------------------------------------------------------- the checks


def settled(smoke: SmokePlan, evidence: Evidence) -> bool:
    """Every piece of evidence the first wait expects is there and final."""
    ledger_docs = evidence.by_id(ledger.COLLECTION)
    keys = [key for r in smoke.recipients for key in (r.reminder_key, r.confirmation_key)]
    invalid = smoke.recipient("invalid sms").reminder_key
    offer = evidence.by_id(offers.COLLECTION).get(offer_id_for(*_cancelled_slot(smoke)))
    return (
        all(key in ledger_docs and ledger_docs[key].get("state") in DONE for key in keys)
        and invalid in evidence.by_id(failed_tasks.COLLECTION)
        and planned_days.path(smoke.clinic_id, smoke.today).split("/", 1)[1] in evidence.by_id(planned_days.COLLECTION)
        and bool(evidence.docs.get(report_docs.COLLECTION))
        and bool(evidence.docs.get(purchase_orders.COLLECTION))
        and offer is not None
        and offer.get("status") != "open"
    )


def _cancelled_slot(smoke: SmokePlan) -> tuple[str, Any]:
    appointment = smoke.documents[f"{APPOINTMENTS}/{smoke.cancelled_appointment_id}"]
    return smoke.cancelled_appointment_id, appointment["start"]


def _state(doc: Doc | None) -> str:
    if doc is None:
        return "no ledger doc"
    reason = doc.get("reason")
    return f"{doc.get('state')}{f' ({reason})' if reason else ''}"


def delivery_checks(smoke: SmokePlan, evidence: Evidence) -> list[Check]:
    """The first wait's checks: the events, the tick, each reminder's outcome, the reports and waitlist."""
    ledger_docs = evidence.by_id(ledger.COLLECTION)
    failures = evidence.by_id(failed_tasks.COLLECTION)
    confirmations = [ledger_docs.get(r.confirmation_key) for r in smoke.recipients]
    skipped = sum(doc is not None and doc.get("state") == "skipped" for doc in confirmations)
    checks = [
        Check(
            "appointment events",
            skipped == len(confirmations),
            f"{skipped}/{len(confirmations)} booking confirmations planned (skipped too_late)",
            ("appointment-events",),
        )
    ]
    run = evidence.by_id(planned_days.COLLECTION).get(planned_days.path(smoke.clinic_id, smoke.today).split("/", 1)[1])
    checks.append(
        Check(
            "reminders tick",
            run is not None and run.get("completed_at") is not None,
            f"fanout_runs for {smoke.today} {'written' if run is not None else 'not written'}",
            ("reminder-fanout", "reminder-fanout-unit"),
        )
    )
    for recipient in smoke.recipients:
        doc = ledger_docs.get(recipient.reminder_key)
        failure = failures.get(recipient.reminder_key)
        masked = mask_address(recipient.address)
        if recipient.name == "invalid sms":
            code = failure.get("error_code") if failure else None
            passed = doc is not None and doc.get("state") == "failed" and code == "invalid_number"
            detail = f"reminder to {masked}: ledger {_state(doc)}, failed_tasks error_code {code or '-'}"
        else:
            passed = doc is not None and doc.get("state") in SENT and doc.get("channel") == recipient.channel
            how = "Twilio test credentials" if recipient.channel == "sms" else "SendGrid sandbox mode"
            detail = f"reminder to {masked} by {recipient.channel} ({how}): ledger {_state(doc)}"
            if failure is not None:
                detail += f", failed_tasks error_code {failure.get('error_code')}"
        checks.append(Check(f"reminder, {recipient.name}", passed, detail, ("task-handler",)))
    reports_found = evidence.docs.get(report_docs.COLLECTION, [])
    checks.append(
        Check("reports tick", bool(reports_found), f"{len(reports_found)} daily report(s) stored", ("report-builder",))
    )
    orders = evidence.docs.get(purchase_orders.COLLECTION, [])
    checks.append(
        Check("inventory tick", bool(orders), f"{len(orders)} purchase order draft(s) stored", ("inventory-check",))
    )
    offer = evidence.by_id(offers.COLLECTION).get(offer_id_for(*_cancelled_slot(smoke)))
    status = f"{offer.get('status')}" if offer is not None else "no slot offer"
    checks.append(
        Check(
            "cancellation",
            offer is not None and offer.get("status") == "expired",
            f"the cancelled slot's offer: {status} (no waitlist entry can take it)",
            ("waitlist-cancellations",),
        )
    )
    return checks


def timed_out(checks: list[Check], timeout: float | None) -> list[Check]:
    """The failing checks of a wait that ran out say so (None: the wait ended with everything seen)."""
    if timeout is None:
        return checks
    note = f" (not all seen within {timeout:.0f} s)"
    return [c if c.passed else Check(c.name, False, c.detail + note, c.functions) for c in checks]


def sweep_check(before: Doc | None, after: Doc | None, done: bool) -> Check:
    """The sweep re-enqueued the marked failure once, and the handler failed it again with the same code."""
    if before is None:
        return Check("retry sweep", False, "no failed_tasks record to retry", ("retry-sweep",))
    generation = after.get("retry_generation") if after else None
    status = after.get("status") if after else "gone"
    code = after.get("error_code") if after else None
    detail = f"failed task retried (retry_generation {generation or 0}), then {status}{f' with {code}' if code else ''}"
    return Check("retry sweep", done and code == "invalid_number", detail, ("retry-sweep", "task-handler"))


def retried_and_recorded_again(key: str) -> Callable[[Evidence], bool]:
    """The sweep claimed the retry (generation 1) and the re-sent task's failure was recorded again (open)."""

    def done(evidence: Evidence) -> bool:
        doc = evidence.by_id(failed_tasks.COLLECTION).get(key)
        return doc is not None and doc.get("retry_generation") == 1 and doc.get("status") == failed_tasks.Status.OPEN

    return done


def webhook_check(name: str, status: int | None, error: str = "") -> Check:
    """A public webhook refusing an unsigned request: it is up and checks its caller before anything else."""
    detail = f"unsigned {WEBHOOKS[name]} answered {status}" if status is not None else f"no answer: {error[:80]}"
    return Check(f"webhook {name}", status in REFUSED.get(name, (401, 403)), detail, (name,))


# --------------------------------------------------------------------------------------------- the run


@dataclass
class SmokeRun:
    """One run against one target; every collaborator passed in (the CLI wires the real ones)."""

    store: Store
    clock: Clock
    publish: Callable[[str, dict[str, Any]], None]  # (topic, data) → published
    ask: Callable[[str, str], int]  # (function name, method) → HTTP status of an unsigned request
    smoke: SmokePlan
    timeout: float = 300.0
    sleep: Callable[[float], None] = time.sleep
    checks: list[Check] = field(default_factory=list)

    def run(self) -> list[Check]:
        try:
            self._seed()
            self._deliveries()
            self._sweep()
            self._webhooks()
        except Exception as exc:  # noqa: BLE001 - reported as a failed check; the cleanup below still runs
            self.checks.append(Check("run", False, f"stopped: {type(exc).__name__}: {str(exc)[:120]}"))
        finally:
            self.checks.append(self.cleanup())
        return self.checks

    def _seed(self) -> None:
        writes = [Put(path, data) for path, data in self.smoke.documents.items()]
        self.store.commit(writes)
        patients = ", ".join(f"{mask_address(r.address)} ({r.name})" for r in self.smoke.recipients)
        self.checks.append(Check("seed", True, f"clinic {self.smoke.clinic_id} (smoke_test), patients {patients}"))

    def _deliveries(self) -> None:
        smoke = self.smoke
        for recipient in smoke.recipients:
            self.publish(resources.TOPIC_APPOINTMENT_EVENTS, _event("created", recipient.appointment_id))
        self.publish(resources.TOPIC_APPOINTMENT_EVENTS, _event("cancelled", smoke.cancelled_appointment_id))
        self.publish(resources.TOPIC_REMINDERS_TICK, {"date": smoke.today.isoformat(), "clinic_id": smoke.clinic_id})
        self.publish(resources.TOPIC_REPORTS_TICK, {"period": "daily", "clinic_id": smoke.clinic_id})
        self.publish(resources.TOPIC_INVENTORY_TICK, {"clinic_id": smoke.clinic_id})
        evidence, done = wait_for(
            lambda: observe(self.store, smoke.clinic_id),
            lambda found: settled(smoke, found),
            timeout=self.timeout,
            sleep=self.sleep,
        )
        self.checks += timed_out(delivery_checks(smoke, evidence), None if done else self.timeout)

    def _sweep(self) -> None:
        key = self.smoke.recipient("invalid sms").reminder_key
        owner = FailedTasks(self.store, self.clock)
        before = owner.read(key)
        if before is None or not owner.request_retry(key):
            self.checks.append(sweep_check(None, None, False))
            return
        self.publish(resources.TOPIC_FAILED_TASKS_SWEEP, {})
        evidence, done = wait_for(
            lambda: observe(self.store, self.smoke.clinic_id, (failed_tasks.COLLECTION,)),
            retried_and_recorded_again(key),
            timeout=self.timeout,
            sleep=self.sleep,
        )
        check = sweep_check(before, evidence.by_id(failed_tasks.COLLECTION).get(key), done)
        self.checks += timed_out([check], None if done else self.timeout)

    def _webhooks(self) -> None:
        for name, method in WEBHOOKS.items():
            try:
                self.checks.append(webhook_check(name, self.ask(name, method)))
            except Exception as exc:  # noqa: BLE001 - one webhook's trouble is its own line
                self.checks.append(webhook_check(name, None, f"{type(exc).__name__}: {exc}"))

    def cleanup(self) -> Check:
        """Delete everything of the clinic, seeded or made by the run, then read again: nothing may be left."""
        try:
            deleted = self._delete_all()
            left = observe(self.store, self.smoke.clinic_id, RUN_COLLECTIONS + SEEDED_COLLECTIONS).count()
            left += self.store.get(f"{CLINICS}/{self.smoke.clinic_id}") is not None
        except Exception as exc:  # noqa: BLE001 - a cleanup that failed is reported, never hidden
            return Check(
                "cleanup", False, f"{type(exc).__name__}: {str(exc)[:120]} (delete clinic_id {self.smoke.clinic_id})"
            )
        return Check("cleanup", left == 0, f"{deleted} documents deleted, {left} left")

    def _delete_all(self) -> int:
        found = observe(self.store, self.smoke.clinic_id, RUN_COLLECTIONS + SEEDED_COLLECTIONS)
        paths = [doc.path for docs in found.docs.values() for doc in docs]
        for offer in found.docs.get(offers.COLLECTION, []):
            paths += [answer.path for answer in self.store.query(f"{offer.path}/{offers.ANSWERS}")]
        paths += [path for path in self.smoke.documents if path not in paths]
        for start in range(0, len(paths), MAX_BATCH):
            self.store.commit([Delete(path) for path in paths[start : start + MAX_BATCH]])
        return len(paths)


def _event(kind: str, appointment_id: str) -> dict[str, Any]:
    return {"event": f"appointment.{kind}", "appointment_id": appointment_id}


def encode(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
