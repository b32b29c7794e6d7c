"""Pub/Sub CloudEvent envelopes → frozen requests, parsed once and failing loudly (DESIGN §5).

Eventarc (and the local bridge) POSTs a CloudEvent whose data is {"message": {"data": base64, ...},
"subscription": ...}. Everything wrong with what arrives is an `EventRejected` with a code: retrying the
same bytes cannot help, so the entry point logs it and acknowledges instead of looping forever.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.platform.errors import PermanentError

MAX_DATA_BYTES = 16 * 1024
TICK_FIELDS = ("date", "clinic_id")
APPOINTMENT_EVENTS = ("appointment.created", "appointment.rescheduled", "appointment.cancelled")
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class EventRejected(PermanentError):
    """An event that can never be processed as sent: logged with its code and acknowledged."""

    code = "event_rejected"


@dataclass(frozen=True)
class TickRequest:
    """A reminders tick: which local day (None → each clinic's own tomorrow) for which clinic (None → all)."""

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


def message_data(cloud_event: Any) -> bytes:
    """The Pub/Sub message's payload bytes out of an Eventarc messagePublished CloudEvent."""
    envelope = getattr(cloud_event, "data", None)
    message = envelope.get("message") if isinstance(envelope, dict) else None
    if not isinstance(message, dict):
        raise EventRejected("event data has no Pub/Sub 'message' object", code="bad_envelope")
    encoded = message.get("data", "")
    if not isinstance(encoded, str):
        raise EventRejected("Pub/Sub message data is not a base64 string", code="bad_envelope")
    if len(encoded) > MAX_DATA_BYTES * 4 // 3 + 4:
        raise EventRejected("Pub/Sub message data is too large", code="oversized")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EventRejected("Pub/Sub message data is not valid base64", code="bad_envelope") from None


def _json_object(raw: bytes, *, empty_ok: bool) -> dict[str, Any]:
    if empty_ok and not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EventRejected("message data is not JSON", code="malformed_json") from None
    if not isinstance(body, dict):
        raise EventRejected("message data is not a JSON object", code="not_an_object")
    return body


def _id(body: dict[str, Any], name: str, *, code: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not _ID.match(value):
        raise EventRejected(f"'{name}' is missing or not an id", code=code)
    return value


def parse_tick(raw: bytes) -> TickRequest:
    """{"date"?: "YYYY-MM-DD", "clinic_id"?: id}; empty data means every clinic's own tomorrow.

    Unknown keys are rejected: a misspelt "clinicId" must not silently turn into a run for every clinic.
    """
    body = _json_object(raw, empty_ok=True)
    unknown = sorted(set(body) - set(TICK_FIELDS))
    if unknown:
        raise EventRejected(f"unknown tick field(s): {', '.join(k[:40] for k in unknown)}", code="unknown_field")
    day = None
    if body.get("date") is not None:
        text = body["date"]
        try:
            if not isinstance(text, str) or not _DATE.match(text):
                raise ValueError
            day = date.fromisoformat(text)
        except ValueError:
            raise EventRejected("'date' must be a calendar date YYYY-MM-DD", code="bad_date") from None
    clinic_id = _id(body, "clinic_id", code="bad_clinic_id") if body.get("clinic_id") is not None else None
    return TickRequest(date=day, clinic_id=clinic_id)


def parse_appointment_event(raw: bytes) -> AppointmentEvent:
    """{"event": one of APPOINTMENT_EVENTS, "appointment_id": id}; other keys are the booking app's, ignored."""
    body = _json_object(raw, empty_ok=False)
    event = body.get("event")
    if event not in APPOINTMENT_EVENTS:
        raise EventRejected(f"unknown event {str(event)[:40]!r}", code="unknown_event")
    return AppointmentEvent(event=event, appointment_id=_id(body, "appointment_id", code="bad_appointment_id"))


def tick_request(cloud_event: Any) -> TickRequest:
    return parse_tick(message_data(cloud_event))


def appointment_event(cloud_event: Any) -> AppointmentEvent:
    return parse_appointment_event(message_data(cloud_event))
