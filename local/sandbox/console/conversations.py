"""Conversations: the SMS between a patient phone and a clinic's number (or Messaging Service) as one thread,
both directions, and a box that replies as the patient (YES, C, STOP, HELP or any text) through the signed
inbound webhook, exactly as Twilio posts it. One phone can be a patient of two clinics: two threads, and a
reply goes to the clinic of its own thread.

A thread's id is a hash of both addresses, so no number ever appears in a URL or a log line."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from flask import Blueprint, jsonify, redirect, request
from werkzeug.wrappers import Response  # what redirect() returns; flask.Response is a subclass

from local.sandbox.console.layout import html_response, render, trusted
from local.sandbox.console.messages import Enricher, Shown, clinic_sender, patient_address, snippet
from local.sandbox.log import log
from local.sandbox.outbox import address_key
from shared.platform.masking import mask_address

if TYPE_CHECKING:
    from local.sandbox.console import Console

QUICK_REPLIES = (
    ("YES", "claims a waitlist offer"),
    ("C", "confirms the next appointment"),
    ("STOP", "opts out (Twilio's keyword)"),
    ("HELP", "asks for help"),
)
MAX_REPLY_CHARS = 1600

LIST = "conversations_rows.html"

LIST_PAGE = "conversations.html"

THREAD = "thread_messages.html"

THREAD_PAGE = "thread.html"


NO_THREAD = "thread_missing.html"


def thread_id(message: dict[str, Any]) -> str:
    """The conversation a message belongs to: a digest of the patient's phone and the clinic's sender."""
    clinic = clinic_sender(message).strip()
    clinic = clinic if clinic.startswith("MG") else address_key(clinic)  # a Messaging Service SID as it is
    both = f"{address_key(patient_address(message))}|{clinic}"
    return "t" + hashlib.sha256(both.encode()).hexdigest()[:20]


def routes(blueprint: Blueprint, console: Console) -> None:
    sandbox, data = console.sandbox, console.data

    def sms() -> list[dict[str, Any]]:
        return sandbox.outbox.list(channel="sms")

    def thread_rows(thread: str) -> tuple[list[Shown], Enricher]:
        enricher = Enricher(data)
        return enricher.enrich(m for m in sms() if thread_id(m) == thread), enricher

    def list_fragment() -> str:
        enricher = Enricher(data)
        threads: dict[str, dict[str, Any]] = {}
        for row in enricher.enrich(sms()):
            message = row.message
            entry = threads.setdefault(
                thread_id(message),
                {
                    "id": thread_id(message),
                    "phone": mask_address(patient_address(message)),
                    "outbound": 0,
                    "inbound": 0,
                },
            )
            entry["inbound" if message["direction"] == "inbound" else "outbound"] += 1
            entry.update(
                clinic=row.clinic_name or entry.get("clinic", ""),
                last=snippet(message["body"]),
                last_inbound=message["direction"] == "inbound",
                at=message["received_at"],
                seq=message["seq"],
            )
        # Latest arrival first: the stack's clock runs ahead in the quick demo, and goes back to real time after
        ordered = sorted(threads.values(), key=lambda entry: entry["seq"], reverse=True)
        return render(LIST, threads=ordered, problem=enricher.problem)

    @blueprint.get("/conversations")
    def conversations_page() -> Response:
        page = render(
            LIST_PAGE, title="Conversations", active="conversations", events=True, rows=trusted(list_fragment())
        )
        return html_response(page)

    @blueprint.get("/conversations/rows")
    def conversations_rows() -> Response:
        return html_response(list_fragment())

    @blueprint.get("/conversations/<thread>/messages")
    def thread_messages(thread: str) -> Response:
        rows, _ = thread_rows(thread)
        return html_response(render(THREAD, rows=rows))

    @blueprint.get("/conversations/<thread>")
    def thread_page(thread: str) -> Response:
        rows, _ = thread_rows(thread)
        if not rows:
            return html_response(render(NO_THREAD, title="Conversation", active="conversations"), status=404)
        outcome = None
        sent = request.args.get("sent", "")
        if sent:
            replied = sandbox.outbox.get(sent)
            answer = (replied or {}).get("callbacks") or [{}]
            status = answer[0].get("http_status")
            said = status or answer[0].get("error") or "nothing yet"
            outcome = {
                "ok": isinstance(status, int) and status < 400,
                "text": f"Sent as the patient; the webhook answered {said}.",
            }
        page = render(
            THREAD_PAGE,
            title="Conversation",
            active="conversations",
            events=True,
            phone=mask_address(patient_address(rows[-1].message)),
            clinic=next((row.clinic_name for row in reversed(rows) if row.clinic_name), ""),
            thread=thread,
            outcome=outcome,
            messages=trusted(render(THREAD, rows=rows)),
            quick=QUICK_REPLIES,
        )
        return html_response(page)

    @blueprint.post("/conversations/<thread>/reply")
    def reply(thread: str) -> Response:
        """The patient answers: a signed inbound webhook from their phone to the clinic's sender."""
        messages = [m for m in sms() if thread_id(m) == thread]
        body = (request.form.get("text", "") if request.form.get("send") else request.form.get("body", ""))[
            :MAX_REPLY_CHARS
        ]
        wants_json = request.accept_mimetypes.best == "application/json"
        problem = None
        if not messages:
            problem = "no such conversation"
        elif not body.strip():
            problem = "the reply is empty"
        elif not sandbox.settings.inbound_sms_url:
            problem = "INBOUND_SMS_URL is not set: there is no inbound webhook to post to"
        if problem:
            if wants_json:
                response = jsonify({"error": problem})
                response.status_code = 400
                return response
            return html_response(f"<p>{problem}</p>", status=400)  # fixed texts only: nothing to escape
        latest = messages[-1]
        outcome = sandbox.courier.inbound(
            from_=patient_address(latest), to=clinic_sender(latest), body=body, url=sandbox.settings.inbound_sms_url
        )
        log("INFO", "replied as the patient", message_sid=outcome["message_sid"], http_status=outcome.get("status"))
        if wants_json:
            return jsonify({key: value for key, value in outcome.items() if key != "body"} | {"thread": thread})
        return redirect(f"/conversations/{thread}?sent={outcome['message_sid']}", code=303)
