"""The local console: what a developer opens to see and steer the local stack, served by the provider
sandbox on loopback (nothing here is reachable from production code, which never imports local/).

Pages, one module each, in one navigation bar (layout.py):
  /                 Outbox (outbox_view.py): every SMS and email, live, search and filters, one page per message
  /conversations    Conversations (conversations.py): SMS threads per patient and clinic number, replies
  /operations       Operations (operations.py): seeded data, the ledger by state (paged), failed_tasks and the sweep
  /operations/collections/<name>  (collections_page.py): slot_offers, patient_requests, purchase_orders, paged
  /faults           Faults (faults_page.py): break Twilio or SendGrid on purpose
  /reports          Reports (reports_page.py): stored reports and the emails they went out as
  /campaigns        Campaigns (campaigns_page.py): every campaign, its status and its report's figures
  /logs             Logs (logs_page.py): each stack component's log file, its tail filtered by severity and text
  /events           server-sent events: "something changed" for the live views

POSTs from a browser must come from the console's own pages (Origin checked), and every request must name
a loopback host, so a web page elsewhere cannot drive the console (DNS rebinding, cross-site forms).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Blueprint, Response, request, stream_with_context

from local.config import is_loopback
from local.sandbox.console import (
    campaigns_page,
    collections_page,
    conversations,
    faults_page,
    logs_page,
    operations,
    outbox_view,
    reports_page,
)
from local.sandbox.console.data import ConsoleData
from local.sandbox.console.layout import static

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox

STREAM_SECONDS = 300.0  # an event stream ends after this (the browser reconnects): no thread is held forever
KEEPALIVE_SECONDS = 15.0
PAGES = (
    outbox_view,
    conversations,
    operations,
    collections_page,
    faults_page,
    reports_page,
    campaigns_page,
    logs_page,
)


@dataclass(frozen=True)
class Console:
    sandbox: Sandbox
    data: ConsoleData


def _host_is_loopback(netloc: str) -> bool:
    host = urlsplit(f"//{netloc}").hostname or ""
    return is_loopback(host)


def console_blueprint(sandbox: Sandbox) -> Blueprint:
    """Every console route, over this sandbox's state and a Firestore/Pub/Sub reader of its own."""
    blueprint = Blueprint("console", __name__)
    console = Console(sandbox, ConsoleData(timeout_seconds=sandbox.settings.status_timeout_seconds))

    @blueprint.before_request
    def same_machine_only() -> Response | None:
        if not _host_is_loopback(request.host):
            return Response("the console answers loopback hosts only", status=403, mimetype="text/plain")
        origin = request.headers.get("Origin")
        if request.method == "POST" and origin and origin != "null" and urlsplit(origin).netloc != request.host:
            return Response("cross-origin form refused", status=403, mimetype="text/plain")
        return None

    @blueprint.get("/static/<any('console.css', 'console.js'):name>")
    def static_file(name: str) -> Response:
        return static(name)

    @blueprint.get("/events")
    def events() -> Response:
        """Server-sent events: one `change` whenever the outbox or the fault rules change."""

        def stream() -> Iterator[str]:
            outbox = sandbox.outbox
            version = outbox.version
            ends = time.monotonic() + STREAM_SECONDS
            yield f"retry: 2000\nevent: hello\ndata: {version}\n\n"
            while not sandbox.stopping.is_set() and time.monotonic() < ends:
                latest = outbox.wait_change(version, KEEPALIVE_SECONDS)
                if sandbox.stopping.is_set():
                    return
                if latest != version:
                    version = latest
                    yield f"event: change\ndata: {version}\n\n"
                    time.sleep(0.2)  # a burst of changes is one refresh
                else:
                    yield ": keep-alive\n\n"

        response = Response(stream_with_context(stream()), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Accel-Buffering"] = "no"
        return response

    for page in PAGES:
        page.routes(blueprint, console)
    return blueprint
