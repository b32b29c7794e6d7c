"""The waitlist through the real local stack: documents written on the emulator, a cancellation published
to Pub/Sub, offers sent by the task handler through the provider sandbox, patients played by the sandbox
(signed inbound SMS) or by this module (requests signed with Twilio's RequestValidator, claim-link POSTs).

Each test's clinic has its own id and its own sender number, so the functions' per-instance caches of
clinics (a minute) never carry one test's settings into the next, and the sandbox's opt-outs (per sender
and patient) never leak either."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from google.cloud.firestore_v1 import CollectionReference, Query
from google.cloud.firestore_v1.base_query import FieldFilter
from twilio.request_validator import RequestValidator

from local.config import StackConfig
from local.processes import wait_until
from local.sandbox.settings import DEFAULT_AUTH_TOKEN
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.emulator import set_local_clock
from shared.platform.store import FirestoreStore
from shared.waitlist.offers import SlotOffer
from shared.waitlist.tasks import WaveTask
from tests.handler_support import Sandbox, post
from tests.waitlist_support import Scene

WAIT = 90.0
_MESSAGE = re.compile(r"<Message>(.*?)</Message>", re.S)
# Each world's clinic texts from its own number: the inbound webhook finds the clinic by the number a text
# was sent to, so two worlds sharing one (a random pick among 10,000 met about once in 12 runs) would answer
# one world's patient as the other clinic's stranger. Consecutive from a random start: unique in a run.
_SENDERS = itertools.count(uuid.uuid4().int % 10_000)


def twiml_text(body: str) -> str | None:
    """The reply a TwiML answer sends (None: an empty <Response/>)."""
    found = _MESSAGE.search(body)
    return found.group(1) if found else None


class Live:
    def __init__(self, stack: StackConfig, sandbox: Sandbox, store: FirestoreStore, **policy: Any) -> None:
        self.stack, self.sandbox, self.store = stack, sandbox, store
        sender = f"+1646555{next(_SENDERS) % 10_000:04d}"
        self.scene = Scene(store, now=system_clock.now(), sms_from=sender, **policy)
        self.inbound_url = stack.url("waitlist-inbound-sms")
        self.claim_url = stack.url("waitlist-claim")

    # --------------------------------------------------------------------------------- documents

    def phone(self, patient_id: str) -> str:
        return self.scene.doc(f"patients/{patient_id}")["phone"]

    def email(self, patient_id: str) -> str:
        return self.scene.doc(f"patients/{patient_id}")["email"]

    def waiting(self, count: int, **patient_fields: Any) -> list[tuple[str, str]]:
        """`count` patients with one waiting entry each: [(patient id, entry id)]."""
        pairs = []
        for _ in range(count):
            patient = self.scene.patient(**patient_fields)
            pairs.append((patient, self.scene.entry(patient)))
        return pairs

    def cancel(self, **fields: Any) -> str:
        """A cancelled appointment, announced on appointment-events as the booking platform does."""
        appointment = self.scene.cancelled(**fields)
        self.publish("appointment.cancelled", appointment)
        return appointment

    def publish(self, event: str, appointment_id: str) -> None:
        publisher = clients.publisher()
        topic = publisher.topic_path(self.stack.project, "appointment-events")
        data = json.dumps({"event": event, "appointment_id": appointment_id}).encode()
        publisher.publish(topic, data).result(timeout=30)

    def offer(self, appointment_id: str) -> SlotOffer:
        assert wait_until(lambda: self._offer(appointment_id) is not None, WAIT), "no offer was opened"
        offer = self._offer(appointment_id)
        assert offer is not None
        return offer

    def _offer(self, appointment_id: str) -> SlotOffer | None:
        try:
            return self.scene.offer_of(appointment_id)
        except AssertionError:
            return None

    def wait_offer(self, appointment_id: str, condition: Any) -> SlotOffer:
        assert wait_until(lambda: condition(self.offer(appointment_id)), WAIT), self.offer(appointment_id)
        return self.offer(appointment_id)

    def entry_status(self, entry_id: str) -> str:
        return self.scene.doc(f"waitlist/{entry_id}")["status"]

    def ledger(self, **where: str) -> list[dict[str, Any]]:
        query: CollectionReference | Query = self.store.client.collection("notifications")
        for field, value in where.items():
            query = query.where(filter=FieldFilter(field, "==", value))
        return [snapshot.to_dict() or {} for snapshot in query.stream()]

    # ------------------------------------------------------------------------------------ messages

    def sms_to(self, patient_id: str) -> list[dict[str, Any]]:
        return [
            m for m in self.sandbox.messages(to=self.phone(patient_id), channel="sms") if m["direction"] == "outbound"
        ]

    def emails_to(self, patient_id: str) -> list[dict[str, Any]]:
        return self.sandbox.messages(to=self.email(patient_id), channel="email")

    def wait_messages(self, count: int, channel: str = "sms", contains: str = "") -> list[dict[str, Any]]:
        # SMS are this world's only: its clinic's sender is its own, and a wave an earlier test left in flight
        # may still text that test's patients after the sandbox was cleared (it made two tests read the
        # other's offer). Emails share the clinic's address; the tests that count them run alone in theirs.
        def ours(message: dict[str, Any]) -> bool:
            return channel != "sms" or message["from"] == self.scene.sms_from

        def found() -> list[dict[str, Any]]:
            return [
                m
                for m in self.sandbox.messages(channel=channel)
                if m["direction"] == "outbound" and ours(m) and contains in (m["body"] or m["text"] or "")
            ]

        assert wait_until(lambda: len(found()) >= count, WAIT), f"{len(found())} of {count} {channel} messages"
        return found()

    def claim_link(self, patient_id: str) -> str:
        """The claim link of the latest email offer to this patient."""
        assert wait_until(lambda: bool(self.emails_to(patient_id)), WAIT), "no email offer"
        text = self.emails_to(patient_id)[-1]["text"]
        return next(word for word in text.split() if word.startswith(self.claim_url))

    # ----------------------------------------------------------------------------- the patient

    def reply(self, patient_id: str, body: str) -> dict[str, Any]:
        """The patient texts the clinic, as the sandbox plays Twilio (a signed inbound webhook)."""
        spec = {"from": self.phone(patient_id), "to": self.scene.sms_from, "body": body, "url": self.inbound_url}
        response = requests.post(f"{self.stack.sandbox_url}/_sandbox/inbound", json=spec, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    def form(self, patient_id: str, body: str, sid: str | None = None) -> dict[str, str]:
        return {
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "AccountSid": "AC" + "0" * 32,
            "From": self.phone(patient_id),
            "To": self.scene.sms_from,
            "Body": body,
            "NumMedia": "0",
        }

    def signed(self, form: dict[str, str], *, signature: str | None = None) -> requests.Response:
        """POST an inbound webhook signed with Twilio's RequestValidator (or with `signature` as given)."""
        if signature is None:
            signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(self.inbound_url, form)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        return requests.post(self.inbound_url, data=form, headers=headers, timeout=60)

    def click(self, link: str) -> requests.Response:
        """The patient presses the claim page's button: a POST of the link's token."""
        token = parse_qs(urlsplit(link).query)["t"][0]
        return requests.post(self.claim_url, data={"t": token}, headers={"Accept": "application/json"}, timeout=60)

    def end_window(self, offer: SlotOffer) -> requests.Response:
        """Stand just past the offer's window and deliver its wave task, as Cloud Tasks would then."""
        assert offer.expires_at is not None
        self.move_clock(offer.expires_at + timedelta(seconds=5))
        task = WaveTask(offer.id, offer.clinic_id, offer.wave)
        return post(self.stack, task.to_json())

    def move_clock(self, instant: datetime | None) -> None:
        set_local_clock(self.stack.clock_file, instant)


def at_once(calls: list[Any]) -> list[Any]:
    """Run the callables concurrently (one thread each) and return their results in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))
