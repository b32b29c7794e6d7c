"""One patient's compliance evidence, read and never written: `python -m ops compliance --patient ID`.

`patient_evidence(store, clock, patient_id)` gathers the patient's consent history (every grant and
revocation, by purpose and channel, with its source and wording version), every message sent, skipped,
failed or unconfirmed with its basis and delivery (the send records), and for each revocation when it was
honoured: the first message held back after it, and any message of that purpose and channel that still
went before a new grant (there should be none). `render(evidence)` is the text form. Ids, codes, times and
the patient's masked contact only: never a name, a whole phone number or email address, or a message's text
(docs/compliance.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.consent.consents import ConsentEvent, Consents
from shared.consent.evidence import SendOutcome, SendRecord, SendRecords
from shared.platform.clock import Clock
from shared.platform.masking import mask_email, mask_phone
from shared.platform.store import Store

HELD_BACK = (SendOutcome.SKIPPED.value,)
WENT = (SendOutcome.SENT.value, SendOutcome.UNCONFIRMED.value)


@dataclass(frozen=True)
class ConsentLine:
    """One consent event as the export shows it."""

    event_id: str
    purpose: str
    channel: str
    status: str
    at: datetime | None
    source: str
    wording_version: str
    message_sid: str | None = None


@dataclass(frozen=True)
class Honoured:
    """What followed one revocation: the first message held back, and any that still went."""

    event_id: str
    purpose: str
    channel: str
    revoked_at: datetime | None
    first_held_back: str | None  # a send record's key
    first_held_back_at: datetime | None
    sent_after: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Evidence:
    patient_id: str
    found: bool
    clinic_id: str | None
    phone: str
    email: str
    consents: list[ConsentLine]
    messages: list[SendRecord]
    revocations: list[Honoured]


def consent_history(store: Store, clock: Clock, patient_id: str) -> list[ConsentLine]:
    """The patient's consent history, oldest first, through its owner module."""
    return [_line_of_event(event) for event in Consents(store, clock).history(patient_id)]


def _line_of_event(event: ConsentEvent) -> ConsentLine:
    return ConsentLine(
        event_id=str(event.event_id),
        purpose=str(event.purpose),
        channel=str(event.channel),
        status=str(event.status),
        at=event.at,
        source=str(event.source),
        wording_version=str(event.wording_version),
        message_sid=event.message_sid,
    )


def honoured(consents: Sequence[ConsentLine], messages: Sequence[SendRecord]) -> list[Honoured]:
    """For each revocation: the first message of its purpose held back after it, and every message of its
    purpose and channel that went after it and before the next grant."""
    out = []
    for index, revocation in enumerate(consents):
        if revocation.status != "revoked" or revocation.at is None:
            continue
        regrant = next(
            (
                later.at
                for later in consents[index + 1 :]
                if later.status == "granted"
                and (later.purpose, later.channel) == (revocation.purpose, revocation.channel)
                and later.at is not None
            ),
            None,
        )
        after = [
            m
            for m in messages
            if m.purpose == revocation.purpose
            and m.at is not None
            and m.at >= revocation.at
            and (regrant is None or m.at < regrant)
        ]
        held = next((m for m in after if m.outcome in HELD_BACK), None)
        went = [m.key for m in after if m.outcome in WENT and m.channel == revocation.channel]
        out.append(
            Honoured(
                event_id=revocation.event_id,
                purpose=revocation.purpose,
                channel=revocation.channel,
                revoked_at=revocation.at,
                first_held_back=held.key if held else None,
                first_held_back_at=held.at if held else None,
                sent_after=went,
            )
        )
    return out


def patient_evidence(store: Store, clock: Clock, patient_id: str) -> Evidence:
    """Everything the export shows for one patient (reads only)."""
    patient = store.get(f"patients/{patient_id}")
    consents = consent_history(store, clock, patient_id)
    messages = SendRecords(store, clock).of_patient(patient_id)
    data = patient.data if patient is not None else {}
    return Evidence(
        patient_id=patient_id,
        found=patient is not None or bool(consents) or bool(messages),
        clinic_id=data.get("clinic_id"),
        phone=mask_phone(data.get("phone")),
        email=mask_email(data.get("email")),
        consents=consents,
        messages=messages,
        revocations=honoured(consents, messages),
    )


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def render(evidence: Evidence) -> str:
    """The export as text: consent history, messages, revocations."""
    lines = [
        f"patient {evidence.patient_id} (clinic {evidence.clinic_id or '-'}): phone {evidence.phone}, "
        f"email {evidence.email}",
        f"consent history ({len(evidence.consents)}):",
    ]
    lines += [
        f"  {_when(c.at)}  {c.status:8} {c.purpose:13} {c.channel:5} source {c.source}, "
        f"wording {c.wording_version}, event {c.event_id}"
        for c in evidence.consents
    ]
    lines.append(f"messages ({len(evidence.messages)}):")
    for m in evidence.messages:
        delivery = m.delivery or {}
        delivered = f", delivery {delivery.get('status')}" if delivery else ""
        code = f" ({delivery.get('error_code')})" if delivery.get("error_code") else ""
        reason = f" [{m.reason}]" if m.reason else ""
        lines.append(
            f"  {_when(m.at)}  {m.outcome:11} {m.kind:22} {m.channel or '-':5} basis {m.basis}{reason}{delivered}"
            f"{code}  {m.key}"
        )
    lines.append(f"revocations ({len(evidence.revocations)}):")
    for r in evidence.revocations:
        held = f"first held back {_when(r.first_held_back_at)} ({r.first_held_back})" if r.first_held_back else ""
        went = f"SENT AFTER IT: {', '.join(r.sent_after)}" if r.sent_after else "nothing sent after it"
        lines.append(f"  {_when(r.revoked_at)}  {r.purpose} {r.channel}: {went}" + (f"; {held}" if held else ""))
    return "\n".join(lines)
