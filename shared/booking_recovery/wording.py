"""What a booking nudge says (en, es), in the style of shared/messaging/templates.py: first name, clinic name,
the slot's local date and time, the restore link, the clinic's phone; never the service (it shows on lock
screens). SMS in GSM-7 and at most 2 segments, the link never cut: the greeting is shortened instead.

A nudge with the clinic's discount code is marketing (docs/booking-recovery.md, "Discount"): it says the code
and ends with the STOP line, as every marketing SMS does. Without it (no consent, outside the recipient's
window, at the daily cap, no code set) the nudge is transactional and says nothing of a discount. Nothing asks
for CANCEL or STOP as a reply otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.booking_recovery.sessions import BookingSession
from shared.campaigns.wording import STOP_LINE
from shared.contract.models import Clinic, Patient
from shared.messaging.templates import (
    EMAILS,
    SMS_MAX_SEGMENTS,
    Message,
    format_local,
    gsm7_safe,
    locale_for,
    sms_segments,
)
from shared.platform.html_templates import render_html

ELLIPSIS = "..."

_COPY: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Finish your booking",
        "nudge1": "Hi {first}, you were almost done booking at {clinic}. Your time on {when} may still be open.",
        "nudge2": "Hi {first}, your booking at {clinic} for {when} is not finished yet.",
        "link": "Pick up where you left off: {link}",
        "discount": "Use code {code} for a discount.",
        "contact": "Questions: call {phone}.",
        "sms_footer": "Reply HELP for help.",
        "signoff": "See you soon,",
    },
    "es": {
        "subject": "Termine su reserva",
        "nudge1": "Hola {first}, casi termina su reserva en {clinic}. Su hora del {when} puede seguir disponible.",
        "nudge2": "Hola {first}, su reserva en {clinic} para el {when} aún no está terminada.",
        "link": "Continúe donde la dejó: {link}",
        "discount": "Use el código {code} para un descuento.",
        "contact": "Preguntas: llame al {phone}.",
        "sms_footer": "Responda HELP para ayuda.",
        "signoff": "Hasta pronto,",
    },
}


@dataclass(frozen=True)
class Nudge:
    """What one nudge says: to whom, which one, the restore link, and the discount code when it is marketing."""

    clinic: Clinic
    patient: Patient
    session: BookingSession
    number: int
    link: str
    discount_code: str | None = None  # set only when the nudge may be marketing

    def _parts(self) -> tuple[str, str, str, dict[str, str]]:
        locale = locale_for(self.patient, self.clinic)
        copy = _COPY.get(locale, _COPY["en"])
        values = {
            "first": self.patient.first_name,
            "clinic": self.clinic.name,
            "when": format_local(self.session.slot_start, self.clinic.zone, locale),
            "link": self.link,
            "code": self.discount_code or "",
            "phone": self.clinic.phone,
        }
        head = copy[f"nudge{self.number}"].format(**values)
        offer = copy["link"].format(**values)
        if self.discount_code:
            offer = f"{offer} {copy['discount'].format(**values)}"
        return head, offer, copy["contact"].format(**values), copy

    def sms(self) -> str:
        """GSM-7, at most 2 segments; the link and the code whole, the greeting shortened if need be."""
        head, offer, _, copy = self._parts()
        tail = gsm7_safe(f"{offer} {STOP_LINE if self.discount_code else copy['sms_footer']}")
        words = gsm7_safe(head).split(" ")
        text = " ".join(words)
        while len(words) > 1 and sms_segments(f"{text} {tail}") > SMS_MAX_SEGMENTS:
            words.pop()
            text = " ".join(words) + ELLIPSIS
        return f"{text} {tail}"

    def email(self) -> Message:
        """The email (a transactional nudge only: a discount goes by SMS, under the SMS marketing consent)."""
        head, offer, contact, copy = self._parts()
        paragraphs = [head, offer, contact]
        html = render_html(
            EMAILS, "message.html", paragraphs=paragraphs, signoff=copy["signoff"], clinic=self.clinic.name
        )
        return Message(subject=f"{copy['subject']} — {self.clinic.name}", text="\n".join(paragraphs), html=html)
