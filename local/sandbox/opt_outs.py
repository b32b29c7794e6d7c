"""Twilio's default opt-out handling: a patient who texts STOP (or CANCEL, …) to a sender stops getting its SMS.

That is why no message uses CANCEL or STOP as a command: Twilio acts on them before our webhook does
(docs/architecture.md, "STOP and CANCEL are Twilio's").
Scope here is one (sender, patient) pair, the sender being the number the patient texted; a Messaging
Service's pool is not modelled, so a send through MessagingServiceSid matches only if the patient's
reply was addressed to that SID.
"""

from __future__ import annotations

import threading

from local.sandbox.outbox import address_key

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})


def _sender_key(sender: str) -> str:
    value = sender.strip()
    return value if value.startswith("MG") else address_key(value)


class OptOuts:
    """Who has opted out of which sender, as Twilio would remember it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pairs: set[tuple[str, str]] = set()

    def hear(self, *, sender: str, patient: str, body: str) -> str | None:
        """Apply an inbound message; returns "opt_out" / "opt_in" when it was a keyword Twilio acts on."""
        keyword = body.strip().upper()
        pair = (_sender_key(sender), address_key(patient))
        with self._lock:
            if keyword in OPT_OUT_KEYWORDS:
                self._pairs.add(pair)
                return "opt_out"
            if keyword in OPT_IN_KEYWORDS:
                self._pairs.discard(pair)
                return "opt_in"
        return None

    def blocks(self, *, senders: list[str], patient: str) -> bool:
        with self._lock:
            return any((_sender_key(sender), address_key(patient)) in self._pairs for sender in senders if sender)

    def list(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"sender": sender, "patient": patient} for sender, patient in sorted(self._pairs)]

    def clear(self) -> int:
        with self._lock:
            count = len(self._pairs)
            self._pairs.clear()
            return count
