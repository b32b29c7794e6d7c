"""Helpers for integration tests that drive the task handler: the sandbox's API, contract documents,
tasks built the way the fan-out builds them, and POSTs shaped like Cloud Tasks deliveries."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import requests

from local.config import StackConfig
from local.processes import wait_until
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.keys import message_key
from shared.messaging.ledger import Ledger, Planned
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.settings import Settings
from shared.tasks.queue import CloudTasksQueue, TaskSpec

WAIT = 30.0
CLINIC = {
    "name": "Glow Aesthetics",
    "timezone": "America/New_York",
    "phone": "+12125550142",
    "sms_from": "+12125550100",
    "email_from": "hello@glow.example.com",
    "locale": "en",
}


class Sandbox:
    def __init__(self, url: str) -> None:
        self.url = url

    def messages(self, **query: str) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/_sandbox/messages", params=query, timeout=5).json()

    def fault(self, **rule: Any) -> None:
        response = requests.post(f"{self.url}/_sandbox/faults", json=rule, timeout=5)
        assert response.status_code == 201, response.text

    def reset(self) -> None:
        requests.delete(f"{self.url}/_sandbox/messages", timeout=5)
        requests.delete(f"{self.url}/_sandbox/faults", timeout=5)


class World:
    """Writes the contract documents a test needs and builds tasks for them."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.db.collection("clinics").document("clinic-t").set(CLINIC)
        self.phones: list[str] = []
        self.emails: list[str] = []
        self.names: list[str] = []

    def patient(self, **fields: Any) -> str:
        patient_id = f"pat-{uuid.uuid4().hex[:8]}"
        number = f"+1212555{len(self.phones) + 1000 + uuid.uuid4().int % 8000:04d}"
        doc: dict[str, Any] = {
            "clinic_id": "clinic-t",
            "first_name": f"Zelda{uuid.uuid4().hex[:4]}",
            "last_name": "Quist",
            "phone": number,
            "email": f"{patient_id}@example.com",
            "preferred_channel": "sms",
            "sms_opt_out": False,
            "email_opt_out": False,
        }
        doc.update(fields)
        self.db.collection("patients").document(patient_id).set(doc)
        self.phones += [doc["phone"]] if doc.get("phone") else []
        self.emails += [doc["email"]] if doc.get("email") else []
        self.names.append(doc["first_name"])
        return patient_id

    def appointment(self, patient_id: str, *, start: datetime | None = None, **fields: Any) -> dict[str, Any]:
        start = start or (system_clock.now() + timedelta(days=2)).replace(microsecond=0)
        appointment_id = f"appt-{uuid.uuid4().hex[:8]}"
        doc = {
            "clinic_id": "clinic-t",
            "patient_id": patient_id,
            "provider_id": "dr-a",
            "provider_name": "Dr. A",
            "service_name": "HydraFacial",
            "requires_prep": False,
            "prep_instructions": "",
            "start": start,
            "end": start + timedelta(hours=1),
            "status": "booked",
            "price_cents": 19900,
        }
        doc.update(fields)
        self.db.collection("appointments").document(appointment_id).set(doc)
        return {"id": appointment_id, **doc}

    def task(self, appointment: dict[str, Any], kind: str = "appointment_reminder") -> AppointmentTask:
        offset = 24 if kind == "appointment_reminder" else 48 if kind == "prep_instructions" else None
        key = message_key(kind, appointment["id"], appointment["start"], offset)
        return AppointmentTask(
            type=kind,
            appointment_id=appointment["id"],
            clinic_id="clinic-t",
            patient_id=appointment["patient_id"],
            dedup_key=key,
            send_at=system_clock.now(),
            appointment_start=appointment["start"],
            offset_hours=offset,
        )

    def schedule(self, task: AppointmentTask) -> None:
        """What the fan-out does: the ledger doc, then the named task (dispatched now)."""
        Ledger(clients.store(), system_clock).schedule(
            [
                Planned(
                    task.dedup_key, {"kind": task.type, "appointment_id": task.appointment_id, "send_at": task.send_at}
                )
            ]
        )
        queue = CloudTasksQueue(clients.tasks(), Settings.from_env())
        assert queue.create(TaskSpec(queue="reminders-sms", business_key=task.dedup_key, payload=task.to_json()))

    def ledger(self, key: str) -> dict[str, Any]:
        snapshot = self.db.collection("notifications").document(key).get()
        return snapshot.to_dict() if snapshot.exists else {}

    def wait_ledger(self, key: str, *states: str) -> dict[str, Any]:
        assert wait_until(lambda: self.ledger(key).get("state") in states, WAIT), self.ledger(key)
        return self.ledger(key)

    def failed(self, doc_id: str | None = None) -> list[dict[str, Any]]:
        if doc_id:
            snapshot = self.db.collection("failed_tasks").document(doc_id).get()
            return [snapshot.to_dict()] if snapshot.exists else []
        return [s.to_dict() for s in self.db.collection("failed_tasks").stream()]


def as_cloud_tasks(stack: StackConfig, function: str = "task-handler") -> dict[str, str]:
    """The ingress header and the ID token Cloud Tasks attaches when it dispatches to `function`."""
    from local import identity

    tasks = identity.service_account(stack.project, "tasks-invoker")
    return identity.caller_headers(stack.state_dir, email=tasks, audience=stack.url(function))


def post(stack: StackConfig, body: Any, *, retry_count: int = 0, raw: bytes | None = None) -> requests.Response:
    """POST to the handler as Cloud Tasks does: through the front, with its token."""
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {
        **as_cloud_tasks(stack),
        "Content-Type": "application/json",
        "X-CloudTasks-QueueName": "reminders-sms",
        "X-CloudTasks-TaskName": f"t-{uuid.uuid4().hex}",
        "X-CloudTasks-TaskRetryCount": str(retry_count),
    }
    return requests.post(stack.url("task-handler"), data=data, headers=headers, timeout=30)
