"""A stored report (or purchase order draft) as an email: HTML, plain text, and the figures as CSV.

Pure functions of the stored document, so a retried task renders exactly what the first attempt did.
The HTML comes from the Jinja2 templates in shared/reports/templates/ (autoescaped: every value from a
document is escaped); this module prepares each figure as the text both parts show. The HTML is
table-based with inline styles only: the bars are table cells with a background colour and a percentage
width, which Gmail, Outlook and Apple Mail all draw; there is no image, script, web font or external
stylesheet to block. CSV cells that a spreadsheet would read as a formula are prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.platform.html_templates import render_html
from shared.reports.money import format_money
from shared.reports.report_docs import (
    AppointmentCounts,
    Change,
    FigureLabel,
    JourneySection,
    ProviderFigures,
    Report,
    ReportMetrics,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
BAR_COLOUR = "#2f6fde"  # the bars' colour (tests/integration/test_reports.py looks for it in the screenshot)
BAR_TRACK = "#e8edf5"
TEXT_BAR_WIDTH = 30
CHANGE_LABELS = {
    "appointments": "Appointments",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "no_show": "No-shows",
    "revenue_cents": "Completed revenue",
    "new_bookings": "New bookings",
    "cancellation_rate": "Cancellation rate",
    "no_show_rate": "No-show rate",
    "offers_sent": "Waitlist offers sent",
    "slots_filled": "Slots filled",
}
CSV_HEADER = ("section", "item", "metric", "value")
# Gmail clips a message past ~102 KB: the email names the busiest providers and sums the rest in one row;
# every provider's figures are in the CSV attachment.
TOP_PROVIDERS = 15


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str
    attachments: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    width: int  # percent of the row, the busiest row 100


# --------------------------------------------------------------------------------------------- format


Money = Callable[[Any], str]


def money_of(report: Report) -> Money:
    """Minor units → an amount in the report's currency and locale ("$1,234.50", "1234,50 €")."""
    return lambda minor: format_money(minor, report.currency, report.locale)


def hours_minutes(hours: Any) -> str:
    """Booked hours as h:mm ("1:00", "0:15"), one way for every row."""
    if not isinstance(hours, int | float) or isinstance(hours, bool):
        return "-"
    minutes = round(hours * 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def percent(rate: Any) -> str:
    return "-" if not isinstance(rate, int | float) else f"{rate * 100:.1f} %"


def number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:,}" if isinstance(value, int) else str(value)


def day_label(text: str) -> str:
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        return str(text)
    return f"{day:%a} {day.day} {day:%b}"


def period_label(report: Report) -> str:
    first, last = report.start_date, report.end_date
    if first == last:
        return f"{first:%A} {first.day} {first:%B %Y}"
    return f"{first.day} {first:%b} – {last.day} {last:%b %Y}"


def _change_value(key: str, value: Any, money: Money) -> str:
    if key.endswith("_rate"):
        return percent(value)
    if key == "revenue_cents":
        return money(value)
    return number(value)


def _signed(key: str, change: Any, money: Money) -> str:
    if change is None:
        return "-"
    if key.endswith("_rate"):
        return f"{change * 100:+.1f} pts"
    text = money(change) if key == "revenue_cents" else number(change)
    return text if text.startswith("-") else f"+{text}"


def statuses(counts: AppointmentCounts) -> list[tuple[str, str, int]]:
    """(key, label, appointments) per status, in the order the email and the CSV list them."""
    return [
        ("booked", "Booked", counts.booked),
        ("confirmed", "Confirmed", counts.confirmed),
        ("completed", "Completed", counts.completed),
        ("cancelled", "Cancelled", counts.cancelled),
        ("no_show", "No-show", counts.no_show),
    ]


def _median(minutes: float | None) -> str:
    return "-" if minutes is None else f"{number(minutes)} min"


# ----------------------------------------------------------------------------------------- the report


def shown_providers(providers: Sequence[ProviderFigures]) -> tuple[list[ProviderFigures], str | None]:
    """The provider rows the email shows, and a note when there are more than TOP_PROVIDERS: then the busiest
    (by appointments, then revenue), and one row summing the others, so every total still adds up."""
    if len(providers) <= TOP_PROVIDERS:
        return list(providers), None
    ranked = sorted(providers, key=lambda p: (-p.appointments, -p.revenue_cents, p.name))
    top, rest = ranked[:TOP_PROVIDERS], ranked[TOP_PROVIDERS:]
    others = ProviderFigures(
        provider_id=None,
        name=f"{len(rest)} other providers",
        appointments=sum(p.appointments for p in rest),
        booked_hours=round(sum(p.booked_hours for p in rest), 2),
        revenue_cents=sum(p.revenue_cents for p in rest),
    )
    note = f"the {TOP_PROVIDERS} busiest providers, the other {len(rest)} summed in one row; all are in the CSV"
    return [*top, others], note


def bars(metrics: ReportMetrics, period: str) -> tuple[str, list[tuple[str, int]]]:
    """The visual's title and (label, value) rows: per day for a week, per provider for a day."""
    if period == "weekly":
        title, rows = "Appointments per day", [(day_label(d.date), d.appointments) for d in metrics.days]
    else:
        providers, _ = shown_providers(metrics.providers)
        title, rows = "Appointments per provider", [(p.name, p.appointments) for p in providers]
    cancelled = metrics.appointments.cancelled
    return (f"{title} (not counting {cancelled} cancelled)" if cancelled else title), rows


def unreadable_notice(report: Report) -> str | None:
    """What the email says of the records left out of every figure, and where an operator finds them."""
    count = report.metrics.invalid_documents
    if not count:
        return None
    records = "record" if count == 1 else "records"
    return (
        f"{count} {records} could not be read and {'is' if count == 1 else 'are'} left out of every figure above. "
        f"Your operator finds them, by id and field to fix, under invalid_listed in the Firestore document "
        f'reports/{report.id} (or in the report-builder log lines "left out of the report").'
    )


def as_of_label(report: Report) -> str:
    """When a partial report's figures were taken, in the clinic's time: "Tue 10 Mar, 14:05 (America/New_York)"."""
    try:
        zone = ZoneInfo(report.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = report.generated_at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M} ({zone.key})"


def partial_notice(report: Report) -> str | None:
    if not report.partial:
        return None
    return (
        f"Partial report: the period had not ended when it was built. The figures are as of {as_of_label(report)}; "
        "the complete report is emailed after the period ends."
    )


@dataclass(frozen=True)
class JourneyRows:
    """One patient-journey section as the email and the console show it: its title and (label, value) rows."""

    key: str
    title: str
    rows: tuple[tuple[str, str], ...]


def journey_rows(report: Report) -> list[JourneyRows]:
    """Every journey section stored in the report, in the providers' order, each figure as text (a section
    stored without its labels reads by its keys)."""
    values = report.journeys or {}
    sections = list(report.journey_sections)
    sections += [
        JourneySection(key, key.replace("_", " ").capitalize(), tuple(FigureLabel(f, f) for f in figures))
        for key, figures in values.items()
        if key not in {s.key for s in sections}
    ]
    return [
        JourneyRows(
            section.key,
            section.title,
            tuple(
                (f.label, (percent if f.percent else number)(values.get(section.key, {}).get(f.key)))
                for f in section.figures
            ),
        )
        for section in sections
    ]


def report_email(report: Report, clinic_name: str) -> Email:
    kind = report.period.value
    subject = f"{clinic_name}: {kind} report, {period_label(report)}"
    if report.partial:
        subject += f" (PARTIAL, as of {as_of_label(report)})"
    filename = f"report_{report.clinic_id}_{kind}_{report.start_date.isoformat()}.csv"
    return Email(
        subject=subject,
        text=report_text(report, clinic_name),
        html=report_html(report, clinic_name),
        attachments=((filename, "text/csv", report_csv(report)),),
    )


def _changes(changes: Mapping[str, Change], money: Money) -> list[tuple[str, str, str, str]]:
    """(label, this week, week before, change) per headline figure."""
    return [
        (
            label,
            _change_value(key, changes[key].current, money),
            _change_value(key, changes[key].previous, money),
            _signed(key, changes[key].change, money),
        )
        for key, label in CHANGE_LABELS.items()
    ]


def report_text(report: Report, clinic_name: str) -> str:
    metrics = report.metrics
    counts = metrics.appointments
    money = money_of(report)
    lines = [f"{clinic_name} - {report.period.value} report", period_label(report), ""]
    if metrics.empty:
        lines += ["No appointments in this period.", ""]
    for notice in (partial_notice(report), unreadable_notice(report)):
        if notice:
            lines += [notice, ""]
    lines += [
        f"Appointments: {number(counts.total)}",
        *(f"  {label}: {number(count)}" for _, label, count in statuses(counts)),
        f"Completed revenue: {money(metrics.revenue_cents)}",
        f"Cancellation rate: {percent(metrics.cancellation_rate)}",
        f"No-show rate: {percent(metrics.no_show_rate)}",
        f"New bookings made: {number(metrics.new_bookings)}",
        "",
    ]
    title, rows = bars(metrics, report.period)
    top = max((value for _, value in rows), default=0)
    lines.append(title)
    for label, value in rows:
        width = round(TEXT_BAR_WIDTH * value / top) if top else 0
        lines.append(f"  {label[:24]:<24} {'#' * width:<{TEXT_BAR_WIDTH}} {value}")
    if not rows:
        lines.append("  (none)")
    providers, more = shown_providers(metrics.providers)
    lines += ["", "Providers (appointments, booked time h:mm, completed revenue)" + (f": {more}" if more else "")]
    lines += [
        f"  {p.name}: {number(p.appointments)}, {hours_minutes(p.booked_hours)}, {money(p.revenue_cents)}"
        for p in providers
    ] or ["  (none)"]
    lines += ["", "Messages (sent / delivered / failed)"]
    for section, channel, c in metrics.messages.rows():
        lines.append(f"  {section} {channel}: {c.sent} / {c.delivered} / {c.failed}")
    lines.append(f"Reminders delivered / sent: {percent(metrics.reminder_delivery_rate)}")
    lines.append(f"Appointments confirmed (of those not cancelled): {percent(metrics.confirmation_rate)}")
    wait = metrics.waitlist
    lines += [
        "",
        f"Waitlist: {wait.offers_sent} offers sent, {wait.slots_filled} slots filled, "
        f"median time to fill {_median(wait.median_minutes_to_fill)}",
        f"Open failed tasks: {metrics.open_failed_tasks}",
    ]
    for journey in journey_rows(report):
        lines += ["", journey.title, *(f"  {label}: {value}" for label, value in journey.rows)]
    if metrics.change is not None:
        lines += ["", "Against the week before (this week / week before / change)"]
        for label, current, previous, change in _changes(metrics.change, money):
            lines.append(f"  {label}: {current} / {previous} / {change}")
    lines += ["", "The figures are attached as CSV."]
    return "\n".join(lines) + "\n"


def _bars(rows: list[tuple[str, int]]) -> list[Bar]:
    top = max((value for _, value in rows), default=0)
    return [Bar(label, value, max(2, round(100 * value / top)) if top and value else 0) for label, value in rows]


def report_html(report: Report, clinic_name: str) -> str:
    metrics = report.metrics
    counts = metrics.appointments
    providers, more = shown_providers(metrics.providers)
    money = money_of(report)
    title, rows = bars(metrics, report.period)
    wait = metrics.waitlist
    return render_html(
        TEMPLATES,
        "report.html",
        clinic_name=clinic_name,
        period=report.period.value,
        period_label=period_label(report),
        kpis=[
            ("Appointments", number(counts.total)),
            ("Completed revenue", money(metrics.revenue_cents)),
            ("Cancellation rate", percent(metrics.cancellation_rate)),
            ("No-show rate", percent(metrics.no_show_rate)),
        ],
        empty=metrics.empty,
        notices=[notice for notice in (partial_notice(report), unreadable_notice(report)) if notice],
        bars_title=title,
        bars=_bars(rows),
        bar_colour=BAR_COLOUR,
        bar_track=BAR_TRACK,
        statuses=[(label, number(count)) for _, label, count in statuses(counts)]
        + [("New bookings made", number(metrics.new_bookings))],
        providers_note=f"{more[:1].upper()}{more[1:]}." if more else None,
        providers=[
            (p.name, number(p.appointments), hours_minutes(p.booked_hours), money(p.revenue_cents)) for p in providers
        ],
        messages=[
            (
                f"{section.capitalize()} by {channel.upper() if channel == 'sms' else channel}",
                number(c.sent),
                number(c.delivered),
                number(c.failed),
            )
            for section, channel, c in metrics.messages.rows()
        ],
        rates=[
            ("Reminders delivered / sent", percent(metrics.reminder_delivery_rate)),
            ("Appointments confirmed (of those not cancelled)", percent(metrics.confirmation_rate)),
        ],
        operations=[
            ("Waitlist offers sent", number(wait.offers_sent)),
            ("Slots filled", number(wait.slots_filled)),
            ("Median time to fill", _median(wait.median_minutes_to_fill)),
            ("Open failed tasks", number(metrics.open_failed_tasks)),
        ],
        changes=_changes(metrics.change, money) if metrics.change is not None else [],
        journeys=journey_rows(report),
    )


def _safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_rows(report: Report) -> list[tuple[str, str, str, Any]]:
    """Every figure of the report as (section, item, metric, value)."""
    m = report.metrics
    counts = m.appointments
    rows: list[tuple[str, str, str, Any]] = [
        ("report", "", "clinic_id", report.clinic_id),
        ("report", "", "period", report.period.value),
        ("report", "", "start_date", report.start_date.isoformat()),
        ("report", "", "end_date", report.end_date.isoformat()),
        ("report", "", "partial", report.partial),
    ]
    rows.append(("appointments", "", "total", counts.total))
    rows += [("appointments", "", key, count) for key, _, count in statuses(counts)]
    rows += [
        ("revenue", "", "completed_revenue_cents", m.revenue_cents),
        ("rates", "", "cancellation_rate", m.cancellation_rate),
        ("rates", "", "no_show_rate", m.no_show_rate),
        ("rates", "", "confirmation_rate", m.confirmation_rate),
        ("rates", "", "reminder_delivery_rate", m.reminder_delivery_rate),
        ("bookings", "", "new_bookings", m.new_bookings),
    ]
    rows += [("day", d.date, "appointments", d.appointments) for d in m.days]
    for p in m.providers:
        rows += [
            ("provider", p.name, "appointments", p.appointments),
            ("provider", p.name, "booked_hours", p.booked_hours),
            ("provider", p.name, "revenue_cents", p.revenue_cents),
        ]
    for section, channel, c in m.messages.rows():
        rows += [(section, channel, "sent", c.sent), (section, channel, "delivered", c.delivered)]
        rows += [(section, channel, "failed", c.failed)]
    wait = m.waitlist
    rows += [
        ("waitlist", "", "offers_sent", wait.offers_sent),
        ("waitlist", "", "slots_filled", wait.slots_filled),
        ("waitlist", "", "median_minutes_to_fill", wait.median_minutes_to_fill),
        ("failed_tasks", "", "open", m.open_failed_tasks),
        ("quality", "", "invalid_documents", m.invalid_documents),
    ]
    values = report.journeys or {}
    rows += [("journeys", section, key, value) for section, figures in values.items() for key, value in figures.items()]
    changes = m.change or {}
    for key in CHANGE_LABELS if changes else ():
        change = changes[key]
        rows += [("change", key, "previous", change.previous), ("change", key, "change", change.change)]
        rows += [("change", key, "percent", change.percent)]
    return rows


def report_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for section, item, metric, value in csv_rows(report):
        writer.writerow([section, _safe_cell(item), metric, _safe_cell(value)])
    return out.getvalue().encode("utf-8")


# ------------------------------------------------------------------------------------ the reorder alert


def _product_label(item: dict[str, Any]) -> str:
    """A broken product as its manager knows it: "Name (SKU)", with its id; the id alone when neither reads."""
    name, sku = item.get("name"), item.get("sku")
    known = f"{name} ({sku})" if name and sku else name or sku
    return f"{known}, product id {item['product_id']}" if known else f"product id {item['product_id']}"


def inventory_email(order: dict[str, Any], clinic_name: str) -> Email:
    lines = order.get("lines") or []
    invalid = order.get("invalid_products") or []
    subject = f"{clinic_name}: {len(lines)} product(s) to reorder, {order.get('date', '')}"
    text = [f"{clinic_name} - inventory check for {order.get('date', '')}", ""]
    text.append("At or below their reorder point (a draft purchase order is ready):")
    for line in lines:
        text.append(
            f"  {line['name']} ({line['sku']}): {line['on_hand']} {line['unit']} on hand, reorder point "
            f"{line['reorder_point']}, order {line['qty']} {line['unit']}"
        )
    if order.get("truncated"):
        text.append("  (more products than one draft holds: see the products list)")
    if invalid:
        text += ["", "Product records that could not be checked (fix the field):"]
        text += [f"  {_product_label(item)}: {item['field']}" for item in invalid]
    html = render_html(
        TEMPLATES,
        "inventory.html",
        clinic_name=clinic_name,
        date=str(order.get("date", "")),
        lines=[
            (
                line["name"],
                line["sku"],
                f"{line['on_hand']} {line['unit']}",
                f"{line['reorder_point']} {line['unit']}",
                f"{line['qty']} {line['unit']}",
            )
            for line in lines
        ],
        invalid=[(item.get("name", "-"), item.get("sku", "-"), item["field"], item["product_id"]) for item in invalid],
    )
    return Email(subject=subject, text="\n".join(text) + "\n", html=html)
