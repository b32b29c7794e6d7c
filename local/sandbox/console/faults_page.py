"""Faults: the sandbox's fault injection as a form (Twilio and SendGrid error codes, 429, 5xx, timeouts,
"accepted but the answer lost", delivery failures), the rules in force with a remove button each, and the
sends the providers refused lately. Break the provider here, then watch retries and failed_tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response  # what redirect() returns; flask.Response is a subclass

from local.sandbox.console.layout import html_response, render, trusted
from local.sandbox.faults import CHANNELS, KINDS, FaultError, shown_target
from local.sandbox.log import log

if TYPE_CHECKING:
    from local.sandbox.console import Console

# One click for the failures a developer most often wants to see (the form takes any other rule).
PRESETS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("twilio-outage", "Twilio outage (503)", {"channel": "sms", "kind": "http", "status": 503}),
    ("twilio-rate", "Twilio rate limit (429, code 20429)", {"channel": "sms", "kind": "twilio_code", "code": 20429}),
    (
        "twilio-invalid",
        "Invalid number (21211), next 3",
        {"channel": "sms", "kind": "twilio_code", "code": 21211, "times": 3},
    ),
    (
        "twilio-mobile",
        "Not a mobile number (21614), next 3",
        {"channel": "sms", "kind": "twilio_code", "code": 21614, "times": 3},
    ),
    ("twilio-timeout", "Twilio timeout, next 2", {"channel": "sms", "kind": "timeout", "times": 2}),
    (
        "twilio-lost",
        "Twilio accepted, answer lost (next 1)",
        {"channel": "sms", "kind": "timeout", "accept": True, "times": 1},
    ),
    (
        "carrier-undelivered",
        "Carrier undelivered (30003), next 2",
        {"channel": "sms", "kind": "delivery_failure", "times": 2},
    ),
    ("sendgrid-outage", "SendGrid outage (503)", {"channel": "email", "kind": "http", "status": 503}),
    ("sendgrid-rate", "SendGrid rate limit (429)", {"channel": "email", "kind": "http", "status": 429}),
    ("sendgrid-bounce", "Email bounces, next 2", {"channel": "email", "kind": "delivery_failure", "times": 2}),
)
FIELDS = ("channel", "kind", "status", "code", "to", "rate", "times", "seconds", "retry_after", "final_status")

BODY = "faults_rows.html"

PAGE = "faults.html"


def _spec(form: Any) -> dict[str, Any]:
    """The JSON rule POST /_sandbox/faults takes, from the form's text fields (numbers parsed leniently)."""
    preset = form.get("preset")
    if preset:
        for key, _, rule in PRESETS:
            if key == preset:
                return dict(rule)
        raise FaultError("unknown preset")
    spec: dict[str, Any] = {}
    for name in FIELDS:
        raw = (form.get(name) or "").strip()
        if not raw:
            continue
        if name in ("rate", "seconds"):
            try:
                spec[name] = float(raw)
            except ValueError:
                raise FaultError(f"'{name}' must be a number") from None
        else:
            spec[name] = raw
    if form.get("accept"):
        spec["accept"] = True
    return spec


def routes(blueprint: Blueprint, console: Console) -> None:
    sandbox = console.sandbox

    def rows() -> str:
        return render(
            BODY,
            faults=sandbox.faults.list(),
            refusals=list(reversed(sandbox.outbox.refusals(newest=50))),
            limit=50,
            target=shown_target,
        )

    def page(error: str | None = None, status: int = 200) -> Response:
        body = render(
            PAGE,
            title="Faults",
            active="faults",
            events=True,
            error=error,
            presets=PRESETS,
            channels=CHANNELS,
            kinds=KINDS,
            rows=trusted(rows()),
        )
        return html_response(body, status=status)

    @blueprint.get("/faults")
    def faults_page() -> Response:
        return page()

    @blueprint.get("/faults/rows")
    def faults_rows() -> Response:
        return html_response(rows())

    @blueprint.post("/faults")
    def add_fault() -> Response:
        try:
            sandbox.add_fault(_spec(request.form), source="console")
        except FaultError as error:
            return page(f"Not added: {error}", status=400)
        return redirect("/faults", code=303)

    @blueprint.post("/faults/<fault_id>/remove")
    def remove_fault(fault_id: str) -> Response:
        removed = sandbox.faults.remove(fault_id)
        sandbox.outbox.note_change()
        log("INFO", "fault removed from the console", fault=fault_id[:40], removed=removed)
        return redirect("/faults", code=303)

    @blueprint.post("/faults/clear")
    def clear_faults() -> Response:
        removed = sandbox.faults.clear()
        sandbox.outbox.note_change()
        log("INFO", "faults cleared from the console", removed=removed)
        return redirect("/faults", code=303)
