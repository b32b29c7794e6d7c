"""patient_links' composition root: the links patients follow from a message (functions/patient_links/main.py
names them); booking-restore, a booking nudge's restore link (docs/booking-recovery.md)."""

from __future__ import annotations

from typing import Any

from shared.platform.http import Response, json_response, to_response
from shared.wiring.services import services


def booking_restore(request: Any) -> Response:
    """GET counts the click and redirects to the clinic's booking page; HEAD (a link preview) redirects without
    counting."""
    if request.method not in ("GET", "HEAD"):
        return json_response({"error": "method_not_allowed"}, 405, {"Allow": "GET, HEAD"})
    try:
        answer = services().restore_links.follow(request.path.strip("/"), record=request.method == "GET")
    except Exception as exc:  # noqa: BLE001 - one boundary: a transient failure is a 503, never a stack trace
        return to_response(exc)
    return answer.response()
