"""Twilio's REST error codes as the real API answers them: HTTP status, message, and the JSON body shape."""

from __future__ import annotations

from typing import Any

# code → (HTTP status, message). Messages follow Twilio's wording (https://www.twilio.com/docs/errors/N).
TWILIO_ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20007: (400, "Page size too large"),
    20008: (403, "Cannot access this resource with Test Credentials"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21212: (400, "The 'From' number is not a valid phone number, shortcode, or alphanumeric sender ID."),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' or 'MessagingServiceSid' parameter is required to send a message."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' phone number provided is not a valid message-capable Twilio phone number."),
    21608: (400, "The number is unverified. Trial accounts may only send messages to verified numbers."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "This 'From' number has exceeded the maximum number of queued messages"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS."),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}

# A plain HTTP fault on the SMS channel still answers with the code Twilio pairs with that status.
HTTP_STATUS_CODES = {401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


def twilio_status(code: int) -> int | None:
    """The HTTP status Twilio uses for an API error code, or None when the sandbox does not know it."""
    known = TWILIO_ERRORS.get(code)
    return known[0] if known else None


def twilio_error_body(code: int, status: int | None = None, message: str | None = None) -> dict[str, Any]:
    """`{"code", "message", "more_info", "status"}`: the legacy shape twilio-python turns into TwilioRestException."""
    known_status, known_message = TWILIO_ERRORS.get(code, (status or 400, f"Error {code}"))
    return {
        "code": code,
        "message": message or known_message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status or known_status,
    }
