"""patient_links' composition root: the links patients follow from a message (functions/patient_links/main.py
names them): booking-restore, a booking nudge's restore link (docs/booking-recovery.md); feedback-page, the survey
page of an emailed follow-up (docs/feedback.md)."""

from __future__ import annotations

from typing import Any

from shared.adapters.signed_link import follow_link
from shared.platform.http import Response, json_response, to_response
from shared.wiring.services import services

MAX_FORM_BYTES = 4096  # a token and a score


def booking_restore(request: Any) -> Response:
    """GET counts the click and redirects to the clinic's booking page; HEAD (a link preview) redirects without
    counting."""
    return follow_link(request, lambda token, record: services().restore_links.follow(token, record=record))


def feedback_page(request: Any) -> Response:
    """GET shows the question (writes nothing: a link scanner answers nothing); POST records the score."""
    if request.method not in ("GET", "HEAD", "POST"):
        return json_response({"error": "method_not_allowed"}, 405, {"Allow": "GET, HEAD, POST"})
    try:
        links = services().feedback_links
        if request.method == "POST":
            if (request.content_length or 0) > MAX_FORM_BYTES:
                return json_response({"error": "too_large"}, 413)
            page = links.submit(request.form.get("t"), request.form.get("score"))
        else:
            page = links.show(request.args.get("t"))
    except Exception as exc:  # noqa: BLE001 - one boundary: a transient failure is a 503, never a stack trace
        return to_response(exc)
    return page.response()
