"""Why did (or didn't) a patient get a message about an appointment: its timeline, read and never written.

`appointment_timeline(store, appointment_id, outbox=…)` gathers the appointment (its status and start,
nothing else), its ledger docs (`notifications` with that `appointment_id`), their `failed_tasks` records
(one per ledger key) and, where there is one, what the provider's outbox holds for the patient (on the
local stack, the sandbox's); `build_timeline(...)` turns those into a `Timeline` without I/O, and
`render(timeline)` is what `python -m ops why` prints. A console view can show the same `Timeline`.
Ids, codes, states, times and masked addresses only: never a name, a whole phone number or email
address, a message's text or a treatment.

What the ledger keeps of a message is its last state, the time of each transition (planned, last claimed,
sent, delivered or failed) and how many attempts it took, not each attempt: earlier attempts show as a
count, and a transient failure's code as `reason` while the message waits for its retry. It records the
send time, not why it moved: for reminders and prep instructions (due at the start minus `offset_hours`)
a send time other than the due time is explained with the clinic's quiet hours as they are now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ops.outbox import Outbox, ProviderMessage
from shared.contract.clinic_time import shift_out_of_quiet_hours
from shared.contract.models import APPOINTMENTS, CLINICS, PATIENTS, Clinic, count_or_zero
from shared.messaging import ledger
from shared.messaging.appointment_tasks import CHECKIN, CONFIRMATION, FOLLOWUP, GROUP, PREP, REMINDER
from shared.platform.errors import InvalidDocument
from shared.platform.masking import scrub
from shared.platform.store import Doc, Store
from shared.rebooking.tasks import NO_SHOW, REBOOK
from shared.reminders.plan import LATEST_BEFORE_START
from shared.tasks import failed_tasks

KIND_WORDS = {
    REMINDER: "reminder",
    PREP: "prep instructions",
    CONFIRMATION: "booking confirmation",
    FOLLOWUP: "follow-up (the feedback survey)",
    CHECKIN: "check-in after the visit",
    GROUP: "group booking message",
    REBOOK: "rebooking nudge",
    NO_SHOW: '"we missed you"',
}
SKIP_REASONS = {
    "past": "its time had passed when it was planned, or the appointment had begun when its task ran",
    "too_late": "quiet hours would have moved it to less than 30 minutes before the start",
    "cancelled": "the appointment was cancelled",
    "moved": "the appointment was moved: the new start has messages of its own",
    "opted_out": "the patient opted out of every channel that could reach them",
    "no_contact": "the patient has no phone number or email address a message could use",
    "already_confirmed": "the appointment was already confirmed",
    "appointment_missing": "the appointment no longer exists",
    "group_cancelled": "the group booking was cancelled (docs/groups.md)",
    "left_group": "the appointment no longer belongs to this group",
    "not_organizer": "the patient is no longer the group's organizer",
    # rebooking nudges and "we missed you" (docs/rebooking.md)
    "rebooked": "the patient booked at the clinic again after the visit",
    "setting_removed": "the clinic's setting for it was removed after it was planned",
    "no_marketing_consent": "a rebooking nudge is marketing, and the patient has no marketing SMS consent",
    "sms_opt_out": "the patient opted out of SMS (a rebooking nudge goes by SMS only)",
    "no_phone": "no mobile number, or the clinic has no SMS sender",
    "window_ended": "the patient's marketing window never opened within 7 days of its planned time",
    "daily_cap": "the patient was at the daily marketing cap through 7 days after its planned time",
}
PROVIDERS = {"sms": "Twilio", "email": "SendGrid"}
MAX_TEXT = 160


@dataclass(frozen=True)
class Step:
    """One thing that happened to a message, when (None: the record does not say)."""

    at: datetime | None
    what: str  # planned, skipped, attempt, waiting, unconfirmed, sent, provider, delivered, failed, recorded, …
    detail: str


@dataclass(frozen=True)
class MessageStory:
    key: str
    kind: str
    offset_hours: int | None
    channel: str | None
    state: str
    steps: tuple[Step, ...]

    @property
    def title(self) -> str:
        words = KIND_WORDS.get(self.kind, self.kind)
        lead = f" {self.offset_hours} h before" if self.kind in (REMINDER, PREP) and self.offset_hours else ""
        return f"{words}{lead}, {self.channel or 'no channel recorded'}: {self.state}"


@dataclass(frozen=True)
class Timeline:
    appointment_id: str
    found: bool  # the appointment doc exists
    clinic_id: str | None
    patient_id: str | None
    status: str | None
    start: datetime | None
    zone: str | None
    messages: tuple[MessageStory, ...]
    outbox: str  # what was read of the provider's outbox, or why nothing was


def appointment_timeline(
    store: Store, appointment_id: str, *, outbox: Outbox | None = None, no_outbox: str = "not read"
) -> Timeline:
    """Read everything recorded about the messages of one appointment (read-only) and build its timeline."""
    appointment = store.get(f"{APPOINTMENTS}/{appointment_id}")
    entries = list(store.query(ledger.COLLECTION, where=[("appointment_id", "==", appointment_id)]))
    records = store.get_all([failed_tasks.path(doc.id) for doc in entries]) if entries else {}
    some = appointment.data if appointment else (entries[0].data if entries else {})
    clinic = _clinic(store, some.get("clinic_id"))
    sent: list[ProviderMessage] = []
    note = no_outbox
    if outbox is not None:
        patient = store.get(f"{PATIENTS}/{some['patient_id']}") if isinstance(some.get("patient_id"), str) else None
        addresses = [patient.get(name) for name in ("phone", "email")] if patient else []
        try:
            sent = [
                message for address in addresses if isinstance(address, str) for message in outbox.messages_to(address)
            ]
            keys = {doc.id for doc in entries}
            ours = sum(message.ledger_key in keys for message in sent)
            note = f"read: {ours} of the {len(sent)} message(s) it holds for the patient's phone and email are these"
        except OSError as exc:  # requests' errors included
            note = f"could not be read: {scrub(str(exc))[:MAX_TEXT]}"
    failures = {doc.id: doc for doc in records.values()}
    return build_timeline(appointment_id, appointment, clinic, entries, failures, sent, note)


def build_timeline(
    appointment_id: str,
    appointment: Doc | None,
    clinic: Clinic | None,
    entries: Sequence[Doc],
    failures: Mapping[str, Doc],
    outbox: Iterable[ProviderMessage],
    outbox_note: str,
) -> Timeline:
    """The timeline from what was read: one story per ledger doc, its steps in time order."""
    data = appointment.data if appointment else {}
    by_key: dict[str, list[ProviderMessage]] = {}
    for message in outbox:
        if message.ledger_key:
            by_key.setdefault(message.ledger_key, []).append(message)
    stories = [_story(doc, clinic, failures.get(doc.id), by_key.get(doc.id, [])) for doc in entries]
    stories.sort(key=lambda story: (_first_time(story), story.key))
    start = data.get("start")
    return Timeline(
        appointment_id=appointment_id,
        found=appointment is not None,
        clinic_id=_text(data.get("clinic_id")),
        patient_id=_text(data.get("patient_id")),
        status=_text(data.get("status")),
        start=start if isinstance(start, datetime) else None,
        zone=clinic.timezone if clinic else None,
        messages=tuple(stories),
        outbox=outbox_note,
    )


def _story(doc: Doc, clinic: Clinic | None, record: Doc | None, sent: list[ProviderMessage]) -> MessageStory:
    d = doc.data
    kind, channel = str(d.get("kind") or "unknown"), _text(d.get("channel"))
    steps = [_planned(d, clinic)]
    try:
        entry = ledger.Entry.from_doc(doc)
    except InvalidDocument as broken:  # edited by hand: say where, tell the rest of the timeline as it stands
        steps.append(
            Step(_at(d, "updated_at"), "invalid", f"the ledger doc breaks the contract at '{broken.field}': fix it")
        )
        return MessageStory(doc.id, kind, count_or_zero(d.get("offset_hours")), channel, "invalid", tuple(steps))
    reason = _text(d.get("reason"))
    if entry.state == ledger.State.SKIPPED:
        steps.append(Step(_at(d, "updated_at"), "skipped", _skip_words(reason)))
    if entry.attempts:
        earlier = f"; the {entry.attempts - 1} before it failed and were retried" if entry.attempts > 1 else ""
        steps.append(Step(_at(d, "claimed_at"), "attempt", f"attempt {entry.attempts} began{earlier}"))
    if entry.state in (ledger.State.SCHEDULED, ledger.State.SENDING) and reason:
        words = "reopened by an operator's retry" if reason == "operator_retry" else f"the last attempt ended: {reason}"
        steps.append(Step(_at(d, "updated_at"), "waiting", f"{words}; waiting for the next attempt"))
    if _at(d, "unconfirmed_at"):
        steps.append(
            Step(_at(d, "unconfirmed_at"), "unconfirmed", "the provider's answer was lost: not sent again blind")
        )
    if _at(d, "failed_at") and (record is None or d.get("delivery_status") in ("undelivered", "failed")):
        steps.append(Step(_at(d, "failed_at"), "failed", _failure_words(d)))
    if _at(d, "sent_at"):
        provider = PROVIDERS.get(channel or "", "the provider")
        steps.append(
            Step(_at(d, "sent_at"), "sent", f"{provider} accepted it as {_text(d.get('provider_message_id'))}")
        )
    if _at(d, "delivered_at"):
        steps.append(Step(_at(d, "delivered_at"), "delivered", "the provider reported it delivered"))
    if record is not None:
        steps.extend(_recorded(record))
    for message in sent:
        steps.extend(_provider_steps(message))
    steps.sort(key=lambda step: (step.at is None, step.at or datetime.min))
    return MessageStory(doc.id, kind, count_or_zero(d.get("offset_hours")), channel, entry.state.value, tuple(steps))


def _planned(d: Mapping[str, Any], clinic: Clinic | None) -> Step:
    send_at, start, created = _at(d, "send_at"), _at(d, "appointment_start"), _at(d, "created_at")
    offset = count_or_zero(d.get("offset_hours"))
    detail = f"to send at {_when(send_at, clinic)}"
    if d.get("kind") in (REMINDER, PREP) and send_at and start and offset:
        due = start - timedelta(hours=offset)
        if send_at != due:
            detail += f"; due at {_when(due, clinic)}, {_moved_words(due, send_at, start, created, clinic)}"
    return Step(created, "planned", detail)


def _moved_words(
    due: datetime, send_at: datetime, start: datetime, created: datetime | None, clinic: Clinic | None
) -> str:
    if clinic is None:
        return "moved (the clinic's quiet hours could not be read to say why)"
    quiet = f"{clinic.quiet_hours.start:%H:%M}–{clinic.quiet_hours.end:%H:%M}"
    shifted = shift_out_of_quiet_hours(due, clinic.zone, clinic.quiet_hours, not_after=start - LATEST_BEFORE_START)
    if shifted == send_at:
        way = "to the morning" if send_at > due else "back to the evening before (the morning is too late)"
        return f"moved out of the clinic's quiet hours ({quiet} local) {way}"
    if created is not None and created > shifted:
        return "already past when it was planned: planned for the first moment it could still go (catch-up)"
    return f"moved; the clinic's quiet hours as they are now ({quiet}) do not explain it"


def _recorded(record: Doc) -> list[Step]:
    r = record.data
    code, attempts = _text(r.get("error_code")), count_or_zero(r.get("attempts"))
    detail = f"in failed_tasks: {code}, HTTP {count_or_zero(r.get('http_status'))}, after {attempts} attempt(s)"
    if r.get("error"):
        detail += f" ({scrub(str(r['error']))[:MAX_TEXT]})"
    steps = [Step(_at(r, "first_failed_at"), "failed", detail)]
    if _at(r, "last_failed_at") not in (None, _at(r, "first_failed_at")):
        steps.append(Step(_at(r, "last_failed_at"), "failed", f"failed again: {code}"))
    if _at(r, "retried_at"):
        generation = count_or_zero(r.get("retry_generation"))
        steps.append(
            Step(_at(r, "retried_at"), "retried", f"an operator's retry: the sweep re-enqueued it (retry {generation})")
        )
    if _at(r, "resolved_at"):
        steps.append(Step(_at(r, "resolved_at"), "resolved", f"resolved: {scrub(str(r.get('note') or ''))[:MAX_TEXT]}"))
    steps.append(Step(None, "failed_tasks", f"status now: {_text(r.get('status'))}"))
    return steps


def _provider_steps(message: ProviderMessage) -> list[Step]:
    provider = PROVIDERS.get(message.channel, "the provider")
    attempt = f", attempt {message.generation}" if message.generation else ""
    steps = []
    for index, (status, at, code) in enumerate(message.statuses):
        said = (
            f"{provider} outbox: {message.id} to {message.to}{attempt}" if index == 0 else f"{provider}: {message.id}"
        )
        steps.append(Step(at, "provider", f"{said} {status}" + (f", error {code}" if code else "")))
    return steps


def _failure_words(d: Mapping[str, Any]) -> str:
    code, status = d.get("delivery_error_code"), d.get("delivery_status")
    if status in ("undelivered", "failed"):
        return f"the provider could not deliver it: {status}" + (f", error {_text(code)}" if code else "")
    return f"failed: {_text(d.get('reason'))}"


def _skip_words(reason: str | None) -> str:
    if reason and reason.startswith("status_"):
        return f"{reason}: the appointment's status was {reason.removeprefix('status_')}"
    return f"{reason}: {SKIP_REASONS.get(reason or '', 'see docs/runbook.md')}"


def render(timeline: Timeline) -> str:
    """The timeline as `python -m ops why` prints it: ids, codes, times and masked addresses."""
    zone = f" ({timeline.zone})" if timeline.zone else ""
    local = ZoneInfo(timeline.zone) if timeline.zone else None
    starts = _iso(timeline.start) + (
        f" ({timeline.start.astimezone(local):%a %H:%M} local)" if timeline.start and local else ""
    )
    if timeline.found:
        head = (
            f"appointment {timeline.appointment_id}: clinic {timeline.clinic_id}{zone}, patient {timeline.patient_id}, "
            f"starts {starts}, status {timeline.status}"
        )
    else:
        head = f"appointment {timeline.appointment_id}: no such appointment document (deleted, or a wrong id)"
    lines = [head]
    if not timeline.messages:
        lines.append(
            "no message planned for it: the reminders tick plans a clinic's local tomorrow (and a booking event its"
            " confirmation); a cancelled appointment gets none"
        )
    for story in timeline.messages:
        lines.append(f"\n{story.key}  {story.title}")
        lines.extend(f"  {_iso(step.at):20} {step.what:12} {step.detail}" for step in story.steps)
    lines.append(f"\nprovider outbox: {timeline.outbox}")
    return "\n".join(lines)


def _clinic(store: Store, clinic_id: Any) -> Clinic | None:
    doc = store.get(f"{CLINICS}/{clinic_id}") if isinstance(clinic_id, str) and clinic_id else None
    try:
        return Clinic.from_doc(doc.id, doc.data) if doc else None
    except InvalidDocument:
        return None


def _when(moment: datetime | None, clinic: Clinic | None) -> str:
    if moment is None or clinic is None:
        return _iso(moment)
    return f"{_iso(moment)} ({moment.astimezone(clinic.zone):%a %H:%M} local)"


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _at(data: Mapping[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    return value if isinstance(value, datetime) else None


def _text(value: Any) -> str | None:
    return scrub(str(value))[:MAX_TEXT] if value is not None else None


def _first_time(story: MessageStory) -> datetime:
    return next((step.at for step in story.steps if step.at), datetime.max).replace(tzinfo=None)
