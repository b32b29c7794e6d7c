"""make fuzz: generated requests against the running functions, as a hostile sender would send them.

    python -m tests.fuzz [--bodies 10000] [--callbacks 2000] [--seed 1] [--start-stack]

It runs against the local stack of MEDSPA_PORT_BASE / MEDSPA_STATE_DIR, which must be up and healthy (it
says so in one line and sends nothing otherwise); with --start-stack (`make fuzz`) it starts the stack when
it is not up and stops it afterwards, only when no part of it was running before (as tests/conftest.py does).

Posts task bodies to the task handler as Cloud Tasks would (malformed JSON, deep nesting, ids Firestore
refuses, lone surrogates, out-of-range instants and integers, wrong types, unknown fields, oversize,
mutations of a valid body), and status callbacks to twilio-status, signed with the stack's Twilio token
and unsigned, with generated queries and forms; then email event batches to sendgrid-events. It prints
the counts by status code and fails on any 5xx, any request slower than `--slow-seconds` (2 s: on a
quiet machine nothing legitimate takes that long; the tests pass `inf`, judging no time, and a hang
still fails there as a request without an answer within its 30 s timeout), or any traceback the
functions logged meanwhile. The in-process properties of the same decoders are
tests/unit/test_boundary_properties.py (`make fuzz` runs those with many more examples).
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

from local import config as stack_config
from local import stack as local_stack
from local.config import StackConfig
from local.processes import ProcessDir
from tests.stack_logs import FunctionLogs

SLOW_SECONDS = 2.0
VALID = {
    "type": "appointment_reminder",
    "v": 1,
    "appointment_id": "fuzz-appt",
    "clinic_id": "fuzz-clinic",
    "patient_id": "fuzz-patient",
    "dedup_key": "appointment_reminder-" + "0" * 40,
    "send_at": "2026-11-25T14:30:00+00:00",
    "appointment_start": "2026-11-26T14:30:00+00:00",
    "offset_hours": 24,
}
NASTY_STRINGS = [
    ".",
    "..",
    "__name__",
    "__x__",
    "a1\n",
    "\ud800",
    "a/b",
    "",
    " ",
    "x" * 2000,
    "+15551234567",
    "jane@example.com",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "null",
    "\x00",
    "appointment_reminder-" + "z" * 40,
    "../../etc/passwd",
    "%s%s%n",
    "'; DROP TABLE--",
    "𝔘𝔫𝔦",
]
NASTY_NUMBERS = [0, -1, 1.0, True, False, 2**63, -(2**63) - 1, 2**200, 1e308, float("inf"), float("nan")]


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def scalar(self) -> Any:
        choice = self.rng.random()
        if choice < 0.4:
            return self.rng.choice(NASTY_STRINGS)
        if choice < 0.7:
            return self.rng.choice(NASTY_NUMBERS)
        if choice < 0.8:
            return None
        return "".join(self.rng.choice(string.printable) for _ in range(self.rng.randint(0, 30)))

    def value(self, depth: int = 0) -> Any:
        choice = self.rng.random()
        if depth > 3 or choice < 0.6:
            return self.scalar()
        if choice < 0.8:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {str(self.scalar())[:30]: self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def task_body(self) -> bytes:
        choice = self.rng.random()
        if choice < 0.1:
            return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(0, 200)))
        if choice < 0.15:
            depth = self.rng.randint(50, 5000)
            return b"[" * depth + b"]" * depth
        if choice < 0.2:
            return json.dumps({**VALID, "pad": "x" * self.rng.randint(16_000, 40_000)}).encode()
        if choice < 0.3:
            return encode(self.value())
        body: dict[str, Any] = dict(VALID)
        for _ in range(self.rng.randint(1, 4)):  # mutate a valid body field by field
            action = self.rng.random()
            field = self.rng.choice([*VALID, "extra", "first_name"])
            if action < 0.2:
                body.pop(field, None)
            else:
                body[field] = self.value(depth=2) if action < 0.4 else self.scalar()
        return encode(body)

    def callback(self, key: str) -> tuple[dict[str, str], dict[str, str]]:
        query = {
            "ledger": self.rng.choice([key, *map(str, NASTY_STRINGS[:8]), f"{key}/claims/1", ""]),
            "g": self.rng.choice(["1", "0", "-1", "10000009", "9" * 50, "abc", ""]),
        }
        form = {
            "MessageSid": self.rng.choice(["SM" + "a" * 32, "", "SM1", "\ud800", "x" * 500]),
            "MessageStatus": self.rng.choice(
                ["queued", "sent", "delivered", "undelivered", "failed", "teleported", "", "DELIVERED"]
            ),
            "ErrorCode": self.rng.choice(["", "30003", "abc", "9" * 30]),
        }
        return (
            {k: v for k, v in query.items() if self.rng.random() < 0.9},
            {k: str(v) for k, v in form.items() if self.rng.random() < 0.9},
        )


def encode(value: Any) -> bytes:
    return json.dumps(value, default=str).encode("utf-8", "surrogatepass")


class Campaign:
    def __init__(self, config: StackConfig, slow_seconds: float = SLOW_SECONDS) -> None:
        self.config, self.slow_seconds = config, slow_seconds
        self.http = requests.Session()
        self.statuses: dict[str, Counter[int]] = {}
        self.slow: list[tuple[str, float]] = []
        self.failures: list[str] = []

    def post(self, target: str, url: str, **kwargs: Any) -> None:
        started = time.monotonic()
        try:
            status = self.http.post(url, timeout=30, **kwargs).status_code
        except requests.RequestException as exc:
            status = 0
            self.failures.append(f"{target}: {type(exc).__name__}")
        elapsed = time.monotonic() - started
        self.statuses.setdefault(target, Counter())[status] += 1
        if elapsed > self.slow_seconds:
            self.slow.append((target, round(elapsed, 2)))
        if status >= 500 or status == 0:
            self.failures.append(f"{target}: HTTP {status}")

    def task_bodies(self, generator: Generator, count: int) -> None:
        from tests.handler_support import as_cloud_tasks

        url = self.config.url("task-handler")
        auth = as_cloud_tasks(self.config)
        for n in range(count):
            headers = {
                **auth,
                "Content-Type": "application/json",
                "X-CloudTasks-QueueName": "reminders-sms",
                "X-CloudTasks-TaskName": f"fuzz-{n}",
                "X-CloudTasks-TaskRetryCount": str(n % 3),
            }
            self.post("task-handler", url, data=generator.task_body(), headers=headers)

    def callbacks(self, generator: Generator, count: int, token: str) -> None:
        base = self.config.url("twilio-status").rstrip("/")
        validator = RequestValidator(token)
        key = "appointment_reminder-" + "1" * 40
        for n in range(count):
            query, form = generator.callback(key)
            url = f"{base}/?{urlencode(query, errors='surrogatepass')}" if query else f"{base}/"
            headers = {}
            if n % 2 == 0:  # half signed exactly as Twilio signs, half unsigned or forged
                try:
                    headers["X-Twilio-Signature"] = validator.compute_signature(url, form)
                except UnicodeEncodeError:
                    headers["X-Twilio-Signature"] = "forged"
            elif n % 4 == 1:
                headers["X-Twilio-Signature"] = "forged"
            self.post(
                "twilio-status",
                url,
                data={k: v.encode("utf-8", "surrogatepass") for k, v in form.items()},
                headers=headers,
            )

    def email_events(self, generator: Generator, count: int) -> None:
        from local import webhook_keys

        url = self.config.url("sendgrid-events")
        private = webhook_keys.private_key_path(self.config.state_dir).read_bytes()
        for n in range(count):
            payload = encode([generator.value() for _ in range(generator.rng.randint(0, 3))])
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
                "X-Twilio-Email-Event-Webhook-Signature": webhook_keys.sign(private, timestamp, payload)
                if n % 2 == 0
                else "forged",
            }
            self.post("sendgrid-events", url, data=payload, headers=headers)


def log_followers(config: StackConfig) -> list[FunctionLogs]:
    processes = ProcessDir(config.state_dir)
    names = ("task-handler", "twilio-status", "sendgrid-events")
    return [FunctionLogs(config, name) for name in names if processes.log_path(name).exists()]


def tracebacks_in(followers: list[FunctionLogs]) -> list[str]:
    return [
        f"{logs.name}: {line[:160]}" for logs in followers for line in logs.text().splitlines() if "Traceback" in line
    ]


def run(
    bodies: int,
    callbacks: int,
    events: int,
    seed: int,
    config: StackConfig | None = None,
    say: Callable[[str], None] = print,
    slow_seconds: float = SLOW_SECONDS,
) -> int:
    config = config or stack_config.load()
    generator = Generator(seed)
    campaign = Campaign(config, slow_seconds)
    followers = log_followers(config)
    token = config.function_env()["TWILIO_AUTH_TOKEN"]
    started = time.monotonic()
    campaign.task_bodies(generator, bodies)
    campaign.callbacks(generator, callbacks, token)
    campaign.email_events(generator, events)
    tracebacks = tracebacks_in(followers)
    say(
        f"\n== fuzz: {bodies} task bodies, {callbacks} status callbacks, {events} email event batches in "
        f"{time.monotonic() - started:.0f} s"
    )
    for target, statuses in campaign.statuses.items():
        say(f"  {target:16} " + "  ".join(f"{status}: {count}" for status, count in sorted(statuses.items())))
    say(f"  5xx or no answer  {len(campaign.failures)}  {campaign.failures[:5]}")
    say(f"  slower than {slow_seconds:g} s  {len(campaign.slow)}  {campaign.slow[:5]}")
    say(f"  tracebacks logged {len(tracebacks)}  {tracebacks[:3]}")
    return 1 if campaign.failures or campaign.slow or tracebacks else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=10_000)
    parser.add_argument("--callbacks", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slow-seconds", type=float, default=SLOW_SECONDS)
    parser.add_argument(
        "--start-stack", action="store_true", help="start the stack when it is not up; stop it after if this run did"
    )
    args = parser.parse_args(argv)
    config = stack_config.load()
    processes = ProcessDir(config.state_dir)
    owned = not any(processes.running(name) for name in processes.names())
    if not local_stack.healthy(config):
        if not args.start_stack:
            print(
                f"fuzz: the local stack is not up and healthy (Firestore {config.host}:{config.firestore_port}, "
                f"state in {config.state_dir}): `make up` with the same MEDSPA_PORT_BASE and MEDSPA_STATE_DIR, "
                "or pass --start-stack",
                file=sys.stderr,
            )
            return 2
        try:
            local_stack.up(config)
        except local_stack.StackError as exc:
            print(f"fuzz: the local stack did not start: {exc}", file=sys.stderr)
            return 2
    try:
        return run(args.bodies, args.callbacks, args.events, args.seed, config=config, slow_seconds=args.slow_seconds)
    finally:
        if owned:
            local_stack.down(config)


if __name__ == "__main__":
    sys.exit(main())
