"""waitlist: a cancelled appointment's slot offered to the waitlist (on_appointment_cancelled, Pub/Sub
appointment-events); patients' texts (inbound_sms, Twilio's inbound webhook: YES claims, C confirms,
STOP/START/HELP, requests for the front desk); the claim link of an email offer (claim_offer).

Each is its own Cloud Function: what only one of them uses (the cancellation's offer, the inbound
conversation, the claim page) is imported on its first call, so no function starts with another's code.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import functions_framework

from shared.contract import events
from shared.platform import clients, log
from shared.platform.clock import system_clock
from shared.platform.errors import MedspaError, PermanentError
from shared.platform.http import json_response, to_response
from shared.platform.settings import settings
from shared.waitlist import config

if TYPE_CHECKING:
    from shared.waitlist.claim_link import ClaimLinks
    from shared.waitlist.claims import Claims
    from shared.waitlist.inbound import Conversations
    from shared.waitlist.waves import Waves

MAX_FORM_BYTES = 64 * 1024  # Twilio's inbound form is a few kilobytes


@functools.cache
def waves() -> Waves:
    """Real adapters, wired once per instance."""
    from shared.tasks.queue import CloudTasksQueue
    from shared.waitlist.events import PubSubAppointmentEvents
    from shared.waitlist.waves import Waves

    queue = CloudTasksQueue(clients.tasks(), settings())
    appointment_events = PubSubAppointmentEvents(clients.publisher, settings().project)
    return Waves(
        store=clients.store(),
        clock=system_clock,
        tasks=queue,
        queue=settings().queue_waitlist,
        events=appointment_events,
    )


@functools.cache
def claims() -> Claims:
    from shared.waitlist.claims import Claims

    wired = waves()
    return Claims(store=wired.store, clock=system_clock, tasks=wired.tasks, queue=wired.queue, events=wired.events)


@functools.cache
def conversations() -> Conversations:
    from shared.waitlist.inbound import Conversations

    return Conversations(store=clients.store(), clock=system_clock, claims=claims())


@functools.cache
def links() -> ClaimLinks:
    from shared.waitlist.claim_link import ClaimLinks

    return ClaimLinks(store=clients.store(), clock=system_clock, claims=claims(), token_key=config.token_key())


@functions_framework.cloud_event
def on_appointment_cancelled(cloud_event: Any) -> None:
    from shared.waitlist.cancellations import open_offer

    with log.bound(event_id=cloud_event["id"]):
        try:
            event = events.parse_appointment_event(events.envelope(cloud_event).data)
            opened = open_offer(event, waves(), now=system_clock.now())
        except PermanentError as exc:
            log.warning("appointment event rejected; acknowledged", error_code=exc.code, error=str(exc))
            return  # don't retry: an unknown event or a missing document will not fix itself
        log.info("appointment event done", outcome=opened.outcome, offer_id=opened.offer_id, reason=opened.reason)


@functions_framework.http
def inbound_sms(request: Any) -> Any:
    from shared.messaging.status_callbacks import callback_url, verify_twilio_signature
    from shared.waitlist.inbound import twiml

    if (request.content_length or 0) > MAX_FORM_BYTES:
        return json_response({"error": "oversized_body"}, 413)
    params = request.form.to_dict()
    try:
        signed_url = callback_url(config.inbound_sms_url(), request.query_string)
        verify_twilio_signature(
            clients.secret("TWILIO_AUTH_TOKEN"), signed_url, params, request.headers.get("X-Twilio-Signature")
        )
    except MedspaError as exc:
        log.warning("inbound SMS refused", error_code=exc.code)
        return to_response(exc)  # 403 before anything is read or written
    try:
        text = conversations().handle(params).text
    except PermanentError as exc:
        log.warning("inbound SMS rejected; answered empty", error_code=exc.code, error=str(exc))
        text = None  # don't retry: the same message would fail the same way
    except Exception as exc:  # noqa: BLE001 - one boundary: transient → 503 (Twilio's fallback URL, if any)
        return to_response(exc)
    return twiml(text), 200, {"Content-Type": "text/xml; charset=utf-8"}


@functions_framework.http
def claim_offer(request: Any) -> Any:
    if request.method not in ("GET", "POST"):
        return json_response({"error": "method_not_allowed"}, 405, {"Allow": "GET, POST"})
    try:
        token = request.values.get("t")
        page, title = links().claim(token) if request.method == "POST" else links().show(token)
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
