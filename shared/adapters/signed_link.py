"""A signed link a patient's browser follows (a campaign message's tracked link, a booking nudge's restore link):
GET follows it (counts the click, redirects), HEAD (a link preview) redirects without counting, any other method
is a 405; the token's checks answer their own pages (404, 410), and a failure of what is behind them (Firestore)
is a 503 by the error taxonomy, never a stack trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from shared.platform.http import Response, json_response, to_response


class Answer(Protocol):
    def response(self) -> Response: ...


def follow_link(request: Any, follow: Callable[[str, bool], Answer]) -> Response:
    """`follow(token, record)` with the path's token; `record` is False for a HEAD."""
    if request.method not in ("GET", "HEAD"):
        return json_response({"error": "method_not_allowed"}, 405, {"Allow": "GET, HEAD"})
    try:
        answer = follow(request.path.strip("/"), request.method == "GET")
    except Exception as exc:  # noqa: BLE001 - one boundary: a transient failure is a 503, never a stack trace
        return to_response(exc)
    return answer.response()
