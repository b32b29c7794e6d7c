"""A campaign as its document says (campaigns/{id}), its states and the transitions between them.

Parsed once, completely: a broken document is InvalidDocument naming the field (the DocReader style of
shared/contract/models.py). Only shared/campaigns/lifecycle.py writes `status` (docs/campaigns.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from typing import Any

from shared.campaigns.wording import TemplateError, check_template
from shared.contract.models import MAX_LIST_ITEMS, DocReader
from shared.platform.errors import InvalidDocument

COLLECTION = "campaigns"
MAX_TEMPLATE_CHARS = 1000
DEFAULT_DAILY_CAP = 1
_HOUR = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_URL = re.compile(r"https?://[^\s{}]{1,500}")


class Status(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # waiting for its window; its plan task runs at window.start
    SENDING = "sending"
    PAUSED = "paused"  # nothing new goes out; resume → sending
    DONE = "done"
    CANCELLED = "cancelled"


# Every allowed transition: draft → scheduled → sending → done; scheduled/sending → paused → sending (resume);
# anything not finished → cancelled.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.SCHEDULED, Status.CANCELLED}),
    Status.SCHEDULED: frozenset({Status.SENDING, Status.PAUSED, Status.CANCELLED}),
    Status.SENDING: frozenset({Status.DONE, Status.PAUSED, Status.CANCELLED}),
    Status.PAUSED: frozenset({Status.SENDING, Status.CANCELLED}),
    Status.DONE: frozenset(),
    Status.CANCELLED: frozenset(),
}


@dataclass(frozen=True)
class Audience:
    """Which of the clinic's patients the campaign is for (marketing consent is always required on top)."""

    last_visit_within_days: int | None = None  # a completed appointment within this many days
    services: tuple[str, ...] = ()  # a completed appointment for one of these services (any, when empty)
    tags: tuple[str, ...] = ()  # the patient carries one of these tags (any, when empty)

    def to_doc(self) -> dict[str, Any]:
        return {
            "last_visit_within_days": self.last_visit_within_days,
            "services": list(self.services),
            "tags": list(self.tags),
        }


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def clamp(self, moment: datetime) -> datetime:
        """`moment`, or the window's start when it is earlier."""
        return max(moment, self.start)


@dataclass(frozen=True)
class Estimate:
    recipients: int
    segments: int  # per message
    cost_cents: int

    def to_doc(self) -> dict[str, int]:
        return {"recipients": self.recipients, "segments": self.segments, "cost_cents": self.cost_cents}


@dataclass(frozen=True)
class HistoryEntry:
    status: Status
    at: datetime
    by: str


@dataclass(frozen=True)
class Campaign:
    id: str
    clinic_id: str
    name: str  # an internal label, never sent
    status: Status
    audience: Audience
    template: str
    link: str | None
    window: Window
    history: tuple[HistoryEntry, ...] = ()
    estimate: Estimate | None = None
    planned: int | None = None  # ledger entries written by its batches so far
    batched: bool = False  # the last batch ran: every recipient has its ledger entry
    round: int = 0  # dispatch round: a resume dispatches the unsent messages again as a new round
    cancel_acknowledged_at: datetime | None = None

    @property
    def open(self) -> bool:
        """Not finished: it may still send."""
        return bool(TRANSITIONS[self.status])

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> Campaign:
        r = DocReader(COLLECTION, doc_id, data)
        status = Status(r.choice("status", tuple(Status)))
        audience = DocReader(COLLECTION, doc_id, r.map("audience"))
        message = DocReader(COLLECTION, doc_id, r.map("message"))
        window = DocReader(COLLECTION, doc_id, r.map("window"))
        start, end = window.instant("start"), window.instant("end")
        if not start < end:
            r.fail("window.end", "must come after window.start")
        link = message.text("link", required=False) or None
        if link is not None and not _URL.fullmatch(link):
            r.fail("message.link", "must be an http(s) URL")
        template = message.text("template", max_chars=MAX_TEMPLATE_CHARS)
        try:  # a template the platform wrote is checked as ops checks one: only our merge fields, no format
            check_template(template, has_link=link is not None)
        except TemplateError as bad:
            r.fail("message.template", str(bad))
        days = audience.raw("last_visit_within_days", required=False)
        if days is not None:
            days = audience.integer("last_visit_within_days", minimum=1)
        estimate = r.map("estimate")
        return cls(
            id=doc_id,
            clinic_id=r.text("clinic_id"),
            name=r.text("name", required=False),
            status=status,
            audience=Audience(days, _words(audience, "services"), _words(audience, "tags")),
            template=template,
            link=link,
            window=Window(start, end),
            history=tuple(_history(r)),
            estimate=_estimate(DocReader(COLLECTION, doc_id, estimate)) if estimate else None,
            planned=r.integer("planned", minimum=0) if r.raw("planned", required=False) is not None else None,
            batched=r.flag("batched"),
            round=r.integer("round", default=0, minimum=0),
            cancel_acknowledged_at=r.instant("cancel_acknowledged_at", required=False),
        )


def _words(reader: DocReader, name: str) -> tuple[str, ...]:
    values = reader.raw(name, required=False) or []
    if not isinstance(values, list) or len(values) > MAX_LIST_ITEMS:
        reader.fail(name, f"must be a list of at most {MAX_LIST_ITEMS} names")
    if not all(isinstance(value, str) and value.strip() for value in values):
        reader.fail(name, "must list non-empty names")
    return tuple(value.strip() for value in values)


def _history(reader: DocReader) -> list[HistoryEntry]:
    raw = reader.raw("history", required=False) or []
    if not isinstance(raw, list):
        reader.fail("history", "must be a list")
    entries = []
    for index, item in enumerate(raw):
        entry = DocReader(COLLECTION, reader.doc_id, item if isinstance(item, dict) else None)
        try:
            entries.append(
                HistoryEntry(Status(entry.choice("status", tuple(Status))), entry.instant("at"), entry.text("by"))
            )
        except InvalidDocument:
            reader.fail(f"history[{index}]", "must be {status, at, by}")
    return entries


def _estimate(reader: DocReader) -> Estimate:
    return Estimate(
        reader.integer("recipients", minimum=0),
        reader.integer("segments", minimum=0),
        reader.integer("cost_cents", minimum=0),
    )


@dataclass(frozen=True)
class Marketing:
    """The sending side of a clinic's `marketing` settings (clinics/{id}.marketing; each optional): its cap,
    hours and price. The texting side (keyword, program name, frequency) is shared/contract/models.py's
    Marketing, read with the clinic; each field is read in one place."""

    daily_cap: int = DEFAULT_DAILY_CAP
    hours: tuple[time, time] | None = None  # recipient-local; narrows the legal window
    price_per_segment_cents: float = 0.0

    @classmethod
    def of_clinic(cls, clinic_id: str, data: Any) -> Marketing:
        r = DocReader("clinics", clinic_id, DocReader("clinics", clinic_id, data).map("marketing"))
        hours = r.map("hours")
        window = None
        if hours:
            window = (
                _hour(r, "marketing.hours.start", hours.get("start")),
                _hour(r, "marketing.hours.end", hours.get("end")),
            )
            if not window[0] < window[1]:
                r.fail("marketing.hours", "must end after it starts")
        price = r.raw("price_per_segment_cents", required=False)
        if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price < 0):
            r.fail("marketing.price_per_segment_cents", "must be a number of cents, 0 or more")
        return cls(
            daily_cap=r.integer("daily_cap", default=DEFAULT_DAILY_CAP, minimum=1),
            hours=window,
            price_per_segment_cents=float(price or 0),
        )


def _hour(reader: DocReader, name: str, raw: Any) -> time:
    if not isinstance(raw, str) or not _HOUR.fullmatch(raw):
        reader.fail(name, "must be a 24-hour time like 09:00")
    hours, minutes = raw.split(":")
    return time(int(hours), int(minutes))
