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


MAX_REBOOK_DAYS = 730  # a rebooking nudge at most two years after the visit (docs/rebooking.md)
MAX_SERVICES = 200


@dataclass(frozen=True)
class ServiceSettings:
    """One service's settings on clinics/{id}.services (docs/rebooking.md): when to nudge a rebooking."""

    name: str
    rebook_after_days: int | None = None  # None: no nudge for this service


def service_key(name: str) -> str:
    """How a service's name is matched against an appointment's `service_name`: case and spacing aside."""
    return " ".join(name.split()).casefold()


def _services(data: Any, problems: list[FieldProblem]) -> tuple[ServiceSettings, ...]:
    """The clinic's `services` map (name → {rebook_after_days}); a bad entry is noted and left out: reminders
    never depend on it."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        problems.append(FieldProblem("services", "is not a map of service name to settings"))
        return ()
    found: list[ServiceSettings] = []
    for name, settings in list(data.items())[:MAX_SERVICES]:
        where = f"services.{str(name)[:40]}"
        if not isinstance(name, str) or not name.strip() or not isinstance(settings, dict):
            problems.append(FieldProblem(where, "is not a service name with a map of settings"))
            continue
        days = settings.get("rebook_after_days")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_REBOOK_DAYS
        ):
            problems.append(
                FieldProblem(f"{where}.rebook_after_days", f"must be whole days from 1 to {MAX_REBOOK_DAYS}")
            )
            days = None
        found.append(ServiceSettings(" ".join(name.split()), days))
    return tuple(found)


def _no_show_message(data: Any, problems: list[FieldProblem]) -> bool:
    if data is None or isinstance(data, bool):
        return bool(data)
    problems.append(FieldProblem("no_show_message", "must be true or false"))
    return False


RESTORE_PLACEHOLDER = "{session_id}"
DISCOUNT_CODE = re.compile(r"[A-Za-z0-9-]{2,20}")
MAX_RESTORE_URL_CHARS = 500
_RESTORE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?([/?#][^\s<>\"'\\^`{|}]*)?", re.IGNORECASE)
RECOVERY_DELAYS = (60, 24 * 60)  # minutes after a booking session started: the first and second nudge
MIN_DELAY_MINUTES, MAX_DELAY_MINUTES = 15, 72 * 60


@dataclass(frozen=True)
class BookingRecovery:
    """A clinic's abandoned-booking recovery (clinics/{id}.booking_recovery; docs/booking-recovery.md): whether it
    runs, when the nudges go (minutes after the session started), the optional discount code (which makes a
    nudge marketing), and the clinic's booking page that restores a session: an absolute http(s) URL holding
    `{session_id}` once, replaced by the session's id."""

    enabled: bool = False
    delays_minutes: tuple[int, ...] = RECOVERY_DELAYS
    discount_code: str | None = None
    restore_url: str | None = None

    def restore_link(self, session_id: str) -> str | None:
        """The clinic's page for this session (the id is a document id: URL-safe as it is)."""
        return self.restore_url.replace(RESTORE_PLACEHOLDER, session_id) if self.restore_url else None


def _booking_recovery(data: Any, problems: list[FieldProblem]) -> BookingRecovery:
    """The clinic's `booking_recovery` map. A bad field is noted and recovery stays off for the clinic (a nudge
    with a broken link or a wrong time is worse than none); reminders never depend on it."""
    if data is None:
        return BookingRecovery()
    if not isinstance(data, dict):
        problems.append(FieldProblem("booking_recovery", "is not a map"))
        return BookingRecovery()
    found: list[FieldProblem] = []
    enabled = data.get("enabled", False)
    if not isinstance(enabled, bool):
        found.append(FieldProblem("booking_recovery.enabled", "must be true or false"))
    delays = data.get("delays_minutes", list(RECOVERY_DELAYS))
    if (
        not isinstance(delays, list)
        or not 1 <= len(delays) <= 2
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and MIN_DELAY_MINUTES <= d <= MAX_DELAY_MINUTES
            for d in delays
        )
        or sorted(set(delays)) != delays
    ):
        found.append(
            FieldProblem(
                "booking_recovery.delays_minutes",
                f"must be one or two increasing whole minutes between {MIN_DELAY_MINUTES} and {MAX_DELAY_MINUTES}",
            )
        )
        delays = list(RECOVERY_DELAYS)
    code = data.get("discount_code")
    if code is not None and (not isinstance(code, str) or not DISCOUNT_CODE.fullmatch(code)):
        found.append(FieldProblem("booking_recovery.discount_code", "must be 2-20 letters, digits or dashes"))
    url = data.get("restore_url")
    if url is None:
        if enabled is True:
            found.append(FieldProblem("booking_recovery.restore_url", "is required when recovery is enabled"))
    elif (
        not isinstance(url, str)
        or len(url) > MAX_RESTORE_URL_CHARS
        or not url.isascii()
        or url.count(RESTORE_PLACEHOLDER) != 1
        or not _RESTORE_URL.fullmatch(url.replace(RESTORE_PLACEHOLDER, "x"))
    ):
        found.append(
            FieldProblem("booking_recovery.restore_url", "must be an absolute http(s) URL holding {session_id} once")
        )
    problems.extend(found)
    if found:
        return BookingRecovery()
    return BookingRecovery(enabled=enabled, delays_minutes=tuple(delays), discount_code=code, restore_url=url)


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
    services: tuple[ServiceSettings, ...] = ()  # per service: rebook_after_days (docs/rebooking.md)
    no_show_message: bool = False  # "we missed you" the day after a no-show (docs/rebooking.md)
    booking_recovery: BookingRecovery = field(default_factory=BookingRecovery)
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)
    # Fields skipped rather than refused (a bad staff address, currency): the reports record them.
    problems: tuple[FieldProblem, ...] = ()

    def problems_of(self, name: str) -> list[FieldProblem]:
        """The skipped entries of one field (`manager_emails`, `inventory_emails`)."""
        return [p for p in self.problems if p.field == name or p.field.startswith(f"{name}[")]

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def rebook_after_days(self, service_name: str) -> int | None:
        """Days after a completed visit of this service its rebooking nudge goes; None: no nudge."""
        wanted = service_key(service_name)
        return next((s.rebook_after_days for s in self.services if service_key(s.name) == wanted), None)

    @property
    def rebook_days(self) -> tuple[int, ...]:
        """The distinct rebook_after_days the clinic uses, ascending."""
        return tuple(sorted({s.rebook_after_days for s in self.services if s.rebook_after_days is not None}))

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
        booking_recovery = _booking_recovery(r.raw("booking_recovery", required=False), problems)
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
            services=_services(r.raw("services", required=False), problems),
            no_show_message=_no_show_message(r.raw("no_show_message", required=False), problems),
            booking_recovery=booking_recovery,
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
    group_id: str | None = None  # a seat of groups/{group_id} (docs/groups.md)
    created_at: datetime | None = None  # when the platform wrote the booking (reports' new bookings, recovery)

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
            group_id=r.text("group_id", required=False) or None,
            created_at=r.instant("created_at", required=False),
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
