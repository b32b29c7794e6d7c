"""Twilio Messages API, the subset twilio-python's `client.messages.create()`, `.list()` and `.fetch()` use.

The list (GET .../Messages.json) answers like Twilio's Read Multiple Message Resources: filtered by To,
From and DateSent (=, <, >), newest first, paged by PageSize (default 50, at most 1000: error 20007) and
Page, in Twilio's paging JSON ({"messages": [...], "page", "page_size", "uri", "first_page_uri",
"next_page_uri", "previous_page_uri", "start", "end"}), which twilio-python follows page by page. The
task handler asks it before re-sending an SMS whose answer was lost (shared.messaging.providers).

Requests made with the account's test credentials are answered as Twilio answers them
(local/sandbox/test_credentials.py): magic numbers, no delivery, no status callbacks, no other resource.
"""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.datastructures import MultiDict

from local.sandbox import test_credentials
from local.sandbox.courier import API_VERSION, Delivery, new_message_sid
from local.sandbox.log import log
from local.sandbox.outbox import Message, Refusal, address_key, ledger_reference
from local.sandbox.twilio_errors import HTTP_STATUS_CODES, twilio_error_body
from shared.platform.masking import mask_address

if TYPE_CHECKING:
    from local.sandbox.state import Sandbox

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
NANP = re.compile(r"^\+1\d{10}$")  # +1 (North American) numbers have exactly ten digits after the 1


def valid_recipient(number: str) -> bool:
    """What Twilio accepts as a To number: E.164, and a full ten-digit number in the +1 plan."""
    return bool(E164.match(number)) and (not number.startswith("+1") or bool(NANP.match(number)))


SHORT_CODE = re.compile(r"^\d{5,6}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
MAX_BODY_CHARS = 1600

_GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many SMS segments the carrier bills: GSM-7 (160/153 per part) or UCS-2 (70/67)."""
    if not body:
        return 1
    if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in body):
        septets = len(body) + sum(ch in _GSM7_EXTENDED for ch in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def validate_message(form: MultiDict[str, str]) -> int | None:
    """The Twilio error code this create-message form earns, or None if Twilio would accept it."""
    to = form.get("To", "").strip()
    sender = form.get("From", "").strip()
    service = form.get("MessagingServiceSid", "").strip()
    body = form.get("Body", "")
    if not to:
        return 21604
    if not valid_recipient(to):
        return 21211
    if not sender and not service:
        return 21603
    if sender and not (
        E164.match(sender) or SHORT_CODE.match(sender) or ALPHANUMERIC_SENDER.match(sender) or SERVICE_SID.match(sender)
    ):
        return 21212
    if not body.strip() and not form.getlist("MediaUrl"):
        return 21602
    if len(body) > MAX_BODY_CHARS:
        return 21617
    return None


def twilio_error(
    code: int, status: int | None = None, *, retry_after: int | None = None, message: str | None = None
) -> Response:
    payload = twilio_error_body(code, status, message)
    response = jsonify(payload)
    response.status_code = payload["status"]
    if payload["status"] == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    if payload["status"] == 429:
        response.headers["Retry-After"] = str(1 if retry_after is None else retry_after)
    return response


def message_resource(message: dict[str, Any], account_sid: str) -> dict[str, Any]:
    """A Message resource in the JSON shape twilio-python's MessageInstance parses."""
    created = format_datetime(_parse_iso(message["created_at"]), usegmt=True)
    updated = format_datetime(_parse_iso(message["updated_at"]), usegmt=True)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message['id']}.json"
    sent = message["status"] in ("sent", "delivered", "undelivered")
    return {
        "sid": message["id"],
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "messaging_service_sid": message["messaging_service_sid"],
        "to": message["to"],
        "from": message["from"],
        "body": message["body"],
        "status": message["status"],
        "direction": {"outbound": "outbound-api", "reply": "outbound-reply"}.get(message["direction"], "inbound"),
        "num_segments": str(message["num_segments"] or 1),
        "num_media": str(len(message["media_urls"])),
        "error_code": message["error_code"],
        "error_message": None,
        "price": None,
        "price_unit": "USD",
        "date_created": created,
        "date_updated": updated,
        "date_sent": updated if sent else None,
        "uri": uri,
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
    }


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
LIST_FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")
_SENT_STATUSES = ("sent", "delivered", "undelivered", "read")


class ListError(ValueError):
    """A list query Twilio would refuse: (error code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _date_sent(message: dict[str, Any]) -> datetime | None:
    """When the message was sent, as Twilio's date_sent (None while it is queued)."""
    return _parse_iso(message["updated_at"]) if message["status"] in _SENT_STATUSES else None


def _date_bounds(value: str) -> tuple[datetime, datetime]:
    """[first, last] instants a DateSent value names: a whole UTC day (YYYY-MM-DD) or one instant."""
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            first = datetime.combine(day, time(0), timezone.utc)
            return first, first + timedelta(days=1) - timedelta(microseconds=1)
        instant = _parse_iso(value)
    except ValueError:
        raise ListError(20001, f"Invalid DateSent value {value[:40]!r}") from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    return instant, instant


def _matches_dates(sent: datetime | None, query: Mapping[str, str]) -> bool:
    bounds = {name: _date_bounds(query[name]) for name in ("DateSent", "DateSent<", "DateSent>") if query.get(name)}
    if not bounds:
        return True
    if sent is None:
        return False
    on = bounds.get("DateSent")
    before = bounds.get("DateSent<")
    after = bounds.get("DateSent>")
    return (
        (on is None or on[0] <= sent <= on[1])
        and (before is None or sent <= before[1])
        and (after is None or sent >= after[0])
    )


def _whole(query: Mapping[str, str], name: str, default: int, low: int) -> int:
    raw = query.get(name, "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < low:
        raise ListError(20001, f"Invalid {name} value {raw[:20]!r}")  # the sandbox's own code for a bad value
    return int(raw)


def message_page(
    records: list[dict[str, Any]], query: Mapping[str, str], account_sid: str, path: str
) -> dict[str, Any]:
    """One page of the account's SMS matching the query, newest first, in Twilio's paging JSON shape."""
    page_size = _whole(query, "PageSize", DEFAULT_PAGE_SIZE, 1)
    if page_size > MAX_PAGE_SIZE:
        raise ListError(20007, f"Page size too large: the maximum is {MAX_PAGE_SIZE}")
    page = _whole(query, "Page", 0, 0)
    to, sender = query.get("To"), query.get("From")
    chosen = [
        record
        for record in records
        if record["channel"] == "sms"
        and record["account_sid"] == account_sid
        and (not to or address_key(record["to"]) == address_key(to))
        and (not sender or address_key(record["from"]) == address_key(sender))
        and _matches_dates(_date_sent(record), query)
    ]
    chosen.sort(key=lambda record: record["created_at"], reverse=True)  # stable: same instant keeps arrival order
    start = page * page_size
    shown = chosen[start : start + page_size]
    kept = {name: query[name] for name in LIST_FILTERS if query.get(name)}

    def uri(number: int) -> str:
        return f"{path}?{urlencode({**kept, 'PageSize': page_size, 'Page': number})}"

    return {
        "messages": [message_resource(record, account_sid) for record in shown],
        "page": page,
        "page_size": page_size,
        "start": start,
        "end": start + max(len(shown) - 1, 0),
        "uri": uri(page),
        "first_page_uri": uri(0),
        "next_page_uri": uri(page + 1) if start + page_size < len(chosen) else None,
        "previous_page_uri": uri(page - 1) if page > 0 else None,
    }


def outbound_sms(form: MultiDict[str, str], account_sid: str, to: str, fault_note: str | None) -> Message:
    """The outbox's record of an SMS the API accepted: queued, with what the create form asked for."""
    body = form.get("Body", "")
    return Message(
        id=new_message_sid(),
        channel="sms",
        direction="outbound",
        to=to,
        from_=form.get("From", "").strip() or None,
        status="queued",
        body=body,
        account_sid=account_sid,
        messaging_service_sid=form.get("MessagingServiceSid", "").strip() or None,
        num_segments=num_segments(body),
        media_urls=form.getlist("MediaUrl"),
        status_callback=form.get("StatusCallback", "").strip() or None,
        fault=fault_note,
    )


def _fault_note(fault: Any) -> str | None:
    """How a fault touched an accepted message, in words for the console (None: it did not)."""
    if fault is None:
        return None
    if fault.kind == "timeout":
        return f"{fault.id} timeout: accepted, the answer lost"
    return f"{fault.id} {fault.kind.replace('_', ' ')}"


def twilio_blueprint(sandbox: Sandbox) -> Blueprint:
    """Routes under /2010-04-01/Accounts/{AccountSid}/ answering like api.twilio.com."""
    api = Blueprint("twilio", __name__, url_prefix=f"/{API_VERSION}/Accounts/<account_sid>")

    @api.before_request
    def authenticate() -> Response | None:
        # Any account SID is welcome, as long as the caller knows the sandbox's auth token; the test account's
        # SID needs the test token, and then only creates messages (Twilio's test credentials).
        auth = request.authorization
        account_sid = (request.view_args or {}).get("account_sid", "")
        g.test_credentials = account_sid == sandbox.settings.test_account_sid
        token = sandbox.settings.test_auth_token if g.test_credentials else sandbox.settings.auth_token
        if (
            auth is None
            or auth.type != "basic"
            or auth.username != account_sid
            or not hmac.compare_digest((auth.password or "").encode(), token.encode())
        ):
            return twilio_error(20003)
        if g.test_credentials and not (request.method == "POST" and request.path.endswith("/Messages.json")):
            return twilio_error(test_credentials.FORBIDDEN)
        return None

    @api.post("/Messages.json")
    def create_message(account_sid: str) -> Response:
        form = request.form
        sender = form.get("From", "").strip() or form.get("MessagingServiceSid", "").strip() or None

        def refused(response: Response, code: int, fault_id: str | None = None) -> Response:
            """Answer with Twilio's error, and keep the attempt for the console's timeline."""
            sandbox.outbox.refuse(
                Refusal(
                    channel="sms",
                    to=form.get("To", "").strip(),
                    from_=sender,
                    http_status=response.status_code,
                    code=code,
                    summary=form.get("Body", "")[:MAX_BODY_CHARS],
                    fault=fault_id,
                    ledger=ledger_reference(form.get("StatusCallback", "").strip(), None),
                )
            )
            return response

        code = validate_message(form)
        if g.test_credentials:
            code = test_credentials.refusal(form.get("To", "").strip(), form.get("From", "").strip(), code)
        if code is not None:
            to = form.get("To", "").strip()
            message = f"The 'To' number {to} is not a valid phone number." if code == 21211 else None
            log("INFO", "sms rejected", code=code, recipient=mask_address(to))
            return refused(twilio_error(code, message=message), code)
        to = form["To"].strip()
        if g.test_credentials:
            return accepted_test_message(account_sid, to)
        senders = [form.get("From", ""), form.get("MessagingServiceSid", "")]
        if sandbox.opt_outs.blocks(senders=senders, patient=to):
            log("INFO", "sms rejected: recipient opted out", code=21610, recipient=mask_address(to))
            return refused(twilio_error(21610), 21610)
        fault = sandbox.faults.take("sms", [to])
        if fault and fault.kind == "timeout" and not fault.accept:
            log("INFO", "sms fault: hanging", fault=fault.id, recipient=mask_address(to))
            sandbox.hang(fault.seconds)
            return refused(twilio_error(20503), 20503, fault.id)
        if fault and fault.kind in ("http", "twilio_code"):
            status = fault.status or 500
            code = fault.code if fault.kind == "twilio_code" and fault.code else HTTP_STATUS_CODES.get(status, status)
            log("INFO", "sms fault: error answer", fault=fault.id, code=code, recipient=mask_address(to))
            return refused(twilio_error(code, status, retry_after=fault.retry_after), code, fault.id)

        record = sandbox.outbox.add(outbound_sms(form, account_sid, to, _fault_note(fault)))
        failure = fault if fault and fault.kind == "delivery_failure" else None
        sandbox.courier.dispatch(
            Delivery(
                sid=record["id"],
                to=to,
                from_=record["from"],
                account_sid=account_sid,
                messaging_service_sid=record["messaging_service_sid"],
                status_callback=record["status_callback"],
                final_status=(failure.final_status or "undelivered") if failure else "delivered",
                error_code=failure.code if failure else None,
            )
        )
        log(
            "INFO",
            "sms accepted",
            message_sid=record["id"],
            recipient=mask_address(to),
            segments=record["num_segments"],
            fault=fault.id if fault else None,
        )
        if fault and fault.kind == "timeout":  # accepted, but the answer is lost: the caller times out
            sandbox.hang(fault.seconds)
        response = jsonify(message_resource(record, account_sid))
        response.status_code = 201
        return response

    def accepted_test_message(account_sid: str, to: str) -> Response:
        """Accepted, never delivered: recorded as Twilio answered it (queued), with no status callback."""
        record = sandbox.outbox.add(outbound_sms(request.form, account_sid, to, None))
        log("INFO", "sms accepted with test credentials", message_sid=record["id"], recipient=mask_address(to))
        response = jsonify(message_resource(record, account_sid))
        response.status_code = 201
        return response

    @api.get("/Messages.json")
    def list_messages(account_sid: str) -> Response:
        try:
            page = message_page(sandbox.outbox.list(), request.args, account_sid, request.path)
        except ListError as error:
            return twilio_error(error.code, 400, message=str(error))
        log("INFO", "sms list", results=len(page["messages"]), page=page["page"])
        return jsonify(page)

    @api.get("/Messages/<message_sid>.json")
    def fetch_message(account_sid: str, message_sid: str) -> Response:
        record = sandbox.outbox.get(message_sid)
        if record is None or record["channel"] != "sms" or record["account_sid"] != account_sid:
            return twilio_error(20404, message=f"The requested resource {request.path} was not found")
        return jsonify(message_resource(record, account_sid))

    return api
