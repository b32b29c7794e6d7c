"""campaigns' composition root: the campaign-click redirect (functions/campaigns/main.py names it)."""

from __future__ import annotations

from typing import Any

from shared.platform.http import Response, json_response, to_response
from shared.wiring.services import services


def campaign_click(request: Any) -> Response:
    """GET counts the click and redirects; HEAD (a link preview) redirects without counting."""
    if request.method not in ("GET", "HEAD"):
        return json_response({"error": "method_not_allowed"}, 405, {"Allow": "GET, HEAD"})
    try:
        answer = services().campaign_links.follow(request.path.strip("/"), record=request.method == "GET")
    except Exception as exc:  # noqa: BLE001 - one boundary: a transient failure is a 503, never a stack trace
        return to_response(exc)
    return answer.response()
