"""A consent the booking platform took (its booking form's checkbox, the front desk, an import), into
consents/ through its one owner (docs/consent.md, "How the booking platform records a consent").

It arrives as `consent.recorded` on the appointment-events topic (parsed and checked field by field in
shared.contract.events) or from `python -m ops consent record`, which builds the same body. What cannot
be recorded as sent (no such patient, another clinic's patient, a time in the future) is an
EventRejected with a code: logged and acknowledged, never retried, never a 5xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from shared.consent.consents import ConsentEvent, Consents, ConsentStatus, Purpose
from shared.contract.events import ConsentRecorded, EventRejected
from shared.contract.models import PATIENTS
from shared.platform.clock import Clock
from shared.platform.store import Store

CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of our clock the platform's may run


@dataclass(frozen=True)
class Recorded:
    """The outcome of one platform consent: its summary line's fields (nothing in it fails part-way)."""

    outcome: str  # "recorded" | "replayed"
    purpose: str
    status: str

    def summary(self) -> Mapping[str, Any]:
        return {"consent": self.outcome, "purpose": self.purpose, "status": self.status}

    def raise_if_failed(self) -> None:
        return None


def record_platform_consent(consent: ConsentRecorded, *, store: Store, clock: Clock) -> Recorded:
    """Record it for its patient, who must exist and be the named clinic's."""
    patient = store.get(f"{PATIENTS}/{consent.patient_id}")
    if patient is None:
        raise EventRejected(f"patient {consent.patient_id} does not exist", code="patient_missing")
    if patient.get("clinic_id") != consent.clinic_id:
        raise EventRejected(f"patient {consent.patient_id} is not clinic {consent.clinic_id}'s", code="clinic_mismatch")
    if consent.at > clock.now() + CLOCK_SKEW:
        raise EventRejected("a consent cannot be recorded ahead of time", code="consent_in_future")
    new = Consents(store, clock).record(
        ConsentEvent(
            patient_id=consent.patient_id,
            clinic_id=consent.clinic_id,
            purpose=Purpose(consent.purpose),
            channel=consent.channel,
            status=ConsentStatus(consent.status),
            at=consent.at,
            source=consent.source,
            wording_version=consent.wording_version,
            event_id=consent.event_id,
        )
    )
    return Recorded("recorded" if new else "replayed", consent.purpose, consent.status)
