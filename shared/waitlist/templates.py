"""What a waitlisted patient reads: the offer of a freed slot, its result, and the replies to their texts.

Like the reminders (shared.messaging.templates): first name, clinic name and phone, the local date and
time; never the treatment (an SMS shows on a lock screen, and an email offer names no more). SMS stays
GSM-7 and within 2 segments. The product asks only for YES, C and HELP: STOP and CANCEL are Twilio's
opt-out keywords; STOP is named in the HELP answer and the marketing opt-in's confirmation, because
carriers (CTIA) want both to say how to opt out, and CANCEL never as a word to reply.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contract.models import Clinic, Patient
from shared.messaging.templates import EMAILS, Message, fit_segments, format_local, gsm7_safe, locale_for
from shared.platform.html_templates import render_html

_OFFERS: dict[str, dict[str, Any]] = {
    "en": {
        "offer_sms": "Hi {first}, an opening at {clinic}: {when}. Reply YES by {deadline} to book it. "
        "Reply HELP for help.",
        "offer_subject": "An opening at {clinic}",
        "offer_email": "Hi {first}, an opening at {clinic} has come up: {when}. Book it before {deadline}:",
        "offer_button": "Book this time",
        "offer_link_note": "The link works once. Questions: call {phone}.",
        "won": (
            "You're booked",
            "Hi {first}, you're booked at {clinic} for {when}. Questions or changes: call {phone}.",
        ),
        "taken": (
            "This opening has been taken",
            "Hi {first}, the {when} opening at {clinic} has just been taken. You stay on our waitlist.",
        ),
        "expired": (
            "This opening is no longer on offer",
            "Hi {first}, the {when} opening at {clinic} is no longer on offer. You stay on our waitlist.",
        ),
    },
    "es": {
        "offer_sms": "Hola {first}, hay un hueco en {clinic}: {when}. Responda YES antes de las {deadline} "
        "para reservarlo. Responda HELP para ayuda.",
        "offer_subject": "Un hueco disponible en {clinic}",
        "offer_email": "Hola {first}, hay un hueco disponible en {clinic}: {when}. Resérvelo antes de las {deadline}:",
        "offer_button": "Reservar esta hora",
        "offer_link_note": "El enlace funciona una sola vez. Preguntas: llame al {phone}.",
        "won": (
            "Su cita está reservada",
            "Hola {first}, su cita en {clinic} está reservada para el {when}. Preguntas o cambios: llame al {phone}.",
        ),
        "taken": (
            "Este hueco ya está ocupado",
            "Hola {first}, el hueco del {when} en {clinic} ya está ocupado. Sigue en nuestra lista de espera.",
        ),
        "expired": (
            "Este hueco ya no está disponible",
            "Hola {first}, el hueco del {when} en {clinic} ya no está disponible. Sigue en nuestra lista de espera.",
        ),
    },
}

# Replies to a patient's text (TwiML). Keys are the inbound outcomes (shared.waitlist.inbound).
_REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "won": "You're booked at {clinic} for {when}. Questions or changes: call {phone}.",
        "taken": "Sorry, this slot has just been taken. You stay on the waitlist.",
        "expired": "This offer has ended. You stay on the waitlist.",
        "no_offer": "We have no open offer for you right now. You stay on the waitlist. Questions: call {phone}.",
        "conflict": "You already have an appointment at that time, so we kept your place on the waitlist. "
        "Questions: call {phone}.",
        "confirmed": "Thank you, your appointment at {clinic} on {when} is confirmed.",
        "already_confirmed": "Your appointment at {clinic} on {when} is already confirmed.",
        "no_appointment": "We found no upcoming appointment to confirm. Questions: call {phone}.",
        "help": "{clinic}: call {phone} for help. Appointment texts, and {program} offers if you joined "
        "({frequency}). Msg & data rates may apply. Reply YES to take an offered opening, C to confirm an "
        "appointment. Reply STOP to opt out.",
        "joined": "{program}: you're subscribed to offers from {clinic}, {frequency}. Msg & data rates may apply. "
        "Reply HELP for help, STOP to cancel.",
        "revoked": "{clinic}: you're unsubscribed and will get no more texts from us. Reply START to get "
        "appointment texts again, or call {phone}.",
        "opted_out_uncertain": "{clinic}: we've stopped texting you. If you didn't mean that, reply START to get "
        "appointment texts again. Questions: call {phone}.",
        "request": "Thanks, {clinic} will contact you about changing your appointment. You can also call {phone}.",
        "other": "{clinic}: reply YES to take an offered opening, C to confirm an appointment, HELP for help. "
        "Or call {phone}.",
        "unknown_patient": "This number sends messages for {clinic}. Please call {phone}.",
    },
    "es": {
        "won": "Su cita en {clinic} está reservada para el {when}. Preguntas o cambios: llame al {phone}.",
        "taken": "Lo sentimos, este hueco ya está ocupado. Sigue en la lista de espera.",
        "expired": "Esta oferta ha terminado. Sigue en la lista de espera.",
        "no_offer": "No tenemos ninguna oferta abierta para usted ahora. Sigue en la lista de espera. "
        "Preguntas: llame al {phone}.",
        "conflict": "Ya tiene una cita a esa hora; mantenemos su lugar en la lista de espera. "
        "Preguntas: llame al {phone}.",
        "confirmed": "Gracias, su cita en {clinic} el {when} está confirmada.",
        "already_confirmed": "Su cita en {clinic} el {when} ya está confirmada.",
        "no_appointment": "No encontramos ninguna cita próxima que confirmar. Preguntas: llame al {phone}.",
        "help": "{clinic}: llame al {phone} para ayuda. Mensajes de sus citas, y ofertas de {program} si se "
        "suscribió ({frequency}). Pueden aplicarse tarifas de mensajes y datos. Responda YES para aceptar un hueco "
        "ofrecido, C para confirmar una cita. Responda STOP para darse de baja.",
        "joined": "{program}: se ha suscrito a las ofertas de {clinic}, {frequency}. Pueden aplicarse tarifas de "
        "mensajes y datos. Responda HELP para ayuda, STOP para cancelar.",
        "revoked": "{clinic}: se ha dado de baja y no recibirá más mensajes nuestros. Responda START para volver "
        "a recibir los mensajes de sus citas, o llame al {phone}.",
        "opted_out_uncertain": "{clinic}: hemos dejado de enviarle mensajes. Si no era su intención, responda "
        "START para volver a recibir los mensajes de sus citas. Preguntas: llame al {phone}.",
        "request": "Gracias, {clinic} le contactará para cambiar su cita. También puede llamar al {phone}.",
        "other": "{clinic}: responda YES para aceptar un hueco ofrecido, C para confirmar una cita, HELP para "
        "ayuda. O llame al {phone}.",
        "unknown_patient": "Este número envía mensajes de {clinic}. Por favor llame al {phone}.",
    },
}
REPLY_KINDS = tuple(_REPLIES["en"])


def _copy(table: dict[str, dict[str, Any]], locale: str) -> dict[str, Any]:
    return table.get(locale, table["en"])


def _sms(text: str) -> str:
    return fit_segments(gsm7_safe(" ".join(text.split())))


def _clock_time(instant: datetime, clinic: Clinic, locale: str) -> str:
    local = instant.astimezone(clinic.zone)
    if locale == "es":
        return f"{local.hour:02d}:{local.minute:02d}"
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def _values(clinic: Clinic, patient: Patient | None, start: datetime | None, locale: str) -> dict[str, str]:
    return {
        "first": patient.first_name if patient else "",
        "clinic": clinic.name,
        "phone": clinic.phone,
        "when": format_local(start, clinic.zone, locale) if start else "",
        "program": clinic.marketing.program_name or clinic.name,
        "frequency": clinic.marketing.frequency,
    }


def offer_sms(*, clinic: Clinic, patient: Patient, start: datetime, deadline: datetime) -> str:
    """The SMS offer: the slot's local time and the local time by which to answer YES."""
    locale = locale_for(patient, clinic)
    values = _values(clinic, patient, start, locale) | {"deadline": _clock_time(deadline, clinic, locale)}
    return _sms(_copy(_OFFERS, locale)["offer_sms"].format(**values))


def offer_email(*, clinic: Clinic, patient: Patient, start: datetime, deadline: datetime, link: str) -> Message:
    """The email offer, carrying its one-time claim link."""
    locale = locale_for(patient, clinic)
    copy = _copy(_OFFERS, locale)
    values = _values(clinic, patient, start, locale) | {"deadline": _clock_time(deadline, clinic, locale)}
    intro, note = copy["offer_email"].format(**values), copy["offer_link_note"].format(**values)
    html = render_html(
        EMAILS, "offer.html", intro=intro, link=link, button=copy["offer_button"], note=note, clinic=clinic.name
    )
    return Message(subject=copy["offer_subject"].format(**values), text=f"{intro}\n{link}\n\n{note}", html=html)


def result_message(outcome: str, *, clinic: Clinic, patient: Patient, start: datetime) -> Message:
    """A result (won / taken / expired) as an email; its `text` is also the SMS body's source."""
    locale = locale_for(patient, clinic)
    subject, template = _copy(_OFFERS, locale)[outcome]
    text = template.format(**_values(clinic, patient, start, locale))
    html = render_html(EMAILS, "message.html", paragraphs=[text], signoff=None, clinic=clinic.name)
    return Message(subject=f"{subject} — {clinic.name}", text=text, html=html)


def result_sms(outcome: str, *, clinic: Clinic, patient: Patient, start: datetime) -> str:
    return _sms(result_message(outcome, clinic=clinic, patient=patient, start=start).text)


def reply_text(kind: str, *, clinic: Clinic, patient: Patient | None, start: datetime | None = None) -> str:
    """The TwiML reply to an inbound text, in the patient's locale (the clinic's when the sender is unknown)."""
    locale = locale_for(patient, clinic) if patient else (clinic.locale or "en")
    template = _copy(_REPLIES, locale).get(kind) or _copy(_REPLIES, locale)["other"]
    return _sms(template.format(**_values(clinic, patient, start, locale)))
