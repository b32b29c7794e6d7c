"""patient_links' composition root: the links patients follow from a message (functions/patient_links/main.py
names them); booking-restore, a booking nudge's restore link (docs/booking-recovery.md)."""

from __future__ import annotations

from typing import Any

from shared.adapters.signed_link import follow_link
from shared.platform.http import Response
from shared.wiring.services import services


def booking_restore(request: Any) -> Response:
    """GET counts the click and redirects to the clinic's booking page; HEAD (a link preview) redirects without
    counting."""
    return follow_link(request, lambda token, record: services().restore_links.follow(token, record=record))
