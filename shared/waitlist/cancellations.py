"""appointment.cancelled → one slot offer for the freed slot, and its first wave (shared.waitlist.waves).

Idempotent per cancellation: the offer's id is derived from the appointment and its start, so the same
event delivered again finds the offer it opened and only finishes what a crashed delivery left undone;
its messages are deduplicated by their task names and ledger keys. Other events, an appointment that is
not cancelled (any more), or a slot starting too soon (the clinic's waitlist.min_lead_minutes) or in the
past are acknowledged with a reason and change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contract.events import AppointmentEvent, EventRejected, PlatformEvent
from shared.contract.models import APPOINTMENTS, Appointment
from shared.waitlist.offers import offer_id_for
from shared.waitlist.waves import Waves


@dataclass(frozen=True)
class Opened:
    """What one appointment event did here (logged by the entry point)."""

    outcome: str
    offer_id: str | None = None
    reason: str = ""

    def summary(self) -> dict[str, str | None]:
        return {"outcome": self.outcome, "offer_id": self.offer_id, "reason": self.reason}

    def raise_if_failed(self) -> None:
        """Nothing to redo: opening an offer either happens whole or raises."""


def open_offer(event: PlatformEvent, waves: Waves, *, now: datetime) -> Opened:
    """Open the offer of a cancelled appointment's slot and offer it to its first wave (a consent.recorded or a
    booking session's event on the same topic is reminder_fanout's: ignored here)."""
    if not isinstance(event, AppointmentEvent) or not event.is_cancellation:
        return Opened("ignored", reason=event.event.replace("appointment.", "event_"))
    doc = waves.store.get(f"{APPOINTMENTS}/{event.appointment_id}")
    if doc is None:
        raise EventRejected(f"appointment {event.appointment_id} does not exist", code="appointment_missing")
    appointment = Appointment.from_doc(doc.id, doc.data)
    if appointment.status != "cancelled":
        return Opened("ignored", reason=f"status_{appointment.status}")
    clinic = waves.clinic(appointment.clinic_id)  # PermanentError(clinic_missing): logged, acknowledged
    policy = clinic.waitlist
    if appointment.start - now < timedelta(minutes=policy.min_lead_minutes):
        return Opened("ignored", reason="past" if appointment.start <= now else "too_soon")
    offer_id = offer_id_for(appointment.id, appointment.start)
    created = waves.offers.open(
        offer_id,
        clinic_id=clinic.id,
        source_appointment_id=appointment.id,
        source_patient_id=appointment.patient_id,
        start=appointment.start,
        end=appointment.end,
        provider_id=appointment.provider_id,
        service_name=appointment.service_name,
        mode=policy.mode,
        wave_size=policy.wave_size,
        ttl_minutes=policy.offer_ttl_minutes,
    )
    outcome = waves.advance(offer_id, 0)
    return Opened("opened" if created else "reopened", offer_id=offer_id, reason=outcome.reason)
