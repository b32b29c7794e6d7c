"""Sending one appointment message: re-read, decide (send / skip), claim, send, record.

Firestore round trips per task, counted at the client: one batched read (ledger + appointment +
patient, + clinic when not cached); a skip or a duplicate ends with at most one write; a send adds the
claim and the final "sent" update: 3 in all.

A group message (docs/groups.md) also reads its group in the same batched read and is skipped when the
group is missing, broken or cancelled, the seat left it or is cancelled, or its offset is no longer one
the seat's role allows (`shared.groups.model.send_problem`); it is rendered from the recipient's own
patient and appointment only.

Nothing in the task body is trusted beyond its ids: the ledger key is derived again from the
appointment as re-read (kind, id, start, an offset the clinic really uses), and a body whose key does
not match is refused. Once the message must go, shared.messaging.sender does the rest (claim, send,
record; an answer lost is reconciled before any re-send).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, Appointment, Clinic, Patient
from shared.groups.model import GROUP_CANCELLED, GROUP_OFFSETS, GROUPS, WORDING, parse_group, send_problem
from shared.messaging.appointment_tasks import AFTER_VISIT, FOLLOWUP, GROUP, AppointmentTask
from shared.messaging.channels import recipients, unreachable_reason
from shared.messaging.keys import message_key
from shared.messaging.ledger import Entry, Ledger
from shared.messaging.ledger import path as ledger_path
from shared.messaging.sender import MessageSender, Wording, duplicate_of
from shared.messaging.templates import render, render_sms
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError
from shared.platform.store import Doc, Store
from shared.tasks.declaration import Reopen
from shared.tasks.router import Attempt, Outcome

CLINIC_CACHE_SECONDS = 60.0
START_TOLERANCE = timedelta(seconds=1)
PREP_LEAD_HOURS = 48


class ClinicCache:
    """Clinic documents change rarely: keep each for a minute per instance."""

    def __init__(self, ttl_seconds: float = CLINIC_CACHE_SECONDS) -> None:
        self.ttl, self._lock = ttl_seconds, threading.Lock()
        self._items: dict[str, tuple[float, Clinic]] = {}

    def get(self, clinic_id: str) -> Clinic | None:
        with self._lock:
            item = self._items.get(clinic_id)
        if item is None or time.monotonic() - item[0] > self.ttl:
            return None
        return item[1]

    def put(self, clinic: Clinic) -> None:
        with self._lock:
            self._items[clinic.id] = (time.monotonic(), clinic)

    def read(self, store: Store, clinic_id: str, paths: dict[str, str]) -> tuple[dict[str, Doc | None], Clinic]:
        """One batched read of `paths` (name → doc path), the clinic's doc added when it is not cached."""
        clinic = self.get(clinic_id)
        wanted = paths if clinic is not None else {**paths, "clinic": f"{CLINICS}/{clinic_id}"}
        docs = store.get_all(list(wanted.values()))
        found = {name: docs.get(doc_path) for name, doc_path in wanted.items()}
        if clinic is None:
            clinic_doc = found.pop("clinic")
            if clinic_doc is None:
                raise PermanentError("clinic not found", code="clinic_missing")
            clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
            self.put(clinic)
        return found, clinic


def skip_reason(task: AppointmentTask, appointment: Appointment, now: datetime) -> str | None:
    """Why this message must not go out any more, or None."""
    if task.type in AFTER_VISIT:
        return None if appointment.status == "completed" else f"status_{appointment.status}"
    if appointment.status == "cancelled":
        return "cancelled"
    if not appointment.is_active:
        return f"status_{appointment.status}"
    if abs(appointment.start - task.appointment_start) > START_TOLERANCE:
        return "moved"
    if appointment.start <= now:
        return "past"
    if task.type == "booking_confirmation" and appointment.status == "confirmed":
        return "already_confirmed"
    return None


def check_task(task: AppointmentTask, appointment: Appointment, clinic: Clinic) -> None:
    """The body must describe this appointment exactly as the planner would have: ids, offset and key."""
    if appointment.clinic_id != task.clinic_id or appointment.patient_id != task.patient_id:
        raise PermanentError("task ids do not match the appointment", code="payload_mismatch")
    if task.type == "appointment_reminder":
        offsets_ok = task.offset_hours in clinic.reminder_offsets_hours
    elif task.type == "prep_instructions":
        offsets_ok = task.offset_hours == PREP_LEAD_HOURS
    elif task.type == GROUP:
        offsets_ok = task.offset_hours in GROUP_OFFSETS
    else:
        offsets_ok = task.offset_hours is None
    if not offsets_ok:
        raise PermanentError("task offset is not one this clinic uses", code="payload_mismatch")
    if message_key(task.type, appointment.id, task.appointment_start, task.offset_hours) != task.dedup_key:
        raise PermanentError("task dedup_key does not match its appointment", code="dedup_key_mismatch")


class Surveys(Protocol):
    """The feedback survey's side of a follow-up (shared.feedback, docs/feedback.md), wired in by the services."""

    def opened(self, task: AppointmentTask) -> None:
        """The survey is about to go out: replies to it are expected from now on."""

    def link(self, task: AppointmentTask) -> str:
        """The signed link of the survey's one-question page (an emailed follow-up)."""
        ...


@dataclass(frozen=True)
class _Read:
    entry: Entry | None
    appointment: Any
    patient: Any
    clinic: Clinic
    group: Any = None


class AppointmentMessages:
    """The service behind appointment_reminder, booking_confirmation, prep_instructions and followup."""

    def __init__(
        self,
        *,
        store: Store,
        ledger: Ledger,
        sender: MessageSender,
        clock: Clock,
        clinics: ClinicCache | None = None,
        surveys: Surveys | None = None,
    ) -> None:
        """`sender` is the instance's one MessageSender, shared with every other message service; `surveys`
        makes a follow-up the feedback survey (without it, a follow-up asks for a reply and records nothing)."""
        self.store, self.ledger, self.sender, self.clock = store, ledger, sender, clock
        self.clinics = clinics or ClinicCache()
        self.surveys = surveys

    def _read(self, task: AppointmentTask) -> _Read:
        """One batched read of everything the decision needs."""
        paths = {
            "ledger": ledger_path(task.dedup_key),
            "appointment": f"{APPOINTMENTS}/{task.appointment_id}",
            "patient": f"{PATIENTS}/{task.patient_id}",
        }
        if task.group_id is not None:
            paths["group"] = f"{GROUPS}/{task.group_id}"
        found, clinic = self.clinics.read(self.store, task.clinic_id, paths)
        ledger_doc = found["ledger"]
        entry = Entry.from_doc(ledger_doc) if ledger_doc else None
        return _Read(entry, found["appointment"], found["patient"], clinic, found.get("group"))

    def deliver(self, task: AppointmentTask, attempt: Attempt) -> Outcome:
        read = self._read(task)
        entry, clinic = read.entry, read.clinic
        if entry is not None and entry.is_done:
            return duplicate_of(entry)
        fields = task.ledger_fields()

        def skip(reason: str) -> Outcome:
            return self.sender.skip(task.dedup_key, entry, reason, fields)

        if read.appointment is None:
            return skip("appointment_missing")
        appointment = Appointment.from_doc(read.appointment.id, read.appointment.data)
        check_task(task, appointment, clinic)
        reason = skip_reason(task, appointment, self.clock.now())
        if task.group_id is not None:  # a cancelled group says why first: every seat's message stops for it
            group = parse_group(task.group_id, read.group.data if read.group is not None else None)
            group_reason = send_problem(group, appointment, task.offset_hours)
            if group_reason == GROUP_CANCELLED or not reason:
                reason = group_reason or reason
        if reason:
            return skip(reason)
        if read.patient is None:
            raise PermanentError("patient not found", code="patient_missing")
        patient = Patient.from_doc(read.patient.id, read.patient.data)
        reachable = recipients(patient, clinic)
        if not reachable:
            return skip(unreachable_reason(patient))
        # A group message's words depend on its offset (organizer, member, starting soon); its values come
        # from this patient and this appointment only. A follow-up is the survey: its email carries the page link.
        copy = WORDING.get(task.offset_hours or 0, task.type) if task.type == GROUP else task.type
        at = task.send_at
        surveys = self.surveys if task.type == FOLLOWUP else None
        email = partial(render, copy, clinic=clinic, patient=patient, appointment=appointment, send_at=at)
        wording = Wording(
            sms=partial(render_sms, copy, clinic=clinic, patient=patient, appointment=appointment, send_at=at),
            email=email if surveys is None else lambda: email(link=surveys.link(task)),
        )
        opened = partial(surveys.opened, task) if surveys is not None else None
        return self.sender.deliver(
            task.dedup_key, entry, fields, reachable, wording, attempt, patient_id=patient.id, before_send=opened
        )

    def reopen(self, task: AppointmentTask) -> Reopen:
        """The retry sweep's hook: make the ledger ready for an operator's retry of this message."""
        return self.ledger.reopen(task.dedup_key)
