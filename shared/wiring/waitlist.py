"""waitlist's composition root: a cancelled slot's offer, patients' texts and the claim link
(functions/waitlist/main.py names them)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from shared.adapters.pubsub_job import PubSubJob, RunResult
from shared.adapters.signed_webhook import SignedWebhook
from shared.contract import events
from shared.platform.errors import PermanentError
from shared.platform.http import Response
from shared.wiring.services import services

MAX_FORM_BYTES = 64 * 1024  # Twilio's inbound form is a few kilobytes


def _cancelled(event: events.PlatformEvent, now: datetime) -> RunResult:
    from shared.waitlist.cancellations import open_offer

    return open_offer(event, services().waves, now=now)


APPOINTMENT_CANCELLED = PubSubJob("appointment event", events.parse_platform_event, _cancelled)


def _twiml(text: str | None) -> Response:
    from shared.waitlist.inbound import twiml

    return twiml(text), 200, {"Content-Type": "text/xml; charset=utf-8"}


@functools.cache
def inbound_sms() -> SignedWebhook:
    """Twilio's inbound webhook: verified, then the conversation answers in TwiML (empty when the text can
    never be handled: Twilio must not retry it)."""
    from shared.messaging.status_callbacks import verify_twilio_request

    def verify(request: Any) -> None:
        verify_twilio_request(request, services().config.needed("inbound_sms_url"))

    def run(request: Any) -> Response:
        return _twiml(services().conversations.handle(request.form.to_dict()).text)

    def answer_empty(exc: PermanentError) -> Response:
        return _twiml(None)

    return SignedWebhook("inbound SMS", verify, run, max_bytes=MAX_FORM_BYTES, on_permanent=answer_empty)
