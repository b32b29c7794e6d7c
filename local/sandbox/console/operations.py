"""Operations: the seeded data, the ledger by state with every doc one click away, and failed_tasks with the
one action an operator takes in the Firestore console (set `status` to retry, or resolved) plus "run the
sweep now", which publishes to failed-tasks-sweep exactly as Cloud Scheduler does: the retry-sweep function
then does what it does every five minutes in production (docs/architecture.md, "An operator's retry")."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, jsonify, redirect, request
from werkzeug.wrappers import Response  # what redirect() returns; flask.Response is a subclass

from deploy import registry
from local.sandbox.console.collections_page import paged
from local.sandbox.console.data import BROWSABLE, FAILED_TASK_EDITS, FAILED_TASKS, LEDGER, ConsoleDataError, plain
from local.sandbox.console.layout import html_response, render, trusted
from local.sandbox.console.messages import KIND_LABELS, kind_label
from local.sandbox.firestore_status import APPOINTMENT_STATUSES
from local.sandbox.log import log

if TYPE_CHECKING:
    from local.sandbox.console import Console

LEDGER_PAGE_SIZE = 50
LEDGER_KINDS = tuple(kind for kind in KIND_LABELS if kind not in ("reply", "auto_reply"))  # what a ledger doc can be
LEDGER_STATES = ("scheduled", "sending", "unconfirmed", "sent", "delivered", "skipped", "failed")
FAILED_STATUSES = ("open", "retry", "retried", "resolved")
SWEEP_JOB = next(job for job in registry.JOBS if job.name == "failed-tasks-sweep")
POLL_MS = 3000

SUMMARY = "operations_rows.html"

PAGE = "operations.html"

LEDGER_PAGE = "ledger.html"

DOC_PAGE = "document.html"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def routes(blueprint: Blueprint, console: Console) -> None:
    sandbox, data = console.sandbox, console.data

    def summary_fragment(failed_filter: str) -> str:
        problem = None
        ledger: list[tuple[str, int]] = []
        failed_counts: list[tuple[str, int]] = []
        failed: list[tuple[str, dict[str, Any]]] = []
        ledger_total = 0
        try:
            ledger = [(state, data.count(LEDGER, "state", state)) for state in LEDGER_STATES]
            ledger_total = data.count(LEDGER)
            failed_counts = [(status, data.count(FAILED_TASKS, "status", status)) for status in FAILED_STATUSES]
            where = [("status", failed_filter)] if failed_filter in FAILED_STATUSES else []
            failed = [
                (doc_id, {name: plain(value) for name, value in doc.items()})
                for doc_id, doc in data.listing(FAILED_TASKS, where, order="last_failed_at", limit=200)
            ]
        except ConsoleDataError as error:
            problem = str(error)
        return render(
            SUMMARY,
            status=sandbox.firestore_status.figures(),
            appointment_statuses=APPOINTMENT_STATUSES,
            ledger=ledger,
            ledger_total=ledger_total,
            failed_counts=failed_counts,
            failed=failed,
            failed_filter=failed_filter if failed_filter in FAILED_STATUSES else "",
            clinics=data.clinic_names(),
            edits=FAILED_TASK_EDITS,
            problem=problem,
        )

    @blueprint.get("/operations")
    def operations_page() -> Response:
        failed_filter = request.args.get("failed", "")
        banner = None
        if request.args.get("swept"):
            banner = {
                "tone": "ok",
                "text": f"Published message {request.args['swept'][:40]} to {SWEEP_JOB.topic}: the retry-sweep "
                "function re-enqueues every failed task marked retry (this page follows).",
            }
        elif request.args.get("set") in FAILED_TASK_EDITS:
            banner = {
                "tone": "ok",
                "text": f"status set to {request.args['set']} on {request.args.get('id', '')[:80]}.",
            }
        elif request.args.get("missing"):
            banner = {"tone": "bad", "text": "No such failed task (it may have been deleted)."}
        elif request.args.get("error"):
            banner = {"tone": "bad", "text": request.args["error"][:200]}
        page = render(
            PAGE,
            title="Operations",
            active="operations",
            poll=POLL_MS,
            banner=banner,
            topic=SWEEP_JOB.topic,
            body=SWEEP_JOB.body,
            rows=trusted(summary_fragment(failed_filter)),
            query=urlencode({"failed": failed_filter} if failed_filter else {}),
        )
        return html_response(page)

    @blueprint.get("/operations/rows")
    def operations_rows() -> Response:
        return html_response(summary_fragment(request.args.get("failed", "")))

    @blueprint.get("/operations/ledger")
    def ledger_page() -> Response:
        filters = {name: request.args.get(name, "").strip()[:200] for name in ("state", "clinic", "kind")}
        where = [
            (field, filters[name]) for name, field in (("state", "state"), ("clinic", "clinic_id"), ("kind", "kind"))
        ]
        found = paged(data, LEDGER, [(field, value) for field, value in where if value], "updated_at", LEDGER_PAGE_SIZE)
        seen = {str(doc.get("kind")) for _, doc in found.docs if doc.get("kind")}
        kinds = sorted((seen | set(LEDGER_KINDS) | {filters["kind"]}) - {""})
        page = render(
            LEDGER_PAGE,
            title="Ledger",
            active="operations",
            filters=filters,
            states=LEDGER_STATES,
            clinics=data.clinic_names(),
            kinds=[(kind, kind_label(kind)) for kind in kinds],
            paged=found,
            base="/operations/ledger",
            filter_query=urlencode({name: value for name, value in filters.items() if value}),
            kind_label=kind_label,
        )
        return html_response(page)

    @blueprint.get("/operations/docs/<collection>/<path:doc_id>")
    def document_page(collection: str, doc_id: str) -> Response:
        if collection not in BROWSABLE:
            return html_response("<p>Not a collection the console shows.</p>", status=404)
        problem, doc = None, None
        try:
            found = data.document(collection, doc_id)
            doc = {name: plain(value) for name, value in sorted(found.items())} if found is not None else None
        except ConsoleDataError as error:
            problem = str(error)
        message_id = (doc or {}).get("provider_message_id") if collection == LEDGER else None
        page = render(
            DOC_PAGE,
            title=f"{collection}/{doc_id[:40]}",
            active="operations",
            collection=collection,
            doc_id=doc_id[:1500],
            doc=doc,
            problem=problem,
            edits=FAILED_TASK_EDITS,
            message_id=message_id if sandbox.outbox.get(str(message_id or "")) else None,
            pretty=_pretty,
        )
        return html_response(page, status=404 if doc is None and problem is None else 200)

    @blueprint.post("/operations/failed/<path:doc_id>/status")
    def set_status(doc_id: str) -> Response:
        status = request.form.get("status", "")
        wants_json = request.accept_mimetypes.best == "application/json"
        if status not in FAILED_TASK_EDITS:
            return _answer(wants_json, 400, {"error": f"status must be one of {', '.join(FAILED_TASK_EDITS)}"})
        try:
            found = data.set_failed_task_status(doc_id, status)
        except ConsoleDataError as error:
            return _answer(wants_json, 503, {"error": str(error)}, back={"error": str(error)})
        log("INFO", "console: failed task status set", failed_task=doc_id[:200], status=status, found=found)
        if not found:
            return _answer(wants_json, 404, {"error": "no such failed task"}, back={"missing": "1"})
        if request.form.get("back") == "doc" and not wants_json:
            return redirect(f"/operations/docs/{FAILED_TASKS}/{doc_id}", code=303)
        return _answer(wants_json, 200, {"id": doc_id, "status": status}, back={"set": status, "id": doc_id})

    @blueprint.post("/operations/sweep")
    def sweep_now() -> Response:
        wants_json = request.accept_mimetypes.best == "application/json"
        try:
            message_id = data.publish(SWEEP_JOB.topic, SWEEP_JOB.body.encode())
        except ConsoleDataError as error:
            return _answer(wants_json, 503, {"error": str(error)}, back={"error": str(error)})
        log("INFO", "console: sweep published", topic=SWEEP_JOB.topic, pubsub_message_id=message_id)
        return _answer(
            wants_json, 200, {"topic": SWEEP_JOB.topic, "message_id": message_id}, back={"swept": message_id}
        )


def _answer(wants_json: bool, status: int, payload: dict[str, Any], back: dict[str, str] | None = None) -> Response:
    """JSON for scripts (the demo), a redirect back to the page (with a banner) for a person."""
    if wants_json:
        response = jsonify(payload)
        response.status_code = status
        return response
    if back is None:
        return html_response("<p>Bad request.</p>", status=status)
    return redirect(f"/operations?{urlencode(back)}#failed", code=303)
