"""Outbox: every SMS and email the sandbox accepted or received, newest first, live, searchable, with one
page per message (its full body, the HTML part in a sandboxed iframe, and its delivery timeline)."""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request
from werkzeug.utils import secure_filename

from local.sandbox.console.data import ConsoleDataError, plain
from local.sandbox.console.layout import html_response, render, trusted
from local.sandbox.console.messages import Enricher, Shown, kind_label, timeline
from shared.platform.masking import mask_address

if TYPE_CHECKING:
    from local.sandbox.console import Console

PAGE_SIZE = 100  # rows per page unless ?size= says (bounded): the outbox holds up to 50,000 messages
PAGE_SIZES = (10, 200)
FILTERS = ("q", "clinic", "channel", "status", "kind", "direction")

ROWS = "outbox_rows.html"

PAGE = "outbox.html"

MESSAGE = "message.html"

TIMELINE = "message_timeline.html"

RAW = "message_raw.html"

DOWNLOADABLE = {"text/csv", "text/plain", "application/pdf", "application/json"}  # else octet-stream


def raw_record(record: dict[str, Any]) -> dict[str, Any]:
    """The outbox record as stored, for the raw view: addresses masked as everywhere in the console, an
    attachment's base64 content replaced by its size (it is downloadable on its own)."""
    shown = dict(record)
    shown["to"], shown["from"] = mask_address(record["to"]), mask_address(record["from"])
    shown["attachments"] = [
        {**attachment, "content": f"<{len(_decoded(attachment))} bytes, base64>"}
        for attachment in record["attachments"]
    ]
    return shown


def provider_headers(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """What the provider's API received, by the names it uses: Twilio's form fields, SendGrid's headers
    and fields (masked). Neither API takes a MIME message, so there is no MIME source to show."""
    if record["channel"] == "sms":
        return [
            ("MessageSid", record["id"]),
            ("Direction", {"outbound": "outbound-api", "reply": "outbound-reply"}.get(record["direction"], "inbound")),
            ("To", mask_address(record["to"])),
            ("From", mask_address(record["from"])),
            ("MessagingServiceSid", record["messaging_service_sid"]),
            ("AccountSid", record["account_sid"]),
            ("NumSegments", record["num_segments"]),
            ("NumMedia", len(record["media_urls"])),
            ("StatusCallback", record["status_callback"]),
            ("InReplyTo", record.get("in_reply_to")),
        ]
    return [
        ("X-Message-Id", record["id"]),
        ("From", mask_address(record["from"])),
        ("To", mask_address(record["to"])),
        ("Subject", record["subject"]),
        (
            "Content-Types",
            ", ".join(kind for kind, part in (("text/plain", "text"), ("text/html", "html")) if record[part]),
        ),
        ("custom_args", json.dumps(record["custom_args"], ensure_ascii=False)),
        *((f"Attachment {n + 1}", f"{a['filename']} ({a['type']})") for n, a in enumerate(record["attachments"])),
    ]


def _decoded(attachment: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(str(attachment.get("content") or ""), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _filters() -> dict[str, str]:
    return {name: request.args.get(name, "").strip()[:200] for name in FILTERS}


def page_size(raw: str | None, default: int, bounds: tuple[int, int] = PAGE_SIZES) -> int:
    """A page size asked for in the query, kept within bounds; anything unreadable is the default."""
    if not raw or not raw.isascii() or not raw.isdigit():
        return default
    return max(bounds[0], min(bounds[1], int(raw)))


def _cursor() -> int | None:
    """?before=<arrival number>: the page of messages that arrived before that one (older), newest first."""
    raw = request.args.get("before", "")
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _selected(rows: list[Shown], filters: dict[str, str]) -> list[Shown]:
    chosen = []
    for row in rows:
        message = row.message
        if filters["clinic"] and row.clinic_id != filters["clinic"]:
            continue
        if filters["channel"] and message["channel"] != filters["channel"]:
            continue
        if filters["status"] and message["status"] != filters["status"]:
            continue
        if filters["kind"] and row.kind != filters["kind"]:
            continue
        if filters["direction"] and message["direction"] != filters["direction"]:
            continue
        if filters["q"] and not row.matches(filters["q"]):
            continue
        chosen.append(row)
    return chosen


def routes(blueprint: Blueprint, console: Console) -> None:
    sandbox, data = console.sandbox, console.data

    def rows_fragment(filters: dict[str, str]) -> tuple[str, list[Shown], Enricher]:
        enricher = Enricher(data)
        every = enricher.enrich(reversed(sandbox.outbox.list()))  # newest arrival first
        chosen = _selected(every, filters)
        before, size = _cursor(), page_size(request.args.get("size"), PAGE_SIZE)
        older = [row for row in chosen if before is None or row.message["seq"] < before]
        shown = older[:size]
        kept = {name: value for name, value in filters.items() if value}
        if size != PAGE_SIZE:
            kept["size"] = str(size)
        fragment = render(
            ROWS,
            rows=shown,
            matched=len(chosen),
            total=len(every),
            skipped=len(chosen) - len(older),
            newer=urlencode(kept) if before is not None else None,
            older=urlencode({**kept, "before": shown[-1].message["seq"]}) if len(older) > len(shown) else None,
            refusals=len(sandbox.outbox.refusals()),
            problem=enricher.problem,
        )
        return fragment, every, enricher

    @blueprint.get("/")
    def outbox_page() -> Response:
        filters = _filters()
        fragment, every, enricher = rows_fragment(filters)
        clinics = {row.clinic_id: row.clinic_name for row in every if row.clinic_id}
        for clinic in enricher.clinics():
            clinics.setdefault(clinic.id, clinic.name)
        kinds = sorted({row.kind for row in every if row.kind})
        statuses = Counter(row.message["status"] for row in every)
        selects = [
            ("clinic", "Clinic", sorted(clinics.items(), key=lambda item: item[1].lower())),
            ("channel", "Channel", [("sms", "SMS"), ("email", "email")]),
            ("kind", "Kind", [(kind, kind_label(kind)) for kind in kinds]),
            ("status", "Status", [(status, f"{status} ({count})") for status, count in sorted(statuses.items())]),
            ("direction", "Direction", [("outbound", "sent"), ("reply", "automatic reply"), ("inbound", "received")]),
        ]
        paging = {name: request.args[name] for name in ("before", "size") if request.args.get(name)}
        query = urlencode({name: value for name, value in filters.items() if value} | paging)
        page = render(
            PAGE,
            title="Outbox",
            active="outbox",
            events=True,
            filters=filters,
            selects=selects,
            rows=trusted(fragment),
            query=query,
            active_filters=any(filters.values()),
        )
        return html_response(page)

    @blueprint.get("/outbox/rows")
    def outbox_rows() -> Response:
        return html_response(rows_fragment(_filters())[0])

    def timeline_fragment(record: dict[str, Any], shown: Shown) -> str:
        ledger = None
        if shown.key:
            try:
                ledger = data.document("notifications", shown.key)
            except ConsoleDataError:
                ledger = None  # the timeline still shows what the sandbox knows
        return render(
            TIMELINE,
            steps=timeline(record, sandbox.outbox.refusals()),
            ledger={name: plain(value) for name, value in ledger.items()} if ledger else None,
        )

    @blueprint.get("/messages/<message_id>")
    def message_page(message_id: str) -> Response:
        records = sandbox.outbox.records(message_id)
        shown = Enricher(data).enrich(records)
        thread = None
        if records and records[0]["channel"] == "sms":
            from local.sandbox.console.conversations import thread_id

            thread = thread_id(records[0])
        page = render(
            MESSAGE,
            title="Message",
            active="outbox",
            events=True,
            records=shown,
            message_id=message_id[:80],
            thread=thread,
            timelines=[trusted(timeline_fragment(row.message, row)) for row in shown],
        )
        return html_response(page, status=200 if records else 404)

    @blueprint.get("/messages/<message_id>/timeline")
    def message_timeline(message_id: str) -> Response:
        records = sandbox.outbox.records(message_id)
        if not records:
            return html_response("<p class='muted'>No such message.</p>", status=404)
        shown = Enricher(data).enrich(records[:1])[0]
        return html_response(timeline_fragment(records[0], shown))

    @blueprint.get("/messages/<message_id>/raw")
    def message_raw(message_id: str) -> Response:
        records = sandbox.outbox.records(message_id)
        page = render(
            RAW,
            title="Message source",
            active="outbox",
            message_id=message_id[:80],
            records=[(provider_headers(record), raw_record(record)) for record in records],
            pretty=lambda value: json.dumps(value, indent=2, ensure_ascii=False, default=str),
        )
        return html_response(page, status=200 if records else 404)

    @blueprint.get("/messages/<message_id>/attachments/<int:index>")
    def attachment(message_id: str, index: int) -> Response:
        """An email's attachment as the recipient would save it (the report's CSV): never rendered here."""
        record = sandbox.outbox.get(message_id)
        attachments = (record or {}).get("attachments") or []
        if not 0 <= index < len(attachments):
            return html_response("<p class='muted'>No such attachment.</p>", status=404)
        found = attachments[index]
        kind = str(found.get("type") or "").split(";")[0].strip().lower()
        response = Response(_decoded(found), mimetype=kind if kind in DOWNLOADABLE else "application/octet-stream")
        filename = secure_filename(str(found.get("filename") or "")) or f"attachment-{index + 1}"
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response
