"""Local stand-in for Eventarc's Pub/Sub triggers: pull from the emulator, POST CloudEvents to functions.

For each route TOPIC=URL the bridge creates the topic and one pull subscription (ack deadline set),
pulls with the official client and POSTs every message to URL as a binary-mode CloudEvent of type
google.cloud.pubsub.topic.v1.messagePublished, the way Eventarc does: from inside the project, with an ID
token for the trigger's identity (events-invoker) whose audience is the function's URL, which the local
front checks as Cloud Run does (local/front.py). 2xx → ack; anything else, or no
answer → nack after a short, growing backoff, so Pub/Sub redelivers (Eventarc retries the same way).
At most --max-in-flight messages per route are being delivered at once.

    python -m local.pubsub_bridge --route reminders-tick=http://127.0.0.1:8620/ [--route T=URL ...]
        [--topic T ...] [--ready-file PATH] [--state-dir DIR]

Needs PUBSUB_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT in the environment. --topic creates a topic
without a route. The ready file is written (holding the bridge's pid) once every subscription is
pulling: publish only after that, since Pub/Sub keeps nothing for subscriptions that do not exist yet.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from deploy import registry
from local import identity
from shared.platform import log as shared_log
from shared.platform.emulator import ClockFile

EVENT_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
ACK_DEADLINE_SECONDS = 60
DELIVERY_TIMEOUT_SECONDS = 70  # a little over an event function's default 60 s timeout
MAX_IN_FLIGHT = 8
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
TOKEN_REUSE_SECONDS = 1800  # a pushed token is reused for half its hour, as a caching client would


@dataclass(frozen=True)
class Route:
    topic: str
    url: str

    @classmethod
    def parse(cls, text: str) -> Route:
        topic, sep, url = text.partition("=")
        if not sep or not topic or not url.startswith("http"):
            raise argparse.ArgumentTypeError(f"a route is TOPIC=URL, got {text!r}")
        return cls(topic, url)

    @property
    def subscription_id(self) -> str:
        """One subscription per (topic, receiver), named like Eventarc's: stable across restarts."""
        return f"eventarc-{self.topic}-{urlsplit(self.url).port or 80}"


def log(severity: str, message: str, **fields: Any) -> None:
    shared_log.log(severity, message, **fields)  # whole lines under a lock: delivery threads log at once


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def cloud_event(
    project: str, route: Route, message: Any, clock_offset: timedelta = timedelta(0)
) -> tuple[dict[str, str], bytes]:
    """Headers and body of the binary-mode CloudEvent Eventarc posts for one Pub/Sub message.

    Times are on the stack's clock (the local clock file moves it for every function, see
    shared.platform.emulator): a tick published while the stack stands on another date carries that date.
    """
    published = rfc3339(message.publish_time + clock_offset)
    headers = {
        "Content-Type": "application/json",
        "ce-id": message.message_id,
        "ce-source": f"//pubsub.googleapis.com/projects/{project}/topics/{route.topic}",
        "ce-type": EVENT_TYPE,
        "ce-specversion": "1.0",
        "ce-time": published,
    }
    body = {
        "message": {
            "data": base64.b64encode(message.data).decode("ascii"),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "publishTime": published,
        },
        "subscription": f"projects/{project}/subscriptions/{route.subscription_id}",
    }
    return headers, json.dumps(body).encode()


class Bridge:
    """Routes topics to HTTP receivers until stop() is called."""

    def __init__(
        self,
        project: str,
        routes: list[Route],
        topics: list[str],
        max_in_flight: int = MAX_IN_FLIGHT,
        state_dir: Path | None = None,
    ) -> None:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # untyped; mypy misses it in the namespace

        # Without a state dir (a test's bare bridge) pushes carry no token and reach only unguarded receivers.
        self.issuer = identity.Issuer.load(state_dir) if state_dir else None
        self.internal = identity.internal_headers(state_dir) if state_dir else {}
        self.pusher = identity.service_account(project, registry.EVENTS_INVOKER)
        self.tokens: dict[str, tuple[float, str]] = {}

        self.project = project
        self.routes = routes
        self.topics = sorted({*topics, *(route.topic for route in routes)})
        self.max_in_flight = max_in_flight
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        self.http = requests.Session()
        self.failures: dict[tuple[str, str], int] = {}  # (subscription, message id) → failed deliveries
        self.lock = threading.Lock()
        self.pulls: list[Any] = []
        self.clock = ClockFile()

    def ensure_topics_and_subscriptions(self) -> None:
        from google.api_core.exceptions import AlreadyExists

        for topic in self.topics:
            try:
                self.publisher.create_topic(name=self.publisher.topic_path(self.project, topic))
            except AlreadyExists:
                pass
        for route in self.routes:
            try:
                self.subscriber.create_subscription(
                    name=self.subscriber.subscription_path(self.project, route.subscription_id),
                    topic=self.publisher.topic_path(self.project, route.topic),
                    ack_deadline_seconds=ACK_DEADLINE_SECONDS,
                )
            except AlreadyExists:
                pass

    def start(self) -> None:
        from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler
        from google.cloud.pubsub_v1.types import FlowControl

        self.ensure_topics_and_subscriptions()
        for route in self.routes:
            path = self.subscriber.subscription_path(self.project, route.subscription_id)
            executor = futures.ThreadPoolExecutor(self.max_in_flight, thread_name_prefix=route.topic)
            self.pulls.append(
                self.subscriber.subscribe(
                    path,
                    callback=lambda message, route=route: self.deliver(route, message),
                    flow_control=FlowControl(max_messages=self.max_in_flight),
                    scheduler=ThreadScheduler(executor),
                )
            )
            log("INFO", "routing", topic=route.topic, url=route.url, subscription=route.subscription_id)

    def push_headers(self, route: Route) -> dict[str, str]:
        """What Eventarc's push adds: from inside the project, an ID token for the trigger's identity."""
        if self.issuer is None:
            return {}
        with self.lock:
            minted = self.tokens.get(route.url)
            if minted is None or time.monotonic() - minted[0] > TOKEN_REUSE_SECONDS:
                minted = self.tokens[route.url] = (
                    time.monotonic(),
                    self.issuer.mint(email=self.pusher, audience=route.url),
                )
        return {**self.internal, "Authorization": f"Bearer {minted[1]}"}

    def deliver(self, route: Route, message: Any) -> None:
        """POST one message; ack on 2xx, otherwise nack after a backoff so it is redelivered."""
        try:
            headers, body = cloud_event(self.project, route, message, self.clock.offset())
            headers.update(self.push_headers(route))
            status: int | None = self.http.post(
                route.url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS
            ).status_code
            error = None
        except Exception as exc:  # noqa: BLE001 - any failure is a failed delivery, retried after a backoff
            status, error = None, f"{type(exc).__name__}: {exc}"
        fields = {"topic": route.topic, "messageId": message.message_id, "status": status}
        key = (route.subscription_id, message.message_id)
        if status is not None and 200 <= status < 300:
            with self.lock:
                self.failures.pop(key, None)
            message.ack()
            log("INFO", "delivered", **fields)
            return
        with self.lock:
            failures = self.failures[key] = self.failures.get(key, 0) + 1
        backoff = min(BACKOFF_FIRST_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
        log(
            "WARNING",
            "delivery failed; will be redelivered",
            error=error,
            attempt=failures,
            backoff_seconds=backoff,
            **fields,
        )
        time.sleep(backoff)  # holds one of max_in_flight slots: a failing receiver is not hammered
        message.nack()

    def broken_pull(self) -> BaseException | None:
        """The error of a streaming pull that ended on its own (emulator gone, say), if any."""
        for pull in self.pulls:
            if pull.done():
                return pull.exception() or RuntimeError("streaming pull ended")
        return None

    def stop(self) -> None:
        for pull in self.pulls:
            pull.cancel()
        for pull in self.pulls:
            try:
                pull.result(timeout=5)
            except Exception:  # noqa: BLE001,S110 - a cancelled pull reports its cancellation; we are exiting
                pass
        self.subscriber.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.pubsub_bridge", description=__doc__.splitlines()[0])
    parser.add_argument("--route", type=Route.parse, action="append", default=[], help="TOPIC=URL; repeat")
    parser.add_argument("--topic", action="append", default=[], help="also create this topic; repeat")
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--max-in-flight", type=int, default=MAX_IN_FLIGHT)
    parser.add_argument("--state-dir", type=Path, help="the stack's state dir: its issuer signs each push's token")
    args = parser.parse_args(argv)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT", "")
    if not project or not os.environ.get("PUBSUB_EMULATOR_HOST"):
        print("pubsub_bridge: GOOGLE_CLOUD_PROJECT and PUBSUB_EMULATOR_HOST must be set", file=sys.stderr)
        return 2

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    bridge = Bridge(project, args.route, args.topic, args.max_in_flight, args.state_dir)
    bridge.start()
    if args.ready_file:
        args.ready_file.parent.mkdir(parents=True, exist_ok=True)
        args.ready_file.write_text(f"{os.getpid()}\n")
    log("INFO", "bridge ready", topics=bridge.topics, routes=len(args.route))
    broken = None
    while not stopping.wait(1.0) and broken is None:
        broken = bridge.broken_pull()
    if broken is not None:  # exit, so that `status` shows the bridge down instead of silently idle
        log("ERROR", "a streaming pull stopped; exiting", error=f"{type(broken).__name__}: {broken}")
    bridge.stop()
    if args.ready_file:
        args.ready_file.unlink(missing_ok=True)
    return 0 if broken is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
