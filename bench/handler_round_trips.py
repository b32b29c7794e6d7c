"""Firestore round trips per task-handler outcome, counted at the client (a script, not a test).

    . .local/env.sh && .venv/bin/python -m bench.handler_round_trips      (the local stack must be up)

Runs the real delivery service (shared.messaging.delivery) in-process against the Firestore emulator and the
provider sandbox, with every RPC of the official Firestore client counted, and prints the count for a
delivered reminder (clinic not cached / cached), a duplicate delivery and a skip. Targets: at most 3
for a delivered reminder (its send record rides in the "sent" commit), 1 for a duplicate, 3 for a skip (the
skip's send record is one of them).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from shared.consent.evidence import SendRecords
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.delivery import AppointmentMessages, ClinicCache
from shared.messaging.keys import message_key
from shared.messaging.ledger import Ledger, Planned
from shared.messaging.opt_outs import OptOuts
from shared.messaging.providers import SendGridEmail, TwilioSms
from shared.messaging.sender import MessageSender
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.tasks.router import Attempt

RPCS = (
    "batch_get_documents",
    "commit",
    "run_query",
    "get_document",
    "batch_write",
    "begin_transaction",
    "rollback",
    "run_aggregation_query",
    "list_documents",
    "update_document",
    "create_document",
)


class CountingFirestore:
    """Wraps the gapic Firestore API of one client so every RPC it sends is counted."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        api = client._firestore_api  # the one object every Firestore RPC of this client goes through
        for name in RPCS:
            original = getattr(api, name, None)
            if original is not None:
                setattr(api, name, self._counted(name, original))

    def _counted(self, name: str, original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return original(*args, **kwargs)

        return call

    def take(self) -> Counter[str]:
        taken, self.calls = self.calls, Counter()
        return taken


def _world(db: Any) -> tuple[str, str]:
    clinic_id, patient_id = f"bench-clinic-{uuid.uuid4().hex[:6]}", f"bench-pat-{uuid.uuid4().hex[:6]}"
    db.collection("clinics").document(clinic_id).set(
        {
            "name": "Bench Clinic",
            "timezone": "America/New_York",
            "phone": "+12125550142",
            "sms_from": "+12125550100",
            "email_from": "bench@clinic.example.com",
        }
    )
    db.collection("patients").document(patient_id).set(
        {
            "clinic_id": clinic_id,
            "first_name": "Bench",
            "phone": "+12125550199",
            "email": "bench@example.com",
            "preferred_channel": "sms",
        }
    )
    return clinic_id, patient_id


def _task(db: Any, clinic_id: str, patient_id: str, *, status: str = "booked") -> AppointmentTask:
    start = (system_clock.now() + timedelta(days=2)).replace(microsecond=0)
    appointment_id = f"bench-appt-{uuid.uuid4().hex[:8]}"
    db.collection("appointments").document(appointment_id).set(
        {
            "clinic_id": clinic_id,
            "patient_id": patient_id,
            "service_name": "Botox",
            "status": status,
            "start": start,
            "end": start + timedelta(hours=1),
        }
    )
    key = message_key("appointment_reminder", appointment_id, start, 24)
    Ledger(clients.store(), system_clock).schedule([Planned(key, {"kind": "appointment_reminder"})])
    return AppointmentTask(
        type="appointment_reminder",
        appointment_id=appointment_id,
        clinic_id=clinic_id,
        patient_id=patient_id,
        dedup_key=key,
        send_at=system_clock.now(),
        appointment_start=start,
        offset_hours=24,
    )


def main() -> int:
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        print("run it against the local stack: . .local/env.sh first", file=sys.stderr)
        return 2
    db = clients.firestore()
    store = clients.store()
    ledger = Ledger(store, system_clock)
    sender = MessageSender(
        ledger=ledger,
        sms=TwilioSms(clients.twilio()),
        email=SendGridEmail(clients.sendgrid()),
        clock=system_clock,
        opt_outs=OptOuts(store, system_clock),
        evidence=SendRecords(store, system_clock),
    )
    service = AppointmentMessages(store=store, ledger=ledger, sender=sender, clock=system_clock, clinics=ClinicCache())
    clinic_id, patient_id = _world(db)
    fresh, cached, cancelled = (
        _task(db, clinic_id, patient_id),
        _task(db, clinic_id, patient_id),
        _task(db, clinic_id, patient_id, status="cancelled"),
    )
    counter = CountingFirestore(db)
    rows = []
    for label, task, target in (
        ("delivered reminder, clinic not cached", fresh, 3),
        ("delivered reminder, clinic cached", cached, 3),
        ("duplicate delivery of a sent reminder", cached, 1),
        ("skip (appointment cancelled)", cancelled, 3),
    ):
        outcome = service.deliver(task, Attempt(task_name=None, retry_count=0, queue=None))
        calls = counter.take()
        rows.append((label, outcome.status, sum(calls.values()), target, dict(calls)))
    print(f"{'case':42} {'outcome':10} {'round trips':>11} {'target':>6}  rpcs")
    for label, status, total, target, rpcs in rows:
        mark = "ok" if total <= target else "OVER"
        print(f"{label:42} {status:10} {total:>11} {'<= ' + str(target):>6}  {rpcs} {mark}")
    return 0 if all(total <= target for _, _, total, target, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
