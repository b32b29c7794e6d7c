"""The simulated carrier: moves accepted SMS through their statuses and posts signed Twilio webhooks."""

from __future__ import annotations

import html
import json
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from twilio.request_validator import RequestValidator

from local.sandbox.log import log
from local.sandbox.opt_outs import OptOuts
from local.sandbox.outbox import Message, Outbox
from local.sandbox.settings import SandboxSettings
from shared.platform.masking import mask_address

API_VERSION = "2010-04-01"
_TWIML_MESSAGE = re.compile(r"<Message[^>]*>(.*?)</Message>", re.S)
MAX_REPLY_CHARS = 1600


def twiml_reply(content_type: str | None, body: str) -> str | None:
    """The text a TwiML answer makes Twilio send back to the patient (None: no <Message>)."""
    if "xml" not in (content_type or "").lower():
        return None
    found = _TWIML_MESSAGE.search(body[: 64 * 1024])
    if not found:
        return None
    inner = found.group(1)
    nested = re.search(r"<Body[^>]*>(.*?)</Body>", inner, re.S)  # <Message><Body>…</Body></Message>
    return html.unescape(nested.group(1) if nested else inner).strip()[:MAX_REPLY_CHARS] or None


def new_message_sid() -> str:
    return "SM" + uuid.uuid4().hex


@dataclass(frozen=True)
class Delivery:
    """What the carrier will do with one accepted SMS."""

    sid: str
    to: str
    from_: str | None
    account_sid: str
    messaging_service_sid: str | None
    status_callback: str | None
    final_status: str = "delivered"  # or "undelivered" / "failed" when a fault says so
    error_code: int | None = None


class Courier:
    """Plays delivery on a small thread pool and posts webhooks signed like Twilio's."""

    def __init__(self, outbox: Outbox, opt_outs: OptOuts, settings: SandboxSettings, stopping: threading.Event) -> None:
        self._outbox = outbox
        self._opt_outs = opt_outs
        self._settings = settings
        self._stopping = stopping
        # Deliveries wait between their steps: enough workers that callbacks and events are not held up.
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="sandbox-courier")
        self._session = requests.Session()
        self._session.trust_env = False  # webhooks go to loopback; never through an environment proxy

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def signed_post(self, url: str, params: dict[str, str], timeout: float) -> requests.Response:
        """POST form params to url with the X-Twilio-Signature the receiver's RequestValidator expects."""
        signature = RequestValidator(self._settings.auth_token).compute_signature(url, params)
        return self._session.post(
            url, data=params, headers={"X-Twilio-Signature": signature}, timeout=timeout, allow_redirects=False
        )

    def dispatch_email(self, message_id: str, recipients: list[tuple[str, dict[str, Any]]], final: str) -> None:
        """Play SendGrid's Event Webhook for an accepted mail: processed, then delivered (or the fault's
        bounce / dropped), one signed batch each, like SendGrid's."""
        if self._settings.sendgrid_events_url and self._settings.sendgrid_signing_key_file:
            self._pool.submit(self._play_email, message_id, recipients, final)

    def _play_email(self, message_id: str, recipients: list[tuple[str, dict[str, Any]]], final: str) -> None:
        from local.webhook_keys import sign

        assert self._settings.sendgrid_events_url and self._settings.sendgrid_signing_key_file
        key = Path(self._settings.sendgrid_signing_key_file).read_bytes()
        for index, event in enumerate(("processed", final)):
            if self._stopping.wait(self._settings.callback_delay_seconds):
                return
            if index:
                self._outbox.set_status(message_id, final)
            batch = [
                {
                    "email": address,
                    "timestamp": int(time.time()),
                    "event": event,
                    "sg_event_id": uuid.uuid4().hex,
                    "sg_message_id": f"{message_id}.filterdrecv-sandbox-{n}",
                    **{k: str(v) for k, v in custom_args.items()},
                }
                for n, (address, custom_args) in enumerate(recipients)
            ]
            payload = json.dumps(batch).encode()
            timestamp = str(int(time.time()))
            attempt: dict[str, Any] = {"status": event}
            try:
                response = self._session.post(
                    self._settings.sendgrid_events_url,
                    data=payload,
                    timeout=self._settings.callback_timeout_seconds,
                    headers={
                        "Content-Type": "application/json",
                        "X-Twilio-Email-Event-Webhook-Signature": sign(key, timestamp, payload),
                        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
                    },
                )
                attempt["http_status"] = response.status_code
            except requests.RequestException as error:
                attempt["error"] = type(error).__name__
            self._outbox.note_callback(message_id, attempt)

    def dispatch(self, delivery: Delivery) -> None:
        """Start delivering in the background; the API call that accepted the message returns at once."""
        self._pool.submit(self._play, delivery)

    def _play(self, delivery: Delivery) -> None:
        # Twilio never "sends" a message that failed outright; undelivered ones were sent first.
        steps = [delivery.final_status] if delivery.final_status == "failed" else ["sent", delivery.final_status]
        # Pause before every step, "queued" included, so the API answer usually reaches the sender
        # before its first callback (as with Twilio, it is not guaranteed: receivers must cope).
        if self._stopping.wait(self._settings.callback_delay_seconds):
            return
        self._post_status(delivery, "queued")
        for status in steps:
            if self._stopping.wait(self._settings.callback_delay_seconds):
                return
            final = status == steps[-1]
            error_code = delivery.error_code if final and status != "delivered" else None
            self._outbox.set_status(delivery.sid, status, error_code)
            self._post_status(delivery, status, error_code)

    def _post_status(self, delivery: Delivery, status: str, error_code: int | None = None) -> None:
        if not delivery.status_callback:
            return
        params = {
            "MessageSid": delivery.sid,
            "SmsSid": delivery.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": delivery.to,
            "AccountSid": delivery.account_sid,
            "ApiVersion": API_VERSION,
        }
        if delivery.from_:
            params["From"] = delivery.from_
        if delivery.messaging_service_sid:
            params["MessagingServiceSid"] = delivery.messaging_service_sid
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        attempt: dict[str, Any] = {"status": status}
        try:
            response = self.signed_post(delivery.status_callback, params, self._settings.callback_timeout_seconds)
            attempt["http_status"] = response.status_code
        except requests.RequestException as error:
            attempt["error"] = type(error).__name__
        self._outbox.note_callback(delivery.sid, attempt)
        log(
            "INFO" if attempt.get("http_status", 500) < 400 else "WARNING",
            "status callback posted",
            message_sid=delivery.sid,
            status=status,
            **{k: v for k, v in attempt.items() if k != "status"},
        )

    def _record(
        self, direction: str, sid: str, to: str, from_: str, body: str, segments: int, in_reply_to: str | None = None
    ) -> None:
        """An SMS the carrier itself moved (a patient's, or an automatic reply) into the outbox."""
        status = "received" if direction == "inbound" else "queued"
        self._outbox.add(
            Message(
                id=sid,
                channel="sms",
                direction=direction,
                to=to,
                from_=from_,
                status=status,
                body=body,
                account_sid=self._settings.account_sid,
                num_segments=segments,
                in_reply_to=in_reply_to,
            )
        )

    def _send_reply(self, inbound_sid: str, *, patient: str, clinic: str, body: str) -> None:
        """Twilio sends a TwiML <Message> back to the patient as a message of its own (direction
        outbound-reply): recorded in the outbox and delivered like any SMS (no StatusCallback is named)."""
        from local.sandbox.twilio_api import num_segments  # twilio_api imports this module

        reply_sid = new_message_sid()
        self._record("reply", reply_sid, patient, clinic, body, num_segments(body), in_reply_to=inbound_sid)
        self.dispatch(
            Delivery(
                sid=reply_sid,
                to=patient,
                from_=clinic,
                account_sid=self._settings.account_sid,
                messaging_service_sid=None,
                status_callback=None,
            )
        )

    def inbound(self, *, from_: str, to: str, body: str, url: str) -> dict[str, Any]:
        """Play the patient: post an inbound-SMS webhook to url and report the webhook's answer."""
        sid = new_message_sid()
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "AccountSid": self._settings.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        self._record("inbound", sid, to, from_, body, 1)
        # Twilio applies STOP/START itself, then still forwards the message to the webhook.
        keyword_action = self._opt_outs.hear(sender=to, patient=from_, body=body)
        try:
            response = self.signed_post(url, params, self._settings.callback_timeout_seconds)
        except requests.RequestException as error:
            self._outbox.note_callback(sid, {"status": "received", "error": type(error).__name__})
            log(
                "WARNING",
                "inbound webhook unreachable",
                message_sid=sid,
                sender=mask_address(from_),
                error=type(error).__name__,
            )
            return {
                "message_sid": sid,
                "keyword_action": keyword_action,
                "error": f"webhook unreachable: {type(error).__name__}",
            }
        self._outbox.note_callback(sid, {"status": "received", "http_status": response.status_code})
        reply = twiml_reply(response.headers.get("Content-Type"), response.text)
        self._outbox.set_reply(sid, reply)
        if reply:
            self._send_reply(sid, patient=from_, clinic=to, body=reply)
        log(
            "INFO",
            "inbound webhook posted",
            message_sid=sid,
            sender=mask_address(from_),
            http_status=response.status_code,
        )
        return {
            "message_sid": sid,
            "keyword_action": keyword_action,
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type"),
            "body": response.text,
        }
