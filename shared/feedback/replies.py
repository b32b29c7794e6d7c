"""What a patient reads in answer to a text about a feedback survey (TwiML replies, docs/feedback.md): the
thanks for a score, the front desk's promise after a low one, the ask for a number from 1 to 5 after a
reply that is none, the acknowledgement of a comment. GSM-7, one segment where it can be; never a word to
reply that Twilio treats as a keyword of its own.
"""

from __future__ import annotations

from shared.contract.models import Clinic, Patient
from shared.feedback.surveys import CHANGED, COMMENT, INVALID, LOW, SCORED
from shared.messaging.templates import fit_segments, gsm7_safe, locale_for

_REPLIES: dict[str, dict[str, str]] = {
    "en": {
        SCORED: "Thank you for your feedback! - {clinic}",
        CHANGED: "Thank you, we have your feedback. - {clinic}",
        LOW: "Thank you for telling us. We're sorry your visit fell short; {clinic} will contact you. "
        "You can also call {phone}.",
        INVALID: "Please reply with one number from 1 to 5 (5 = excellent). - {clinic}",
        COMMENT: "Thank you, we've passed your message to the {clinic} team. Questions: call {phone}.",
    },
    "es": {
        SCORED: "¡Gracias por su opinión! - {clinic}",
        CHANGED: "Gracias, ya tenemos su opinión. - {clinic}",
        LOW: "Gracias por contárnoslo. Lamentamos que su visita no fuera como esperaba; {clinic} le contactará. "
        "También puede llamar al {phone}.",
        INVALID: "Por favor responda con un solo número del 1 al 5 (5 = excelente). - {clinic}",
        COMMENT: "Gracias, hemos pasado su mensaje al equipo de {clinic}. Preguntas: llame al {phone}.",
    },
}
OUTCOMES = tuple(_REPLIES["en"])


def reply_text(outcome: str, *, clinic: Clinic, patient: Patient | None) -> str:
    locale = locale_for(patient, clinic) if patient else clinic.locale
    table = _REPLIES.get(locale, _REPLIES["en"])
    text = table[outcome].format(clinic=clinic.name, phone=clinic.phone)
    return fit_segments(gsm7_safe(" ".join(text.split())))
