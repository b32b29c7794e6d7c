"""Pub/Sub CloudEvent envelopes → frozen requests, parsed once and failing loudly (docs/architecture.md).

Eventarc (and the local bridge) POSTs a CloudEvent whose data is {"message": {"data": base64, ...},
"subscription": ...}. Everything wrong with what arrives is an `EventRejected` with a code: retrying the
same bytes cannot help, so the entry point logs it and acknowledges instead of looping until the
dead-letter topic takes it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from shared.contract.bodies import decode_object, is_clean_text
from shared.contract.ids import is_doc_id
from shared.contract.models import EARLIEST, LATEST
from shared.platform.errors import PermanentError

MAX_DATA_BYTES = 16 * 1024
TICK_FIELDS = ("date", "clinic_id")
REPORT_PERIODS = ("daily", "weekly")
REPORT_TICK_FIELDS = ("period", "date", "clinic_id", "partial")
APPOINTMENT_EVENTS = ("appointment.created", "appointment.rescheduled", "appointment.cancelled")
# A consent the booking platform took (docs/consent.md, "How the booking platform records a consent").
CONSENT_RECORDED = "consent.recorded"
CONSENT_FIELDS = (
    "event",
    "event_id",
    "patient_id",
    "clinic_id",
    "purpose",
    "channel",
    "status",
    "at",
    "source",
    "wording_version",
)
CONSENT_PURPOSES, CONSENT_CHANNELS, CONSENT_STATUSES = (
    ("transactional", "marketing"),
    ("sms", "email"),
    ("granted", "revoked"),
)
PLATFORM_CONSENT_SOURCES = ("booking_form", "front_desk", "import")  # the others are this product's own
MAX_WORDING_CHARS = 100
# A patient's booking on the platform's booking page (docs/booking-recovery.md): the session's document holds the
# rest; the event names it only.
BOOKING_STARTED, BOOKING_COMPLETED, BOOKING_ABANDONED = "booking.started", "booking.completed", "booking.abandoned"
BOOKING_EVENTS = (BOOKING_STARTED, BOOKING_COMPLETED, BOOKING_ABANDONED)
BOOKING_FIELDS = ("event", "session_id")
MAX_SESSION_ID_CHARS = 64
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
EARLIEST_DATE, LATEST_DATE = date(2000, 1, 1), date(2199, 12, 31)  # anything else is a typo, not a plan


class EventRejected(PermanentError):
    """An event that can never be processed as sent: logged with its code and acknowledged."""

    code = "event_rejected"


@dataclass(frozen=True)
class Envelope:
    """What every Pub/Sub-triggered function reads first: the event's id and time, and the message bytes."""

    event_id: str
    time: datetime | None  # when Pub/Sub accepted the message (CloudEvent `time`); None if absent
    data: bytes


@dataclass(frozen=True)
class TickRequest:
    """A reminders tick: which local day (None → each clinic's own tomorrow) for which clinic (None → all)."""

    date: date | None = None
    clinic_id: str | None = None


@dataclass(frozen=True)
class ReportTick:
    """A reports tick: which period; which local date in it (None → each clinic's last full one); which clinic."""

    period: str
    date: date | None = None
    clinic_id: str | None = None
    partial: bool = False  # build (and email) a period that has not ended yet, saying so; refused otherwise


@dataclass(frozen=True)
class InventoryTick:
    """An inventory tick: which local day (None → each clinic's own today) for which clinic (None → all)."""

    date: date | None = None
    clinic_id: str | None = None


@dataclass(frozen=True)
class AppointmentEvent:
    """What the booking app published about one appointment."""

    event: str
    appointment_id: str

    @property
    def is_cancellation(self) -> bool:
        return self.event == "appointment.cancelled"


@dataclass(frozen=True)
class ConsentRecorded:
    """A consent (or its revocation) the booking platform, the front desk or an import recorded."""

    event_id: str
    patient_id: str
    clinic_id: str
    purpose: str
    channel: str
    status: str
    at: datetime
    source: str
    wording_version: str
    event: str = CONSENT_RECORDED
    is_cancellation = False


@dataclass(frozen=True)
class BookingEvent:
    """The booking platform's word on one booking session: started, completed or abandoned."""

    event: str
    session_id: str
    is_cancellation = False

    @property
    def is_completion(self) -> bool:
        return self.event == BOOKING_COMPLETED


def envelope(cloud_event: Any) -> Envelope:
    """The event id, time and Pub/Sub payload bytes out of an Eventarc messagePublished CloudEvent."""
    data = getattr(cloud_event, "data", None)
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        raise EventRejected("event data has no Pub/Sub 'message' object", code="bad_envelope")
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise EventRejected("Pub/Sub message data is not a base64 string", code="bad_envelope")
    if len(encoded) > MAX_DATA_BYTES * 4 // 3 + 4:
        raise EventRejected("Pub/Sub message data is too large", code="oversized")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EventRejected("Pub/Sub message data is not valid base64", code="bad_envelope") from None
    return Envelope(event_id=_attribute(cloud_event, "id") or "", time=_event_time(cloud_event), data=raw)


def _attribute(cloud_event: Any, name: str) -> str | None:
    try:
        value = cloud_event[name]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _event_time(cloud_event: Any) -> datetime | None:
    text = _attribute(cloud_event, "time")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment.astimezone(timezone.utc) if moment.tzinfo else None
    except (ValueError, OverflowError):
        return None


def _object(raw: bytes, *, empty_ok: bool) -> dict[str, Any]:
    try:
        return decode_object(raw, max_bytes=MAX_DATA_BYTES, empty_ok=empty_ok, what="message data")
    except PermanentError as exc:
        raise EventRejected(str(exc), code=exc.code) from None


def _id(body: dict[str, Any], name: str, *, code: str) -> str:
    value = body.get(name)
    if not is_doc_id(value):
        raise EventRejected(f"'{name}' is missing or not a document id", code=code)
    return value


def parse_date(value: Any) -> date:
    """A calendar date YYYY-MM-DD between 2000 and 2199, or EventRejected(bad_date)."""
    try:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise EventRejected("'date' must be a calendar date YYYY-MM-DD", code="bad_date") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise EventRejected(f"'date' {value} is outside {EARLIEST_DATE.year}–{LATEST_DATE.year}", code="bad_date")
    return day


def parse_tick(raw: bytes) -> TickRequest:
    """{"date"?: "YYYY-MM-DD", "clinic_id"?: id}; empty data means every clinic's own tomorrow.

    Unknown keys are rejected: a misspelt "clinicId" must not silently turn into a run for every clinic.
    """
    body = _object(raw, empty_ok=True)
    unknown = sorted(set(body) - set(TICK_FIELDS))
    if unknown:
        raise EventRejected(f"{len(unknown)} unknown tick field(s)", code="unknown_field")
    day = parse_date(body["date"]) if body.get("date") is not None else None
    clinic_id = _id(body, "clinic_id", code="bad_clinic_id") if body.get("clinic_id") is not None else None
    return TickRequest(date=day, clinic_id=clinic_id)


def parse_report_tick(raw: bytes) -> ReportTick:
    """{"period": "daily"|"weekly", "date"?: "YYYY-MM-DD", "clinic_id"?: id, "partial"?: bool}; the period
    is required."""
    body = _object(raw, empty_ok=True)
    unknown = sorted(set(body) - set(REPORT_TICK_FIELDS))
    if unknown:
        raise EventRejected(f"{len(unknown)} unknown tick field(s)", code="unknown_field")
    period = body.get("period")
    if period not in REPORT_PERIODS:
        raise EventRejected("'period' must be daily or weekly", code="bad_period")
    day = parse_date(body["date"]) if body.get("date") is not None else None
    clinic_id = _id(body, "clinic_id", code="bad_clinic_id") if body.get("clinic_id") is not None else None
    partial = body.get("partial", False)
    if not isinstance(partial, bool):
        raise EventRejected("'partial' must be true or false", code="bad_partial")
    return ReportTick(period=str(period), date=day, clinic_id=clinic_id, partial=partial)


def parse_inventory_tick(raw: bytes) -> InventoryTick:
    """{"date"?: "YYYY-MM-DD", "clinic_id"?: id}; empty data means every clinic's own today."""
    tick = parse_tick(raw)
    return InventoryTick(date=tick.date, clinic_id=tick.clinic_id)


PlatformEvent = AppointmentEvent | ConsentRecorded | BookingEvent  # what appointment-events carries


def parse_platform_event(raw: bytes) -> PlatformEvent:
    """What the booking platform publishes to appointment-events: an appointment's event, a consent, or a
    booking session's."""
    body = _object(raw, empty_ok=False)
    if body.get("event") == CONSENT_RECORDED:
        return consent_recorded(body)
    if body.get("event") in BOOKING_EVENTS:
        return booking_event(body)
    return _appointment_event(body)


def booking_event(body: dict[str, Any]) -> BookingEvent:
    """{"event": "booking.started" | "booking.completed" | "booking.abandoned", "session_id": id}: the session's
    document (booking_sessions/{session_id}) says the rest; no other key taken."""
    unknown = sorted(set(body) - set(BOOKING_FIELDS))
    if unknown:
        raise EventRejected(f"{len(unknown)} unknown booking event field(s)", code="unknown_field")
    event = body.get("event")
    if event not in BOOKING_EVENTS:
        raise EventRejected(f"'event' must be one of {', '.join(BOOKING_EVENTS)}", code="unknown_event")
    session_id = _id(body, "session_id", code="bad_session_id")
    if len(session_id) > MAX_SESSION_ID_CHARS:  # it rides in the nudge's link: a 2-segment SMS has no room for more
        raise EventRejected(f"'session_id' is longer than {MAX_SESSION_ID_CHARS}", code="bad_session_id")
    return BookingEvent(event=str(event), session_id=session_id)


def consent_recorded(body: dict[str, Any]) -> ConsentRecorded:
    """{"event": "consent.recorded", "event_id", "patient_id", "clinic_id": ids, "purpose", "channel",
    "status", "at": ISO 8601 with its offset, "source": booking_form|front_desk|import, "wording_version"
    (required for a grant)}; every field checked, no other key taken."""
    unknown = sorted(set(body) - set(CONSENT_FIELDS))
    if unknown:
        raise EventRejected(f"{len(unknown)} unknown consent field(s)", code="unknown_field")
    choices = {
        "purpose": CONSENT_PURPOSES,
        "channel": CONSENT_CHANNELS,
        "status": CONSENT_STATUSES,
        "source": PLATFORM_CONSENT_SOURCES,
    }
    for name, options in choices.items():
        if body.get(name) not in options:
            raise EventRejected(f"'{name}' must be one of {', '.join(options)}", code=f"bad_{name}")
    wording = body.get("wording_version", "")
    if not isinstance(wording, str) or len(wording) > MAX_WORDING_CHARS or not is_clean_text(wording):
        raise EventRejected(f"'wording_version' must be text of at most {MAX_WORDING_CHARS}", code="bad_wording")
    if body["status"] == "granted" and not wording.strip():
        raise EventRejected("a grant names the wording the patient agreed to", code="bad_wording")
    return ConsentRecorded(
        event_id=_id(body, "event_id", code="bad_event_id"),
        patient_id=_id(body, "patient_id", code="bad_patient_id"),
        clinic_id=_id(body, "clinic_id", code="bad_clinic_id"),
        purpose=body["purpose"],
        channel=body["channel"],
        status=body["status"],
        at=_instant(body.get("at")),
        source=body["source"],
        wording_version=wording.strip(),
    )


def _instant(value: Any) -> datetime:
    try:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventRejected("'at' must be an ISO 8601 time with its offset", code="bad_at") from None
    if moment.tzinfo is None or not EARLIEST <= moment < LATEST:
        raise EventRejected("'at' must be an ISO 8601 time with its offset, 2000-2199", code="bad_at")
    return moment.astimezone(timezone.utc)


def parse_appointment_event(raw: bytes) -> AppointmentEvent:
    """{"event": one of APPOINTMENT_EVENTS, "appointment_id": id}; other keys are the booking app's, ignored."""
    return _appointment_event(_object(raw, empty_ok=False))


def _appointment_event(body: dict[str, Any]) -> AppointmentEvent:
    event = body.get("event")
    if event not in APPOINTMENT_EVENTS:
        raise EventRejected("unknown or missing 'event'", code="unknown_event")
    return AppointmentEvent(event=str(event), appointment_id=_id(body, "appointment_id", code="bad_appointment_id"))
