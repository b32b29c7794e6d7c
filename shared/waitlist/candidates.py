"""Who may be offered a freed slot: pure rules over documents already read (shared.waitlist.waves reads them).

An entry is a candidate when it is waiting, of the slot's clinic and service, asks for the slot's provider
or any, and its [earliest, latest] holds the whole slot. Its patient must be reachable (SMS or email, not
opted out), must not be the patient who freed the slot, must not already hold an offer or a booking that
overlaps it, and must be under the clinic's offers-per-day cap. First come, first served; one entry per
patient per offer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from shared.contract.models import Clinic, Patient
from shared.messaging.channels import recipients
from shared.waitlist.bookings import Busy, overlaps
from shared.waitlist.caps import DayCount
from shared.waitlist.entries import Entry, Status
from shared.waitlist.offers import SlotOffer


def entry_mismatch(entry: Entry, offer: SlotOffer) -> str | None:
    """Why this entry does not ask for this slot, or None when it does."""
    if entry.status != Status.WAITING:
        return f"status_{entry.status}"
    return slot_mismatch(entry, offer)


def slot_mismatch(entry: Entry, offer: SlotOffer) -> str | None:
    """Why this entry, whatever its status, does not want this slot, or None when it does."""
    wanted = entry.entry
    if wanted.clinic_id != offer.clinic_id or wanted.service_name != offer.service_name:
        return "other_service"
    if wanted.provider_id is not None and wanted.provider_id != offer.provider_id:
        return "other_provider"
    if not wanted.earliest <= offer.start or not offer.end <= wanted.latest:
        return "outside_window"
    return None


@dataclass(frozen=True)
class PatientFacts:
    """What the rules need to know about one candidate's patient."""

    patient: Patient | None  # None: missing or breaking the contract
    busy: Sequence[Busy]
    holds_offer: bool  # another entry of theirs is offered a slot right now
    day_count: DayCount
    hold_ends_at: datetime | None = None  # when the earliest of the offers they hold closes its window


def patient_mismatch(facts: PatientFacts, offer: SlotOffer, clinic: Clinic) -> str | None:
    """Why this patient may not be offered the slot now, or None."""
    patient = facts.patient
    if patient is None or patient.clinic_id != offer.clinic_id:
        return "patient_missing"
    if patient.id == offer.source_patient_id:
        return "freed_this_slot"
    if patient.id in offer.offered_patient_ids:
        return "already_offered"
    if not recipients(patient, clinic):
        return "unreachable"
    if facts.holds_offer:
        return "holds_another_offer"
    if overlaps(facts.busy, offer.start, offer.end):
        return "busy_then"
    if facts.day_count.count_without(offer.id) >= clinic.waitlist.max_offers_per_day:
        return "daily_cap"
    return None


def pick(
    entries: Sequence[Entry], facts: Mapping[str, PatientFacts], offer: SlotOffer, clinic: Clinic, size: int
) -> list[Entry]:
    """The first `size` entries (already in first-come order) whose patients pass every rule."""
    chosen: list[Entry] = []
    patients: set[str] = set()
    for entry in entries:
        if len(chosen) >= size:
            break
        if entry.id in offer.offered_entry_ids or entry.patient_id in patients:
            continue
        patient_facts = facts.get(entry.patient_id)
        if patient_facts is None or entry_mismatch(entry, offer) or patient_mismatch(patient_facts, offer, clinic):
            continue
        chosen.append(entry)
        patients.add(entry.patient_id)
    return chosen


def hold_ends(
    waiting: Sequence[Entry],
    facts: Mapping[str, PatientFacts],
    held: Sequence[Entry],
    offer: SlotOffer,
    clinic: Clinic,
) -> list[datetime]:
    """When the candidates kept from this slot only by an offer they hold would be free: the window ends of
    those offers. `waiting`: entries whose patient failed only for holding another offer (through another
    entry); `held`: entries offered another slot now that would want this one (the usual case: one entry
    offered two slots at the same time). The rules are checked again when the slot is looked at next."""
    ends = []
    for entry in waiting:
        patient_facts = facts.get(entry.patient_id)
        if patient_facts is None or not patient_facts.holds_offer or patient_facts.hold_ends_at is None:
            continue
        free = replace(patient_facts, holds_offer=False)
        if entry_mismatch(entry, offer) is None and patient_mismatch(free, offer, clinic) is None:
            ends.append(patient_facts.hold_ends_at)
    for entry in held:
        if (
            entry.status == Status.OFFERED
            and entry.offer_id != offer.id
            and entry.offer_expires_at is not None
            and entry.id not in offer.offered_entry_ids
            and entry.patient_id not in offer.offered_patient_ids
            and entry.patient_id != offer.source_patient_id
            and slot_mismatch(entry, offer) is None
        ):
            ends.append(entry.offer_expires_at)
    return ends
