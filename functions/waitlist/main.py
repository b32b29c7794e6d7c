"""waitlist: a cancelled appointment's slot offered to the waitlist (on_appointment_cancelled, Pub/Sub
appointment-events); patients' texts (inbound_sms, Twilio's inbound webhook: YES claims, C confirms,
STOP/START/HELP, requests for the front desk); the claim link of an email offer (claim_offer).

Each is its own Cloud Function, wired by shared/wiring/waitlist.py: what only one of them uses (the
cancellation's offer, the inbound conversation, the claim page) is imported on its first call.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from shared.platform.http import json_response, to_response
from shared.wiring import waitlist as wiring
from shared.wiring.services import services


@functions_framework.cloud_event
def on_appointment_cancelled(cloud_event: Any) -> None:
    wiring.APPOINTMENT_CANCELLED(cloud_event)


@functions_framework.http
def inbound_sms(request: Any) -> Any:
    return wiring.inbound_sms()(request)


@functions_framework.http
def claim_offer(request: Any) -> Any:
    if request.method not in ("GET", "POST"):
        return json_response({"error": "method_not_allowed"}, 405, {"Allow": "GET, POST"})
    try:
        token = request.values.get("t")
        links = services().claim_links
        page, title = links.claim(token) if request.method == "POST" else links.show(token)
    except Exception as exc:  # noqa: BLE001 - one boundary: a transient failure is a 503, never a stack trace
        return to_response(exc)
    if "application/json" in (request.headers.get("Accept") or ""):
        return json_response({"outcome": page.outcome, "message": page.message}, page.status)
    headers = {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }
    return page.html(title), page.status, headers
