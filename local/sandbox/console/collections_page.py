"""Collections: the documents the waitlist and the reorder check write, which the Operations page only
counted or linked one at a time: slot_offers, patient_requests (what the front desk must act on, such as
"move me to Friday"; the patient's own words are the inbound SMS it links to) and purchase_orders, and
every failed_tasks doc (the Operations page shows the newest 200 with their buttons). One
page each, newest first, filtered by clinic and status, a Firestore cursor to the next page; values pass
through `plain` like every Firestore value the console shows (phones and emails masked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from local.sandbox.console.data import ConsoleData, ConsoleDataError, plain
from local.sandbox.console.layout import html_response, render
from local.sandbox.console.outbox_view import page_size

if TYPE_CHECKING:
    from local.sandbox.console import Console

PAGE_SIZE = 50

PAGE = "collection.html"


@dataclass(frozen=True)
class CollectionView:
    name: str
    title: str
    what: str
    order: str  # the time field a page is sorted by, newest first
    statuses: tuple[str, ...]
    columns: tuple[str, ...]


VIEWS = (
    CollectionView(
        "patient_requests",
        "Patient requests",
        "what a patient asked by SMS that the front desk must act on (reschedule, cancel); never automatic",
        "received_at",
        ("open", "done"),
        ("kind", "source", "patient_id", "appointment_id", "message_sid"),
    ),
    CollectionView(
        "slot_offers",
        "Slot offers",
        "a cancelled slot offered to the waitlist, wave by wave, until one patient claims it",
        "created_at",
        ("open", "filled", "expired"),
        ("service_name", "start", "mode", "wave", "offered_entry_ids", "winner_entry_id", "expires_at"),
    ),
    CollectionView(
        "failed_tasks",
        "Failed tasks",
        "every task that failed for good or ran out of attempts; open one to set its status (retry, resolved)",
        "last_failed_at",
        ("open", "retry", "retried", "resolved"),
        ("task_type", "error_code", "http_status", "attempts", "first_failed_at"),
    ),
    CollectionView(
        "purchase_orders",
        "Purchase orders",
        "the reorder check's daily draft per clinic",
        "created_at",
        ("draft",),
        ("date", "lines", "truncated", "invalid_products"),
    ),
)
BY_NAME = {view.name: view for view in VIEWS}


@dataclass(frozen=True)
class Paged:
    """One page of a Firestore list as a page shows it, with the links to the first and the next page."""

    docs: list[tuple[str, dict[str, Any]]]
    size: int
    by_key: bool  # ordered by document id (every doc) rather than newest `order` first
    unordered: int  # matching docs the newest-first order cannot place (they lack its field)
    first: str | None  # query string of the first page; None when this is it
    next: str | None  # query string of the next page; None on the last
    problem: str | None


def paged(data: ConsoleData, collection: str, where: list[tuple[str, str]], order: str, default_size: int) -> Paged:
    """The page the request asks for (?after= cursor, ?size=, ?by=key), its filters kept in its links."""
    size = page_size(request.args.get("size"), default_size)
    after = request.args.get("after", "")[:1500] or None
    by_key = request.args.get("by") == "key"
    kept = {key: value for key, value in request.args.items() if key not in ("after", "size", "by") and value}
    kept |= ({"size": str(size)} if size != default_size else {}) | ({"by": "key"} if by_key else {})
    docs: list[tuple[str, dict[str, Any]]] = []
    problem, next_after, unordered = None, None, 0
    try:
        docs, next_after = data.page(collection, where, order=None if by_key else order, size=size, after=after)
        if not by_key and after is None:
            unordered = data.unordered(collection, where, order)
    except ConsoleDataError as error:
        problem = str(error)
    return Paged(
        docs=[(doc_id, {field: plain(value) for field, value in doc.items()}) for doc_id, doc in docs],
        size=size,
        by_key=by_key,
        unordered=unordered,
        first=urlencode(kept) if after else None,
        next=urlencode({**kept, "after": next_after}) if next_after else None,
        problem=problem,
    )


def cell(value: Any) -> str:
    """A value in a table cell: a list by its length, an instant as 'YYYY-MM-DD HH:MM:SS', else as text."""
    if isinstance(value, list):
        return f"{len(value)} item" + ("" if len(value) == 1 else "s")
    if value is None:
        return ""
    return str(value).replace("T", " ")[:19] if isinstance(value, str) and value[:4].isdigit() else str(value)


def routes(blueprint: Blueprint, console: Console) -> None:
    sandbox, data = console.sandbox, console.data

    @blueprint.get("/operations/collections/<name>")
    def collection_page(name: str) -> Response:
        view = BY_NAME.get(name)
        if view is None:
            return html_response("<p>Not a collection the console lists.</p>", status=404)
        filters = {key: request.args.get(key, "").strip()[:200] for key in ("clinic", "status")}
        where = [
            (field, filters[key]) for key, field in (("clinic", "clinic_id"), ("status", "status")) if filters[key]
        ]
        found = paged(data, view.name, where, view.order, PAGE_SIZE)
        page = render(
            PAGE,
            title=view.title,
            active="operations",
            view=view,
            views=VIEWS,
            filters=filters,
            clinics=data.clinic_names(),
            paged=found,
            base=f"/operations/collections/{view.name}",
            filter_query=urlencode({key: value for key, value in filters.items() if value}),
            in_outbox=lambda sid: bool(sid) and sandbox.outbox.get(str(sid)) is not None,
            cell=cell,
        )
        return html_response(page)
