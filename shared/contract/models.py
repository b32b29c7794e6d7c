"""Typed, validated views of the documents the booking platform writes (docs/architecture.md, "Firestore contract").

Each `from_doc(doc_id, data)` fails loudly with `InvalidDocument` naming the collection, the document
and the field, so a malformed document becomes a clear, classified answer instead of a KeyError.
Texts are bounded (MAX_TEXT_CHARS, MAX_PREP_CHARS: a longer value breaks the contract), instants lie
between EARLIEST and LATEST, integers fit 64 bits: nothing downstream does super-linear work or
overflows on what the platform wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from typing import Any, Literal, NoReturn, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.contract.bodies import INT64, is_clean_text
from shared.platform.errors import InvalidDocument
from shared.platform.masking import mask_email

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOCALES = ("en", "es")
CURRENCY = re.compile(r"[A-Z]{3}")  # an ISO 4217 code; how each is written: shared/reports/money.py
APPOINTMENT_STATUSES = ("booked", "confirmed", "cancelled", "completed", "no_show")
WAITLIST_STATUSES = ("waiting", "offered", "booked", "removed")
CHANNELS = ("sms", "email")
# The collections the booking platform writes (docs/architecture.md, "Firestore contract").
CLINICS, PATIENTS, APPOINTMENTS, WAITLIST = "clinics", "patients", "appointments", "waitlist"
PRODUCTS = "products"  # the clinic's stock, read by the daily reorder check (docs/reports.md)
MAX_TEXT_CHARS = 200  # names, services, providers, phones, emails
MAX_PREP_CHARS = 4000  # prep_instructions: emailed whole, shortened for SMS
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def count_or_zero(value: Any) -> int:
    """A counter field as read (a generation, a wave): a whole number ≥ 0; missing or hand-broken, 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class DocReader:
    """Reads one document's fields, turning every problem into InvalidDocument(field=…): the contract
    documents here, and the ones this package writes (shared.messaging.ledger)."""

    def __init__(self, collection: str, doc_id: str, data: Any) -> None:
        self.collection, self.doc_id = collection, doc_id
        if not isinstance(data, dict):
            self.fail("(document)", "is missing or not a map")
        self.data: dict[str, Any] = data

    def fail(self, name: str, problem: str) -> NoReturn:
        raise InvalidDocument(self.collection, self.doc_id, name, problem)

    def raw(self, name: str, *, required: bool) -> Any:
        value = self.data.get(name)
        if value is None and required:
            self.fail(name, "is required")
        return value

    def text(self, name: str, *, required: bool = True, default: str = "", max_chars: int = MAX_TEXT_CHARS) -> str:
        value = self.raw(name, required=required)
        if value is None:
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(name, "must be a non-empty string")
        if len(value) > max_chars:
            self.fail(name, f"is longer than {max_chars} characters")
        if not is_clean_text(value):
            self.fail(name, "is not valid Unicode")
        return value.strip()

    def choice(self, name: str, options: tuple[str, ...], *, default: str | None = None) -> str:
        value = self.text(name, required=default is None, default=default or "")
        if value not in options:
            self.fail(name, f"must be one of {', '.join(options)}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.raw(name, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(name, "must be true or false")
        return value

    def integer(self, name: str, *, default: int | None = None, minimum: int | None = None) -> int:
        value = self.raw(name, required=default is None)
        if value is None:
            return default  # type: ignore[return-value]
        if isinstance(value, bool) or not isinstance(value, int) or not INT64[0] <= value <= INT64[1]:
            self.fail(name, "must be an integer")
        number: int = value
        if minimum is not None and number < minimum:
            self.fail(name, f"must be at least {minimum}")
        return number

    @overload
    def instant(self, name: str) -> datetime: ...
    @overload
    def instant(self, name: str, *, required: Literal[False]) -> datetime | None: ...

    def instant(self, name: str, *, required: bool = True) -> datetime | None:
        value = self.raw(name, required=required)
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            self.fail(name, "must be a timestamp")
        if not EARLIEST <= value < LATEST:
            self.fail(name, f"must lie between {EARLIEST.year} and {LATEST.year}")
        return value

    def phone(self, name: str, *, required: bool = False) -> str | None:
        """An E.164 number, or None when absent. A malformed number is kept: the provider judges it."""
        value = self.text(name, required=required, default="")
        return value or None

    def email(self, name: str, *, required: bool = False) -> str | None:
        value = self.text(name, required=required, default="")
        if value and not EMAIL.match(value):
            self.fail(name, "must be an email address")
        return value or None

    def map(self, name: str) -> dict[str, Any]:
        value = self.raw(name, required=False)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(name, "must be a map")
        return value


MAX_LIST_ITEMS = 50


@dataclass(frozen=True)
class FieldProblem:
    """A field of a document that is skipped rather than refused: named, its value masked, never whole."""

    field: str  # e.g. "manager_emails[2]"
    problem: str  # e.g. "is not an email address (j***@example)"


def _emails(reader: DocReader, name: str, problems: list[FieldProblem]) -> tuple[str, ...]:
    """The valid addresses of a list; each bad entry is skipped and noted (masked), so one typo in a
    manager's address never costs the clinic its reminders or the other managers their report."""
    values = reader.raw(name, required=False)
    if values is None:
        return ()
    if not isinstance(values, list):
        problems.append(FieldProblem(name, "is not a list of email addresses"))
        return ()
    if len(values) > MAX_LIST_ITEMS:
        problems.append(FieldProblem(name, f"has {len(values)} addresses; the first {MAX_LIST_ITEMS} are used"))
    valid = []
    for index, value in enumerate(values[:MAX_LIST_ITEMS]):
        if isinstance(value, str) and len(value) <= MAX_TEXT_CHARS and EMAIL.match(value.strip()):
            valid.append(value.strip())
        else:
            shown = mask_email(value[:MAX_TEXT_CHARS]) if isinstance(value, str) else type(value).__name__
            problems.append(FieldProblem(f"{name}[{index}]", f"is not an email address ({shown})"))
    return tuple(valid)


def _wall_time(reader: DocReader, name: str, raw: Any) -> time:
    if not isinstance(raw, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", raw):
        reader.fail(name, "must be a 24-hour time like 21:00")
    hours, minutes = raw.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class QuietHours:
    start: time = time(21, 0)
    end: time = time(8, 0)


@dataclass(frozen=True)
class WaitlistPolicy:
    mode: str = "broadcast"  # "broadcast": waves of wave_size patients; "sequential": one at a time
    wave_size: int = 3
    offer_ttl_minutes: int = 30  # how long each wave (or each patient, sequentially) has to answer
    max_offers_per_day: int = 3  # offers one patient may receive per clinic-local day
    min_lead_minutes: int = 120  # a freed slot starting sooner than this is not offered


# Words a clinic's marketing keyword may not be: Twilio's own (opt-out, opt-in, help) and the product's replies.
RESERVED_KEYWORDS = frozenset(
    "STOP STOPALL UNSUBSCRIBE CANCEL END QUIT REVOKE OPTOUT START UNSTOP YES HELP INFO Y SI C CONFIRM CONFIRMAR".split()
)
MARKETING_KEYWORD = re.compile(r"[A-Z0-9]{2,20}")


@dataclass(frozen=True)
class Marketing:
    """A clinic's marketing program as patients see it (docs/consent.md): the keyword that opts in by text,
    the program's name and frequency for the CTIA confirmation and HELP, the wording's version recorded
    with each keyword consent."""

    keyword: str = "JOIN"
    program_name: str | None = None  # None: the clinic's name
    frequency: str = "Up to 4 msgs/month"
    wording_version: str = "keyword-v1"


def _marketing(data: Any, problems: list[FieldProblem]) -> Marketing:
    """The clinic's `marketing` map; a bad field is noted and its default used (reminders never depend on it)."""
    if data is None:
        return Marketing()
    if not isinstance(data, dict):
        problems.append(FieldProblem("marketing", "is not a map"))
        return Marketing()
    values: dict[str, str] = {}
    for name in ("keyword", "program_name", "frequency", "wording_version"):
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > 60 or not is_clean_text(value):
            problems.append(FieldProblem(f"marketing.{name}", "is not a short text"))
            continue
        values[name] = " ".join(value.split())
    keyword = values.pop("keyword", "JOIN").upper()
    if not MARKETING_KEYWORD.fullmatch(keyword) or keyword in RESERVED_KEYWORDS:
        problems.append(
            FieldProblem("marketing.keyword", "must be one word of 2-20 letters or digits, not a reserved one")
        )
        keyword = "JOIN"
    return Marketing(keyword=keyword, **values)


SCORES = (1, 2, 3, 4, 5)  # a feedback survey's answers (docs/feedback.md)
CHECKIN_DAYS = (1, 2)  # how many days after a completed visit a clinic's check-in may go


@dataclass(frozen=True)
class FeedbackSettings:
    """A clinic's follow-ups (docs/feedback.md): the check-in after a visit (off unless set), the survey's
    routing: a score at or below `low_score_max` alerts the clinic, one at or above `review_min_score` gets
    the clinic's review link (none set: no review message)."""

    checkin_days: int | None = None
    low_score_max: int = 2
    review_min_score: int = 4
    review_url: str | None = None


def _feedback(data: Any, problems: list[FieldProblem]) -> FeedbackSettings:
    """The clinic's `feedback` map; a bad field is noted and its default used (reminders never depend on it)."""
    if data is None:
        return FeedbackSettings()
    if not isinstance(data, dict):
        problems.append(FieldProblem("feedback", "is not a map"))
        return FeedbackSettings()
    values: dict[str, Any] = {}
    checkin = data.get("checkin_days")
    if checkin is not None:
        if isinstance(checkin, int) and not isinstance(checkin, bool) and checkin in CHECKIN_DAYS:
            values["checkin_days"] = checkin
        else:
            problems.append(FieldProblem("feedback.checkin_days", "must be 1 or 2 (days after the visit)"))
    for name in ("low_score_max", "review_min_score"):
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value in SCORES:
            values[name] = value
        else:
            problems.append(FieldProblem(f"feedback.{name}", "must be a score from 1 to 5"))
    low, high = values.get("low_score_max", 2), values.get("review_min_score", 4)
    if low >= high:
        problems.append(FieldProblem("feedback.review_min_score", "must be above low_score_max"))
        values.pop("low_score_max", None)
        values.pop("review_min_score", None)
    url = data.get("review_url")
    if url is not None:
        if (
            isinstance(url, str)
            and len(url) <= MAX_TEXT_CHARS
            and re.fullmatch(r"https://[^\s<>\"'\\]+", url.strip())
            and url.isascii()
        ):
            values["review_url"] = url.strip()
        else:
            problems.append(FieldProblem("feedback.review_url", "must be an https:// link"))
    return FeedbackSettings(**values)


@dataclass(frozen=True)
class Clinic:
    id: str
    name: str
    timezone: str
    phone: str
    sms_from: str | None
    email_from: str | None
    manager_emails: tuple[str, ...] = ()
    inventory_emails: tuple[str, ...] = ()
    locale: str = "en"
    reminder_offsets_hours: tuple[int, ...] = (24, 2)
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    waitlist: WaitlistPolicy = field(default_factory=WaitlistPolicy)
    # Reserved for `python -m ops smoke`: SMS only with Twilio's test credentials, email in SendGrid's sandbox mode.
    smoke_test: bool = False
    currency: str | None = "USD"  # ISO 4217; None when the clinic's setting is not a code (noted in problems)
    marketing: Marketing = field(default_factory=Marketing)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    # Fields skipped rather than refused (a bad staff address, currency): the reports record them.
    problems: tuple[FieldProblem, ...] = ()

    def problems_of(self, name: str) -> list[FieldProblem]:
        """The skipped entries of one field (`manager_emails`, `inventory_emails`)."""
        return [p for p in self.problems if p.field == name or p.field.startswith(f"{name}[")]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> Clinic:
        r = DocReader("clinics", doc_id, data)
        zone_name = r.text("timezone")
        try:
            ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            r.fail("timezone", f"is not an IANA time zone ({zone_name[:40]!r})")
        sms_from = r.text("sms_from", required=False) or None
        if sms_from and not (E164.match(sms_from) or MESSAGING_SERVICE_SID.match(sms_from)):
            r.fail("sms_from", "must be an E.164 number or a Messaging Service SID (MG…)")
        problems: list[FieldProblem] = []
        managers = _emails(r, "manager_emails", problems)
        inventory = _emails(r, "inventory_emails", problems)
        currency = r.raw("currency", required=False)
        if currency is None:
            currency = "USD"
        elif not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
            problems.append(FieldProblem("currency", "is not an ISO 4217 code such as USD or EUR"))
            currency = None
        offsets = r.raw("reminder_offsets_hours", required=False)
        if offsets is None:
            offsets = [24, 2]
        if not isinstance(offsets, list) or not all(
            isinstance(o, int) and not isinstance(o, bool) and 0 < o <= 24 * 14 for o in offsets
        ):
            r.fail("reminder_offsets_hours", "must be a list of whole hours between 1 and 336")
        marketing = _marketing(r.raw("marketing", required=False), problems)
        feedback = _feedback(r.raw("feedback", required=False), problems)
        quiet = r.map("quiet_hours")
        policy = r.map("waitlist")
        waitlist_reader = DocReader("clinics", doc_id, policy)
        mode = waitlist_reader.choice("mode", ("broadcast", "sequential"), default="broadcast")
        return cls(
            id=doc_id,
            name=r.text("name"),
            timezone=zone_name,
            phone=r.text("phone"),
            sms_from=sms_from,
            email_from=r.email("email_from"),
            manager_emails=managers,
            inventory_emails=inventory,
            locale=r.choice("locale", LOCALES, default="en"),
            reminder_offsets_hours=tuple(sorted(set(offsets), reverse=True)),
            quiet_hours=QuietHours(
                start=_wall_time(r, "quiet_hours.start", quiet.get("start", "21:00")),
                end=_wall_time(r, "quiet_hours.end", quiet.get("end", "08:00")),
            ),
            waitlist=WaitlistPolicy(
                mode=mode,
                wave_size=waitlist_reader.integer("wave_size", default=3, minimum=1),
                offer_ttl_minutes=waitlist_reader.integer("offer_ttl_minutes", default=30, minimum=1),
                max_offers_per_day=waitlist_reader.integer("max_offers_per_day", default=3, minimum=1),
                min_lead_minutes=waitlist_reader.integer("min_lead_minutes", default=120, minimum=0),
            ),
            smoke_test=r.flag("smoke_test"),
            currency=currency,
            marketing=marketing,
            feedback=feedback,
            problems=tuple(problems),
        )


@dataclass(frozen=True)
class Patient:
    id: str
    clinic_id: str
    first_name: str
    last_name: str
    phone: str | None
    email: str | None
    locale: str | None
    preferred_channel: str
    sms_opt_out: bool
    email_opt_out: bool

    @property
    def has_sms_number(self) -> bool:
        return bool(self.phone and E164.match(self.phone))

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> Patient:
        r = DocReader("patients", doc_id, data)
        locale = r.text("locale", required=False) or None
        if locale is not None and locale not in LOCALES:
            locale = None  # an unsupported locale falls back to the clinic's, it is not an error
        return cls(
            id=doc_id,
            clinic_id=r.text("clinic_id"),
            first_name=r.text("first_name"),
            last_name=r.text("last_name", required=False),
            phone=r.phone("phone"),
            email=r.email("email"),
            locale=locale,
            preferred_channel=r.choice("preferred_channel", CHANNELS, default="sms"),
            sms_opt_out=r.flag("sms_opt_out"),
            email_opt_out=r.flag("email_opt_out"),
        )


@dataclass(frozen=True)
class Appointment:
    id: str
    clinic_id: str
    patient_id: str
    provider_id: str | None
    provider_name: str
    service_name: str
    requires_prep: bool
    prep_instructions: str
    start: datetime
    end: datetime
    status: str
    price_cents: int
    updated_at: datetime | None

    @property
    def is_active(self) -> bool:
        """Booked or confirmed: the patient is still expected."""
        return self.status in ("booked", "confirmed")

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> Appointment:
        r = DocReader("appointments", doc_id, data)
        start = r.instant("start")
        end = r.instant("end")
        if end < start:
            r.fail("end", "is before start")
        return cls(
            id=doc_id,
            clinic_id=r.text("clinic_id"),
            patient_id=r.text("patient_id"),
            provider_id=r.text("provider_id", required=False) or None,
            provider_name=r.text("provider_name", required=False),
            service_name=r.text("service_name"),
            requires_prep=r.flag("requires_prep"),
            prep_instructions=r.text("prep_instructions", required=False, max_chars=MAX_PREP_CHARS),
            start=start,
            end=end,
            status=r.choice("status", APPOINTMENT_STATUSES),
            price_cents=r.integer("price_cents", default=0, minimum=0),
            updated_at=r.instant("updated_at", required=False),
        )


@dataclass(frozen=True)
class WaitlistEntry:
    id: str
    clinic_id: str
    patient_id: str
    service_name: str
    provider_id: str | None
    earliest: datetime
    latest: datetime
    status: str
    created_at: datetime | None

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> WaitlistEntry:
        r = DocReader("waitlist", doc_id, data)
        earliest = r.instant("earliest")
        latest = r.instant("latest")
        if latest < earliest:
            r.fail("latest", "is before earliest")
        return cls(
            id=doc_id,
            clinic_id=r.text("clinic_id"),
            patient_id=r.text("patient_id"),
            service_name=r.text("service_name"),
            provider_id=r.text("provider_id", required=False) or None,
            earliest=earliest,
            latest=latest,
            status=r.choice("status", WAITLIST_STATUSES),
            created_at=r.instant("created_at", required=False),
        )


@dataclass(frozen=True)
class Product:
    """One stocked product of a clinic: counted in whole units, reordered at or below its reorder point."""

    id: str
    clinic_id: str
    name: str
    sku: str
    unit: str
    on_hand: int
    reorder_point: int
    reorder_qty: int
    active: bool

    FIELDS = ("clinic_id", "name", "sku", "unit", "on_hand", "reorder_point", "reorder_qty", "active")

    @property
    def needs_reorder(self) -> bool:
        return self.active and self.on_hand <= self.reorder_point

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> Product:
        r = DocReader(PRODUCTS, doc_id, data)
        return cls(
            id=doc_id,
            clinic_id=r.text("clinic_id"),
            name=r.text("name"),
            sku=r.text("sku"),
            unit=r.text("unit", required=False, default="unit") or "unit",
            on_hand=r.integer("on_hand", minimum=0),
            reorder_point=r.integer("reorder_point", minimum=0),
            reorder_qty=r.integer("reorder_qty", minimum=1),
            active=r.flag("active", default=True),
        )
