"""Fault injection: rules that make the next matching send fail the way the real provider fails."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from local.sandbox.outbox import address_key
from local.sandbox.twilio_errors import twilio_status
from shared.platform.masking import MIN_DIGITS_TO_KEEP_ANY, mask_address, mask_email, mask_phone

CHANNELS = ("sms", "email")
KINDS = ("http", "twilio_code", "timeout", "delivery_failure")

SMS_FINAL_FAILURES = ("undelivered", "failed")
EMAIL_FINAL_FAILURES = ("bounce", "dropped")  # SendGrid event names


class FaultError(ValueError):
    """A fault rule that cannot be applied as written (answered with 400)."""


@dataclass
class Fault:
    """One rule. `times` counts the requests it still fails; None means until removed."""

    id: str
    channel: str
    kind: str
    status: int | None = None  # HTTP status answered (http, twilio_code)
    code: int | None = None  # Twilio code (twilio_code) or delivery ErrorCode (delivery_failure)
    to: str | None = None  # only this recipient, or (ending in "*") every recipient starting so: "+91*"
    rate: float = 1.0  # probability that a matching request is hit
    times: int | None = None
    seconds: float | None = None  # timeout: how long to hang
    accept: bool = False  # timeout: record and deliver the message anyway (a lost response)
    retry_after: int = 1  # seconds, on 429 answers
    final_status: str | None = None  # delivery_failure: "undelivered" | "failed" (sms)
    hits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(spec: dict[str, Any], name: str) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FaultError(f"'{name}' must be an integer")
    try:
        return int(value)
    except ValueError:
        raise FaultError(f"'{name}' must be an integer") from None


def parse_fault(spec: Any, fault_id: str) -> Fault:
    """Validate a fault rule from POST /_sandbox/faults, failing with a message naming the bad field."""
    if not isinstance(spec, dict):
        raise FaultError("body must be a JSON object")
    unknown = set(spec) - {
        "channel",
        "kind",
        "status",
        "code",
        "to",
        "rate",
        "times",
        "seconds",
        "accept",
        "retry_after",
        "final_status",
    }
    if unknown:
        raise FaultError(f"unknown field(s): {', '.join(sorted(unknown))}")
    channel, kind = spec.get("channel"), spec.get("kind")
    if channel not in CHANNELS:
        raise FaultError(f"'channel' must be one of {', '.join(CHANNELS)}")
    if kind not in KINDS:
        raise FaultError(f"'kind' must be one of {', '.join(KINDS)}")
    fault = Fault(id=fault_id, channel=channel, kind=kind, status=_int(spec, "status"), code=_int(spec, "code"))

    to = spec.get("to")
    if to is not None and (not isinstance(to, str) or not to.strip()):
        raise FaultError("'to' must be a phone number or email address")
    fault.to = to.strip() if to else None
    rate = spec.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise FaultError("'rate' must be a number between 0 and 1")
    fault.rate = float(rate)
    fault.times = _int(spec, "times")
    if fault.times is not None and fault.times < 1:
        raise FaultError("'times' must be at least 1")
    retry_after = _int(spec, "retry_after")
    fault.retry_after = 1 if retry_after is None else max(0, retry_after)

    if kind == "http":
        if fault.status is None or not 400 <= fault.status <= 599:
            raise FaultError("kind 'http' needs 'status' between 400 and 599")
    elif kind == "twilio_code":
        if channel != "sms":
            raise FaultError("kind 'twilio_code' applies to channel 'sms' only")
        if fault.code is None:
            raise FaultError("kind 'twilio_code' needs 'code'")
        if fault.status is None:
            fault.status = twilio_status(fault.code)
        if fault.status is None:
            raise FaultError(
                f"unknown HTTP status for Twilio code {fault.code}: give 'status', or use kind "
                "'delivery_failure' for delivery-time codes such as 30003"
            )
    elif kind == "timeout":
        seconds = spec.get("seconds")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 600
        ):
            raise FaultError("'seconds' must be a number in (0, 600]")
        fault.seconds = float(seconds) if seconds is not None else None
        fault.accept = bool(spec.get("accept", False))
    else:  # delivery_failure
        final = spec.get("final_status")
        if channel == "sms":
            final = final or "undelivered"
            if final not in SMS_FINAL_FAILURES:
                raise FaultError(f"'final_status' must be one of {', '.join(SMS_FINAL_FAILURES)}")
            fault.code = fault.code or 30003
        else:
            final = final or "bounce"
            if final not in EMAIL_FINAL_FAILURES:
                raise FaultError(f"'final_status' must be one of {', '.join(EMAIL_FINAL_FAILURES)}")
        fault.final_status = final
    return fault


def shown_target(to: str | None) -> str:
    """A rule's `to` as the console shows it: a prefix rule names a route, not a person, so "+44*" stays
    "+44*" while it is shorter than a number the masker would keep digits of; an address, or a prefix long
    enough to single one out, is masked like any recipient (the `*` kept)."""
    if not to:
        return ""
    if not to.endswith("*"):
        return mask_address(to)
    prefix = to[:-1]
    digits = sum(ch.isdigit() for ch in prefix)
    if "@" not in prefix and digits == len(prefix.lstrip("+")) and digits < MIN_DIGITS_TO_KEEP_ANY:
        return to
    if "@" in prefix:
        return mask_email(prefix) + "*"
    return (mask_phone(prefix) if digits else prefix[:1] + "***") + "*"


def _aims_at(to: str | None, keys: set[str]) -> bool:
    """Whether a rule's `to` covers one of the request's recipients: none given, the same address, or a
    prefix ("+91*": every number in India, the way a carrier route goes down)."""
    if not to:
        return True
    if to.endswith("*"):
        prefix = address_key(to[:-1])
        return any(key.startswith(prefix) for key in keys)
    return address_key(to) in keys


class FaultBook:
    """The active rules, in the order they were added; the first that matches and fires wins."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._rng = random.Random(seed)

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self._rng.seed(seed)

    def add(self, spec: Any) -> dict[str, Any]:
        """Validate, then number: a rule refused with FaultError uses up no id (f1, f2… stay gapless)."""
        fault = parse_fault(spec, "")
        with self._lock:
            fault.id = f"f{next(self._ids)}"
            self._faults.append(fault)
            return fault.to_dict()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_dict() for fault in self._faults]

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [fault for fault in self._faults if fault.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> int:
        with self._lock:
            count = len(self._faults)
            self._faults.clear()
            return count

    def take(self, channel: str, recipients: Iterable[str]) -> Fault | None:
        """The fault this request suffers, if any; uses up one of its `times`. Returns a snapshot."""
        keys = {address_key(recipient) for recipient in recipients}
        with self._lock:
            for fault in self._faults:
                if fault.channel != channel or not _aims_at(fault.to, keys):
                    continue
                # One roll per matching rule, so a seeded run fails the same requests every time.
                if fault.rate < 1.0 and self._rng.random() >= fault.rate:
                    continue
                fault.hits += 1
                snapshot = Fault(**asdict(fault))
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return snapshot
            return None
