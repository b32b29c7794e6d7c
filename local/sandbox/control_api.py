"""The sandbox's JSON API (tests and scripts use it): health, messages, fault rules, inbound replies, status figures.

The pages a person uses are the console's (local/sandbox/console/)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request

from local.sandbox.faults import FaultError
from local.sandbox.twilio_api import E164

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox


def bad_request(message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = 400
    return response


def _seed_from_query() -> tuple[bool, int | None]:
    raw = request.args.get("seed")
    if raw is None:
        return False, None
    try:
        return True, int(raw)
    except ValueError:
        raise FaultError("'seed' must be an integer") from None


def _inbound_problem(spec: dict[str, Any]) -> str | None:
    for name in ("from", "to", "url"):
        if not isinstance(spec.get(name), str) or not spec[name].strip():
            return f"'{name}' is required"
    if not isinstance(spec.get("body", ""), str):
        return "'body' must be a string"
    if not E164.match(spec["from"].strip()):
        return "'from' must be an E.164 phone number"
    url = urlsplit(spec["url"].strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        return "'url' must be an absolute http(s) URL"
    return None


def control_blueprint(sandbox: Sandbox) -> Blueprint:
    """Routes a person or a test uses to look at and steer the sandbox."""
    control = Blueprint("control", __name__)

    @control.get("/healthz")
    def healthz() -> Response:
        return jsonify({"ok": True})

    @control.get("/_sandbox/status.json")
    def status_json() -> Response:
        return jsonify(sandbox.firestore_status.figures())

    @control.get("/_sandbox/messages")
    def list_messages() -> Response:
        args = request.args
        return jsonify(
            sandbox.outbox.list(
                to=args.get("to") or None, channel=args.get("channel") or None, direction=args.get("direction") or None
            )
        )

    @control.get("/_sandbox/messages/<message_id>")
    def get_message(message_id: str) -> Response:
        record = sandbox.outbox.get(message_id)
        if record is None:
            response = jsonify({"error": "no such message"})
            response.status_code = 404
            return response
        return jsonify(record)

    @control.delete("/_sandbox/messages")
    def clear_messages() -> Response:
        return jsonify({"deleted": sandbox.outbox.clear()})

    @control.get("/_sandbox/faults")
    def list_faults() -> Response:
        return jsonify(sandbox.faults.list())

    @control.post("/_sandbox/faults")
    def add_fault() -> Response:
        try:
            reseed, seed = _seed_from_query()
            if reseed:
                sandbox.faults.reseed(seed)
            fault = sandbox.add_fault(request.get_json(silent=True), source="api")
        except FaultError as error:
            return bad_request(str(error))
        response = jsonify(fault)
        response.status_code = 201
        return response

    @control.delete("/_sandbox/faults")
    def clear_faults() -> Response:
        try:
            reseed, seed = _seed_from_query()
        except FaultError as error:
            return bad_request(str(error))
        if reseed:
            sandbox.faults.reseed(seed)
        deleted = sandbox.faults.clear()
        sandbox.outbox.note_change()
        return jsonify({"deleted": deleted})

    @control.delete("/_sandbox/faults/<fault_id>")
    def remove_fault(fault_id: str) -> Response:
        removed = sandbox.faults.remove(fault_id)
        sandbox.outbox.note_change()
        response = jsonify({"deleted": int(removed)})
        response.status_code = 200 if removed else 404
        return response

    @control.get("/_sandbox/opt-outs")
    def list_opt_outs() -> Response:
        return jsonify(sandbox.opt_outs.list())

    @control.delete("/_sandbox/opt-outs")
    def clear_opt_outs() -> Response:
        return jsonify({"deleted": sandbox.opt_outs.clear()})

    @control.post("/_sandbox/inbound")
    def inbound() -> Response:
        spec = request.get_json(silent=True)
        if not isinstance(spec, dict):
            return bad_request("body must be a JSON object with from, to, body and url")
        problem = _inbound_problem(spec)
        if problem:
            return bad_request(problem)
        outcome = sandbox.courier.inbound(
            from_=spec["from"].strip(), to=spec["to"].strip(), body=spec.get("body", ""), url=spec["url"].strip()
        )
        response = jsonify(outcome)
        response.status_code = 502 if "error" in outcome else 200
        return response

    return control
