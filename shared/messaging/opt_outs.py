"""A patient's SMS opt-out, as Twilio reports it: the only writes this product makes to patients/{id}.

The booking platform owns every other field of a patient. Twilio tells us of an opt-out in two ways:
error 21610 when we send to someone who texted STOP, and the inbound STOP / START itself.
"""

from __future__ import annotations

from shared.contract.models import PATIENTS
from shared.platform.clock import Clock
from shared.platform.store import Store


class OptOuts:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock

    def set_sms_opt_out(self, patient_id: str, opted_out: bool, *, source: str) -> bool:
        """Record the opt-out (or its end); False when the patient doc does not exist."""
        return (
            self.store.update(
                f"{PATIENTS}/{patient_id}",
                {"sms_opt_out": opted_out, "sms_opt_out_source": source, "sms_opt_out_at": self.clock.now()},
            )
            is not None
        )
