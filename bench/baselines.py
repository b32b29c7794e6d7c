"""What the benchmarks compare the fan-out with, written without its code: the plan worked out from the
documents (`expected_plan`: which ledger docs and tasks a tick must produce) and the naive sequential loop
(`sequential`), made fair: it writes the same ledger the fan-out writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bench import fanout_data


@dataclass
class Expected:
    """What the plan comes to, worked out before any clock starts (the floor writes exactly this)."""

    ledger: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)  # clinic → [(key, doc)]
    tasks: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)  # clinic → [(queue, Task)]
    reads: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)  # clinic → query windows
    patients: dict[str, list[str]] = field(default_factory=dict)


def ledger_doc(message: Any, patient: Any, clinic: Any, now: datetime) -> tuple[dict[str, Any], str | None]:
    """The ledger doc the fan-out must write for one planned message, and the channel of its task (None: the
    message is skipped, no task)."""
    from shared.messaging.channels import first_channel
    from shared.messaging.ledger import RETENTION

    channel, reason = first_channel(patient, clinic)
    skipped = message.skipped or (reason if channel is None else None)
    doc = {
        **message.task.ledger_fields(None if skipped else channel),
        "state": "skipped" if skipped else "scheduled",
        "attempts": 0,
        "generation": 0,
        "created_at": now,
        "updated_at": now,
        "expire_at": now + RETENTION,
    }
    if skipped:
        doc["reason"] = skipped
    return doc, None if skipped else channel


def expected_plan(
    docs: Iterable[fanout_data.Doc], now: datetime, queue: Any, queues: Any, day: date | None = None
) -> Expected:
    """The fan-out's plan worked out from the documents themselves, without the fan-out's code: messages,
    channels, ledger docs and Task dicts (`day`: every clinic's; None: each clinic's local tomorrow)."""
    from shared.contract.clinic_time import local_day_range, local_tomorrow
    from shared.contract.models import Appointment, Clinic, Patient
    from shared.messaging.channels import SMS
    from shared.reminders.plan import PlannedMessage, followup_day, plan_followup, plan_reminders, reminder_window
    from shared.tasks.queue import TaskSpec

    clinics = {i: Clinic.from_doc(i, d) for c, i, d in docs if c == "clinics"}
    patients = {i: Patient.from_doc(i, d) for c, i, d in docs if c == "patients"}
    appointments: dict[str, list[Appointment]] = {}
    for c, i, d in docs:
        if c == "appointments":
            appointments.setdefault(d["clinic_id"], []).append(Appointment.from_doc(i, d))
    out = Expected()
    for clinic in clinics.values():
        target = day or local_tomorrow(now, clinic.zone)
        first, end, horizon = reminder_window(clinic, target)
        follow = local_day_range(followup_day(target), clinic.zone)
        out.reads[clinic.id] = [(first, end), follow]
        planned: list[PlannedMessage | None] = []
        for appointment in sorted(appointments.get(clinic.id, []), key=lambda a: a.id):
            if first <= appointment.start < end:
                planned += plan_reminders(appointment, clinic, now=now, horizon=horizon)
            if follow[0] <= appointment.start < follow[1]:
                planned.append(plan_followup(appointment, clinic, now=now))
        ledger, tasks, seen = [], [], set()
        for message in planned:
            if message is None or message.key in seen:
                continue
            seen.add(message.key)
            doc, channel = ledger_doc(message, patients[message.task.patient_id], clinic, now)
            ledger.append((message.key, doc))
            if channel is not None:
                spec = TaskSpec(
                    queues.sms if channel == SMS else queues.email,
                    message.key,
                    message.task.to_json(),
                    message.task.send_at,
                )
                tasks.append((queue.queue_path(spec.queue), queue.build(spec)))
        out.ledger[clinic.id], out.tasks[clinic.id] = ledger, tasks
        out.patients[clinic.id] = sorted({a.patient_id for a in appointments.get(clinic.id, [])})
    return out


def sequential(
    store: Any, queue: Any, queues: Any, now: datetime, day: date | None = None, clinic_ids: set[str] | None = None
) -> int:
    """The naive loop, writing the same ledger: the same reads and plan as the fan-out, then per message one
    ledger create and one create_task, one after the other. Returns the tasks created."""
    from shared.contract.clinic_time import local_day_range, local_tomorrow
    from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, Appointment, Clinic, Patient
    from shared.messaging.channels import SMS
    from shared.reminders.plan import PlannedMessage, followup_day, plan_followup, plan_reminders, reminder_window
    from shared.tasks.queue import TaskSpec

    created = 0
    for clinic_doc in list(store.query(CLINICS)):
        if clinic_ids is not None and clinic_doc.id not in clinic_ids:
            continue
        clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
        target = day or local_tomorrow(now, clinic.zone)
        first, end, horizon = reminder_window(clinic, target)
        follow = local_day_range(followup_day(target), clinic.zone)

        def window(a: datetime, b: datetime, clinic: Clinic = clinic) -> list[Appointment]:
            where = [("clinic_id", "==", clinic.id), ("start", ">=", a), ("start", "<", b)]
            return [Appointment.from_doc(d.id, d.data) for d in store.query(APPOINTMENTS, where=where)]

        planned: list[PlannedMessage | None] = [
            m for a in window(first, end) for m in plan_reminders(a, clinic, now=now, horizon=horizon)
        ]
        planned += [plan_followup(a, clinic, now=now) for a in window(*follow)]
        ids = sorted({m.task.patient_id for m in planned if m is not None})
        found = store.get_all([f"{PATIENTS}/{pid}" for pid in ids])
        patients = {doc.id: Patient.from_doc(doc.id, doc.data) for doc in found.values()}
        for message in planned:
            if message is None:
                continue
            doc, channel = ledger_doc(message, patients[message.task.patient_id], clinic, now)
            store.create(f"notifications/{message.key}", doc)
            if channel is None:
                continue
            queue.create(
                TaskSpec(
                    queue=queues.sms if channel == SMS else queues.email,
                    business_key=message.key,
                    payload=message.task.to_json(),
                    schedule_time=message.task.send_at,
                )
            )
            created += 1
    return created
