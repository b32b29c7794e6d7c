"""Outbox messages as the console shows them: each with its clinic's name, the ledger kind it was sent for,
its recipient masked, and its delivery timeline. Shared by the Outbox, Conversations and Reports pages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from local.sandbox.console.data import ClinicRow, ConsoleData, ConsoleDataError, plain
from local.sandbox.outbox import address_key, ledger_reference
from shared.platform.masking import mask_address

KIND_LABELS = {
    "appointment_reminder": "reminder",
    "booking_confirmation": "booking confirmation",
    "prep_instructions": "prep instructions",
    "followup": "follow-up survey",
    "checkin": "check-in",
    "feedback_review": "review link",
    "feedback_alert": "low-score alert",
    "booking_nudge": "booking nudge",
    "group_reminder": "group booking message",
    "rebook_nudge": "rebooking nudge",
    "no_show_message": "we missed you",
    "waitlist_offer": "waitlist offer",
    "waitlist_result": "waitlist result",
    "report_email": "report",
    "inventory_alert": "inventory alert",
    "reply": "patient's reply",
    "auto_reply": "automatic reply",
}
SNIPPET_CHARS = 140
CLOCK_SKEW_SECONDS = 60.0
REFUSAL_SUMMARY_CHARS = {"sms": 1600, "email": 200}  # what twilio_api / sendgrid_api keep of a refused send


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def kind_label(kind: str | None) -> str:
    return KIND_LABELS.get(kind or "", (kind or "").replace("_", " ") or "unknown")


def reference(message: dict[str, Any]) -> str | None:
    """The ledger key and generation ("key:generation") this message was sent for (outbox.ledger_reference)."""
    callback = message.get("status_callback") if message["channel"] == "sms" else None
    return ledger_reference(callback, None if callback else message.get("custom_args"))


def ledger_key(message: dict[str, Any]) -> str | None:
    """The notifications/{key} doc this message was sent for, without the generation."""
    found = reference(message)
    return (found.rpartition(":")[0] or found) if found else None


def snippet(text: str | None) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


def patient_address(message: dict[str, Any]) -> str:
    """The patient's side of an SMS: whom it went to, or who sent it."""
    return message["from"] if message["direction"] == "inbound" else message["to"]


def clinic_sender(message: dict[str, Any]) -> str:
    """The clinic's side: the number or Messaging Service it came from, or the number it was sent to."""
    if message["direction"] == "inbound":
        return message["to"]
    return message.get("messaging_service_sid") or message.get("from") or ""


@dataclass
class Shown:
    """One outbox record with what the console adds to it."""

    message: dict[str, Any]
    clinic_id: str | None = None
    clinic_name: str = ""
    kind: str | None = None
    key: str | None = None
    ids: dict[str, Any] = field(default_factory=dict)  # ledger fields naming ids only (patient, appointment, …)
    send_at: str | None = None  # the ledger doc's planned send time (ISO, UTC)

    @property
    def clock_skew(self) -> bool:
        """Whether the stack's clock, when it sent this, was more than a minute off real time (the quick
        demo compresses a day): then both times are shown, as neither alone reads right."""
        sent, received = (_instant(self.message[name]) for name in ("created_at", "received_at"))
        return abs((sent - received).total_seconds()) > CLOCK_SKEW_SECONDS

    @property
    def id(self) -> str:
        return str(self.message["id"])

    @property
    def to(self) -> str:
        return mask_address(self.message["to"])

    @property
    def sender(self) -> str:
        return mask_address(self.message["from"] or self.message.get("messaging_service_sid"))

    @property
    def kind_label(self) -> str:
        return kind_label(self.kind)

    @property
    def summary(self) -> str:
        message = self.message
        return snippet(message["subject"] if message["channel"] == "email" else message["body"])

    def searchable(self) -> str:
        message = self.message
        parts = [
            message.get("body"),
            message.get("subject"),
            message.get("text"),
            message["id"],
            self.key,
            self.clinic_name,
            self.kind_label,
            self.to,
            self.sender,
            message.get("status"),
            str(message.get("error_code") or ""),
            *(str(value) for value in self.ids.values()),
        ]
        return " ".join(part for part in parts if part).lower()

    def matches(self, query: str) -> bool:
        """Every word of the query in its text, ids or masked addresses; a phone number or an email
        address typed whole finds its messages (they are shown masked all the same)."""
        query = query.strip()
        if not query:
            return True
        if address_key(query) in (address_key(self.message["to"]), address_key(self.message["from"])):
            return True
        text = self.searchable()
        return all(word in text for word in query.lower().split())


class Enricher:
    """Adds clinic names and ledger kinds to outbox records; Firestore trouble leaves them blank (and says so)."""

    def __init__(self, data: ConsoleData) -> None:
        self.data = data
        self.problem: str | None = None

    def clinics(self) -> list[ClinicRow]:
        try:
            return self.data.clinics()
        except ConsoleDataError as error:
            self.problem = str(error)
            return []

    def enrich(self, messages: Iterable[dict[str, Any]]) -> list[Shown]:
        records = list(messages)
        clinics = self.clinics()
        by_sender: dict[str, ClinicRow] = {}
        for row in clinics:
            for sender in (row.sms_from, row.email_from):
                if sender:
                    by_sender[sender if sender.startswith("MG") else address_key(sender)] = row
        by_id = {clinic.id: clinic for clinic in clinics}
        keys = {record["id"]: ledger_key(record) for record in records}
        kinds: dict[str, dict[str, Any]] = {}
        if clinics or self.problem is None:
            try:
                kinds = self.data.ledger_kinds(key for key in keys.values() if key)
            except ConsoleDataError as error:
                self.problem = str(error)
        shown = []
        for record in records:
            key = keys[record["id"]]
            ledger = kinds.get(key or "", {})
            sender = clinic_sender(record)
            clinic = by_sender.get(sender if sender.startswith("MG") else address_key(sender))
            if clinic is None and ledger.get("clinic_id") in by_id:
                clinic = by_id[ledger["clinic_id"]]
            kind = {"inbound": "reply", "reply": "auto_reply"}.get(record["direction"]) or ledger.get("kind")
            shown.append(
                Shown(
                    message=record,
                    clinic_id=clinic.id if clinic else ledger.get("clinic_id"),
                    clinic_name=clinic.name if clinic else str(ledger.get("clinic_id") or ""),
                    kind=kind,
                    key=key,
                    ids={name: value for name, value in ledger.items() if name.endswith("_id") and value},
                    send_at=plain(ledger["send_at"]) if ledger.get("send_at") else None,
                )
            )
        return shown


def _split(reference: str) -> tuple[str, int | None]:
    key, _, generation = reference.rpartition(":")
    return (key, int(generation)) if key and generation.isdigit() else (reference, None)


def _earlier_attempt(refused: str | None, wanted: str | None) -> bool:
    """Whether a refused send ("key:generation") was an attempt at this message's ledger doc: the same key,
    and a generation no later than the message's (each attempt claims the doc anew, numbering it)."""
    if refused is None or wanted is None:
        return False
    (refused_key, refused_generation), (key, generation) = _split(refused), _split(wanted)
    if refused_key != key:
        return False
    return refused_generation is None or generation is None or refused_generation <= generation


def _refused_before(refusal: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether a refused send was an earlier attempt at this message: the same ledger doc when the message
    names one (a twin with the same number and words is another ledger doc); only a send made without a
    ledger reference (a script, a by-hand send) is matched by number and words."""
    if (
        refusal["channel"] != record["channel"]
        or refusal["at"] > record["created_at"]
        or address_key(refusal["to"]) != address_key(record["to"])  # an email's each recipient: its own
    ):
        return False
    wanted, refused = reference(record), refusal.get("ledger")
    if wanted is not None or refused is not None:
        return _earlier_attempt(refused, wanted)
    summary = (record["body"] if record["channel"] == "sms" else record["subject"]) or ""
    return refusal["summary"] == summary[: REFUSAL_SUMMARY_CHARS[record["channel"]]]


def timeline(record: dict[str, Any], refusals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What happened to one message, in order: refused attempts before it (an injected outage, a
    rate limit), its provider statuses with their error codes, and every webhook the sandbox posted."""
    provider = "Twilio" if record["channel"] == "sms" else "SendGrid"
    steps: list[dict[str, Any]] = []
    for refusal in refusals:
        if _refused_before(refusal, record):
            code = f" (code {refusal['code']})" if refusal.get("code") else ""
            fault = f", fault {refusal['fault']}" if refusal.get("fault") else ""
            steps.append(
                {
                    "at": refusal["at"],
                    "tone": "bad",
                    "text": f"{provider} answered {refusal['http_status']}{code}{fault}",
                }
            )
    if record["direction"] == "inbound":
        steps.append({"at": record["created_at"], "tone": "good", "text": "received from the patient"})
    if record["direction"] == "reply":
        text = f"the inbound webhook's TwiML answer to {record.get('in_reply_to')}, sent back by Twilio"
        steps.append({"at": record["created_at"], "tone": "good", "text": text})
    for step in record["history"]:
        status = step["status"]
        code = f" (error {step['error_code']})" if step.get("error_code") else ""
        tone = "bad" if status in ("failed", "undelivered", "bounce", "dropped") else "good"
        if record["direction"] == "inbound":
            continue
        steps.append({"at": step["at"], "tone": tone, "text": f"{provider}: {status}{code}"})
    for callback in record["callbacks"]:
        target = {"sms": "twilio-status", "email": "sendgrid-events"}[record["channel"]]
        if record["direction"] == "inbound":
            target = "the inbound-SMS webhook"
        answer = callback.get("http_status") or callback.get("error") or "no answer"
        tone = "good" if isinstance(callback.get("http_status"), int) and callback["http_status"] < 400 else "bad"
        steps.append(
            {
                "at": callback.get("at", record["updated_at"]),
                "tone": tone,
                "text": f"webhook '{callback.get('status')}' posted to {target}: answered {answer}",
            }
        )
    if record.get("fault"):
        steps.append({"at": record["created_at"], "tone": "bad", "text": f"fault {record['fault']}"})
    steps.sort(key=lambda step: step["at"])
    return steps
