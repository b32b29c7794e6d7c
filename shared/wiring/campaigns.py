"""campaigns' composition root: the campaign-click redirect (functions/campaigns/main.py names it)."""

from __future__ import annotations

from typing import Any

from shared.adapters.signed_link import follow_link
from shared.platform.http import Response
from shared.wiring.services import services


def campaign_click(request: Any) -> Response:
    """GET counts the click and redirects; HEAD (a link preview) redirects without counting."""
    return follow_link(request, lambda token, record: services().campaign_links.follow(token, record=record))
