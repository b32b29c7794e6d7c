"""What a patient reads: templates per message type and locale, SMS kept GSM-7 and within 2 segments.

Only what the patient must see goes in: first name, clinic name and phone, the local date and time,
prep instructions for a prep message. The treatment's name stays out of SMS (it shows on lock screens).
Replies never ask for CANCEL or STOP: those are Twilio's opt-out keywords (docs/architecture.md).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from shared.contract.models import Appointment, Clinic, Patient
from shared.platform.html_templates import render_html

EMAILS = Path(__file__).resolve().parent / "patient_emails"  # the HTML of patient emails (Jinja2, autoescaped)

_WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "es": ("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "es": ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic"),
}


def format_local(instant: datetime, zone: ZoneInfo, locale: str = "en") -> str:
    """A local date and time as a patient reads it: 'Thu, Nov 26 at 9:30 AM' / 'jue 26 nov, 09:30'."""
    local = instant.astimezone(zone)
    if locale == "es":
        weekday, month = _WEEKDAYS["es"][local.weekday()], _MONTHS["es"][local.month - 1]
        return f"{weekday} {local.day} {month}, {local.hour:02d}:{local.minute:02d}"
    weekday, month = _WEEKDAYS["en"][local.weekday()], _MONTHS["en"][local.month - 1]
    hour12 = local.hour % 12 or 12
    meridiem = "AM" if local.hour < 12 else "PM"
    return f"{weekday}, {month} {local.day} at {hour12}:{local.minute:02d} {meridiem}"


SOON_HOURS = 6  # a reminder sent this close to a same-day appointment says "in N hours"


def _clock_time(local: datetime, locale: str) -> str:
    if locale == "es":
        return f"{local.hour:02d}:{local.minute:02d}"
    return f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"


def reminder_when(start: datetime, send_at: datetime | None, zone: ZoneInfo, locale: str = "en") -> str:
    """When the appointment is, as a reminder planned for `send_at` says it: 'in 2 hours, at 9:30 AM',
    'today at 9:30 AM', 'tomorrow at 9:30 AM', else 'on Thu, Nov 26 at 9:30 AM' (Spanish alike).

    An appointment's reminders read apart (a lost answer's reconciliation compares bodies), and the words
    depend on the planned send time, never on the clock, so the same task renders the same text on every
    attempt."""
    es = locale == "es"
    if send_at is None or send_at >= start:
        return f"el {format_local(start, zone, 'es')}" if es else f"on {format_local(start, zone)}"
    local_start = start.astimezone(zone)
    days = (local_start.date() - send_at.astimezone(zone).date()).days
    hours = max(1, int((start - send_at).total_seconds() + 1800) // 3600)  # to the nearest hour, half up
    at = _clock_time(local_start, locale)
    if days == 0 and hours <= SOON_HOURS:
        if es:
            return f"en {hours} {'hora' if hours == 1 else 'horas'}, a las {at}"
        return f"in {hours} {'hour' if hours == 1 else 'hours'}, at {at}"
    if days == 0:
        return f"hoy a las {at}" if es else f"today at {at}"
    if days == 1:
        return f"mañana a las {at}" if es else f"tomorrow at {at}"
    return f"el {format_local(start, zone, 'es')}" if es else f"on {format_local(start, zone)}"


# GSM 03.38 basic character set (plus the extension table's characters counted as two septets).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€")
SMS_MAX_SEGMENTS = 2
ELLIPSIS = "..."
_LOOKALIKES = {
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "–": "-",
    "—": "-",
    "…": "...",
    "\u00a0": " ",
    "á": "a",
    "í": "i",
    "ó": "o",
    "ú": "u",
    "Á": "A",
    "Í": "I",
    "Ó": "O",
    "Ú": "U",
    "ç": "c",
}


def gsm7_safe(text: str) -> str:
    """Replace characters outside GSM-7 with their closest GSM-7 spelling; drop what has none."""
    out = []
    for char in text:
        char = _LOOKALIKES.get(char, char)
        if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in char):
            out.append(char)
            continue
        plain = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
        out.append("".join(c for c in plain if c in GSM7_BASIC))
    return "".join(out)


def sms_segments(text: str) -> int:
    """How many SMS segments Twilio bills for this text (GSM-7: 160/153 septets; UCS-2: 70/67)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        septets = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        return 1 if septets <= 160 else -(-septets // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def fit_segments(text: str, max_segments: int = SMS_MAX_SEGMENTS) -> str:
    """Shorten text (at a word boundary, marked '...') until it fits in max_segments.

    One pass over the text, whatever its length: each prefix's cost is counted as it grows, in GSM-7
    septets while it stays GSM-7 and in UCS-2 units always, and the last word boundary that fits wins.
    """
    if sms_segments(text) <= max_segments:
        return text
    gsm_budget = (160 if max_segments == 1 else 153 * max_segments) - len(ELLIPSIS)
    ucs_budget = (70 if max_segments == 1 else 67 * max_segments) - len(ELLIPSIS)
    best = septets = units = 0
    gsm_only = True
    for index, char in enumerate(text):
        if char == " " and ((gsm_only and septets <= gsm_budget) or units <= ucs_budget):
            best = index
        in_basic, in_extended = char in GSM7_BASIC, char in GSM7_EXTENDED
        gsm_only = gsm_only and (in_basic or in_extended)
        septets += 2 if in_extended else 1
        units += 2 if ord(char) > 0xFFFF else 1
        if (not gsm_only or septets > gsm_budget) and units > ucs_budget:
            break  # no longer prefix can fit either
    return text[:best] + ELLIPSIS


def fit_with_footer(body: str, footer: str, max_segments: int = SMS_MAX_SEGMENTS) -> str:
    """`body footer` within max_segments, the body cut at a word (marked '...') so the footer stays whole."""
    words = body.split(" ")
    text = f"{body} {footer}"
    while sms_segments(text) > max_segments and len(words) > 1:
        words.pop()
        text = f"{' '.join(words)}{ELLIPSIS} {footer}"
    return text


@dataclass(frozen=True)
class Message:
    """A rendered message: SMS uses `text`; email uses subject, text and html."""

    subject: str
    text: str
    html: str


_COPY: dict[str, dict[str, Any]] = {
    "en": {
        "appointment_reminder": (
            "Appointment reminder",
            "Hi {first}, a reminder of your appointment at {clinic} {reminder_when}.",
        ),
        "booking_confirmation": (
            "Your appointment is booked",
            "Hi {first}, your appointment at {clinic} is booked for {when}.",
        ),
        "prep_instructions": (
            "Preparing for your appointment",
            "Hi {first}, your appointment at {clinic} is on {when}. Before you come: {prep}",
        ),
        "followup": (
            "How was your visit?",
            "Hi {first}, thank you for visiting {clinic}. How was your visit? Reply with a number from 1 to 5 "
            "(5 = excellent).",
        ),
        "followup_email": (
            "How was your visit?",
            "Hi {first}, thank you for visiting {clinic}. How was your visit? One click tells us, from 1 to 5: {link}",
        ),
        "checkin": (
            "Checking in after your visit",
            "Hi {first}, {clinic} checking in after your visit. How are you feeling? If anything worries you, "
            "we're here.",
        ),
        "feedback_review": (
            "Thank you for your feedback",
            "Thank you, {first}! We're so glad you enjoyed your visit to {clinic}. Would you share it in a "
            "review? {link}",
        ),
        # Group bookings (docs/groups.md): each seat's own words, never another member's.
        "group_organizer": (
            "Your group booking",
            "Hi {first}, your group's booking at {clinic} is {reminder_when}. "
            "Please let us know of any changes before then.",
        ),
        "group_member": (
            "Appointment reminder",
            "Hi {first}, a reminder of your group appointment at {clinic} {reminder_when}.",
        ),
        "group_soon": (
            "Starting soon",
            "Hi {first}, your group appointment at {clinic} starts soon: {reminder_when}.",
        ),
        "rebook_nudge": (
            "Time for your next visit",
            "Hi {first}, it's about time for your next visit to {clinic}. We'd love to see you again: call us to book.",
        ),
        "no_show_message": (
            "We missed you",
            "Hi {first}, we missed you at {clinic} on {when}. We'd be glad to find you a new time.",
        ),
        "contact": "Questions or changes: call {phone}.",
        "sms_footer": "Reply HELP for help.",
        "confirm_footer": "Reply C to confirm, HELP for help.",
        "signoff": "See you soon,",
    },
    "es": {
        "appointment_reminder": (
            "Recordatorio de su cita",
            "Hola {first}, le recordamos su cita en {clinic} {reminder_when}.",
        ),
        "booking_confirmation": (
            "Su cita está reservada",
            "Hola {first}, su cita en {clinic} está reservada para el {when}.",
        ),
        "prep_instructions": (
            "Preparación para su cita",
            "Hola {first}, su cita en {clinic} es el {when}. Antes de venir: {prep}",
        ),
        "followup": (
            "¿Qué tal su visita?",
            "Hola {first}, gracias por visitar {clinic}. ¿Qué tal su visita? Responda con un número del 1 al 5 "
            "(5 = excelente).",
        ),
        "followup_email": (
            "¿Qué tal su visita?",
            "Hola {first}, gracias por visitar {clinic}. ¿Qué tal su visita? Díganoslo con un clic, del 1 al 5: {link}",
        ),
        "checkin": (
            "Cómo se encuentra tras su visita",
            "Hola {first}, le escribimos de {clinic} tras su visita. ¿Cómo se encuentra? Si algo le preocupa, "
            "estamos aquí.",
        ),
        "feedback_review": (
            "Gracias por su opinión",
            "¡Gracias, {first}! Nos alegra que disfrutara de su visita a {clinic}. ¿Nos dejaría una reseña? {link}",
        ),
        "group_organizer": (
            "Su reserva de grupo",
            "Hola {first}, la reserva de su grupo en {clinic} es {reminder_when}. "
            "Avísenos de cualquier cambio antes de esa fecha.",
        ),
        "group_member": (
            "Recordatorio de su cita",
            "Hola {first}, le recordamos su cita de grupo en {clinic} {reminder_when}.",
        ),
        "group_soon": (
            "Su cita empieza pronto",
            "Hola {first}, su cita de grupo en {clinic} empieza pronto: {reminder_when}.",
        ),
        "rebook_nudge": (
            "Es momento de su próxima visita",
            "Hola {first}, ya es momento de su próxima visita a {clinic}. Nos encantará verle de nuevo: "
            "llámenos para reservar.",
        ),
        "no_show_message": (
            "Le echamos de menos",
            "Hola {first}, le echamos de menos en {clinic} el {when}. Con gusto le buscamos una nueva cita.",
        ),
        "contact": "Preguntas o cambios: llame al {phone}.",
        "sms_footer": "Responda HELP para ayuda.",
        "confirm_footer": "Responda C para confirmar, HELP para ayuda.",
        "signoff": "Hasta pronto,",
    },
}


def locale_for(patient: Patient, clinic: Clinic) -> str:
    return patient.locale or clinic.locale or "en"


def render(
    kind: str,
    *,
    clinic: Clinic,
    patient: Patient,
    appointment: Appointment,
    send_at: datetime | None = None,
    link: str | None = None,
) -> Message:
    """Render one message of `kind` for a patient, in their locale and the clinic's time zone; a reminder
    says when relative to its planned send time `send_at` (reminder_when). `link`: the survey page of an
    emailed follow-up, the review link of a feedback_review (docs/feedback.md)."""
    locale = locale_for(patient, clinic)
    copy = _COPY.get(locale, _COPY["en"])
    subject, template = copy["followup_email" if kind == "followup" and link else kind]
    values = {
        "first": patient.first_name,
        "clinic": clinic.name,
        "when": format_local(appointment.start, clinic.zone, locale),
        "reminder_when": reminder_when(appointment.start, send_at, clinic.zone, locale),
        "prep": appointment.prep_instructions,
        "phone": clinic.phone,
        "link": link or "",
    }
    body = template.format(**values)
    contact = copy["contact"].format(**values)
    text = f"{body}\n{contact}"
    html = render_html(EMAILS, "message.html", paragraphs=[body, contact], signoff=copy["signoff"], clinic=clinic.name)
    return Message(subject=f"{subject} — {clinic.name}", text=text, html=html)


CONFIRMABLE = ("appointment_reminder", "booking_confirmation")


def render_sms(
    kind: str,
    *,
    clinic: Clinic,
    patient: Patient,
    appointment: Appointment,
    send_at: datetime | None = None,
    footer: str | None = None,
    link: str | None = None,
) -> str:
    """The SMS body: GSM-7 safe, at most 2 segments. A booked appointment's reminder asks for C (the
    inbound-SMS webhook confirms it); once confirmed, its later reminders no longer ask. A `footer` given
    (a marketing message's STOP line) replaces the usual one and is never cut: the body is shortened instead.
    A follow-up asks for a score by reply, never with a link (`link` is the review link of a feedback_review)."""
    locale = locale_for(patient, clinic)
    copy = _COPY.get(locale, _COPY["en"])
    link = None if kind == "followup" else link
    message = render(kind, clinic=clinic, patient=patient, appointment=appointment, send_at=send_at, link=link)
    body = message.text.replace("\n", " ")
    if footer is not None:
        return fit_with_footer(gsm7_safe(body), gsm7_safe(footer))
    footer = copy["confirm_footer"] if kind in CONFIRMABLE and appointment.status == "booked" else copy["sms_footer"]
    return fit_segments(gsm7_safe(f"{body} {footer}"))
