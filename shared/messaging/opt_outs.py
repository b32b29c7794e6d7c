"""A patient's SMS opt-out, as Twilio reports it: the only writes this product makes to patients/{id}.

The booking platform owns every other field of a patient. Twilio tells us of an opt-out in two ways:
error 21610 when we send to someone who texted STOP, and the inbound STOP / START itself; a free text
judged a revocation (shared.consent.revocation) opts out the same way. Each change is also recorded in
consents/ (shared.consent.consents, docs/consent.md): an opt-out revokes marketing and transactional SMS,
an opt-back-in (START, UNSTOP, YES) grants transactional SMS again and never marketing.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from shared.contract.models import PATIENTS
from shared.platform.clock import Clock
from shared.platform.store import Store

if TYPE_CHECKING:
    from shared.consent.consents import Consents

OPT_IN_WORDING = "twilio_opt_in"  # the wording of an opt back in is Twilio's keyword, not a form of ours


class OptOuts:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    @functools.cached_property
    def consents(self) -> Consents:
        """Imported on the first opt-out, not when a sender is built (docs/performance.md, cold starts)."""
        from shared.consent.consents import Consents

        return Consents(self.store, self.clock)

    def set_sms_opt_out(
        self,
        patient_id: str,
        opted_out: bool,
        *,
        source: str,
        event_id: str | None = None,
        message_sid: str | None = None,
        consent_source: str | None = None,
    ) -> bool:
        """Record the opt-out (or its end) on the patient and in consents/; False when the patient doc does
        not exist. `event_id` (an inbound MessageSid) makes a replay record nothing twice; without one (a
        21610), a revocation already in force is not recorded again."""
        from shared.consent.consents import SOURCES, ConsentEvent, ConsentStatus, Purpose

        patient = self.store.get(f"{PATIENTS}/{patient_id}")
        now = self.clock.now()
        fields = {"sms_opt_out": opted_out, "sms_opt_out_source": source, "sms_opt_out_at": now}
        if patient is None or self.store.update(f"{PATIENTS}/{patient_id}", fields) is None:
            return False
        clinic_id = str(patient.get("clinic_id") or "")
        kind = consent_source or (source if source in SOURCES else "keyword")
        if opted_out:
            state = self.consents.current(patient_id)
            if event_id is None and all(state.revoked(purpose, "sms") for purpose in Purpose):
                return True
            stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
            self.consents.revoke_sms(
                patient_id, clinic_id, source=kind, event_id=event_id or f"{kind}-{stamp}", message_sid=message_sid
            )
        elif event_id is not None:
            self.consents.record(
                ConsentEvent(
                    patient_id=patient_id,
                    clinic_id=clinic_id,
                    purpose=Purpose.TRANSACTIONAL,
                    channel="sms",
                    status=ConsentStatus.GRANTED,
                    at=now,
                    source=kind,
                    wording_version=OPT_IN_WORDING,
                    event_id=f"{event_id}-{Purpose.TRANSACTIONAL.value}",
                    message_sid=message_sid,
                )
            )
        return True
