"""A stored report (or purchase order draft) as an email: HTML, plain text, and the figures as CSV.

Pure functions of the stored document, so a retried task renders exactly what the first attempt did.
The HTML is table-based with inline styles only: the bars are table cells with a background colour and a
percentage width, which Gmail, Outlook and Apple Mail all draw; there is no image, script, web font or
external stylesheet to block. Every value from a document is escaped; CSV cells that a spreadsheet would
read as a formula are prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.reports.money import DEFAULT_CURRENCY, format_money
from shared.reports.report_docs import report_id

BAR_COLOUR = "#2f6fde"  # the bars' colour (tests/integration/test_reports_email.py looks for it)
BAR_TRACK = "#e8edf5"
TEXT_BAR_WIDTH = 30
STATUSES = (
    ("booked", "Booked"),
    ("confirmed", "Confirmed"),
    ("completed", "Completed"),
    ("cancelled", "Cancelled"),
    ("no_show", "No-show"),
)
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
FONT = "font-family:Arial,Helvetica,sans-serif;"


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str
    attachments: tuple[tuple[str, str, bytes], ...] = ()


# --------------------------------------------------------------------------------------------- format


Money = Callable[[Any], str]


def money_of(report: dict[str, Any]) -> Money:
    """Minor units → an amount in the report's currency and locale ("$1,234.50", "1234,50 €")."""
    currency, locale = report.get("currency", DEFAULT_CURRENCY), report.get("locale", "en")
    return lambda minor: format_money(minor, currency, locale)


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


def period_label(report: dict[str, Any]) -> str:
    try:
        first, last = date.fromisoformat(report["start_date"]), date.fromisoformat(report["end_date"])
    except (KeyError, TypeError, ValueError):
        return str(report.get("start_date", ""))
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


# ----------------------------------------------------------------------------------------- the report


def shown_providers(providers: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """The provider rows the email shows, and a note when there are more than TOP_PROVIDERS: then the busiest
    (by appointments, then revenue), and one row summing the others, so every total still adds up."""
    if len(providers) <= TOP_PROVIDERS:
        return providers, None
    ranked = sorted(providers, key=lambda p: (-int(p["appointments"]), -int(p["revenue_cents"]), str(p["name"])))
    top, rest = ranked[:TOP_PROVIDERS], ranked[TOP_PROVIDERS:]
    others = {
        "provider_id": None,
        "name": f"{len(rest)} other providers",
        "appointments": sum(int(p["appointments"]) for p in rest),
        "booked_hours": round(sum(float(p["booked_hours"]) for p in rest), 2),
        "revenue_cents": sum(int(p["revenue_cents"]) for p in rest),
    }
    note = f"the {TOP_PROVIDERS} busiest providers, the other {len(rest)} summed in one row; all are in the CSV"
    return [*top, others], note


def bars(metrics: dict[str, Any], period: str) -> tuple[str, list[tuple[str, int]]]:
    """The visual's title and (label, value) rows: per day for a week, per provider for a day."""
    if period == "weekly":
        title, rows = "Appointments per day", [(day_label(d["date"]), int(d["appointments"])) for d in metrics["days"]]
    else:
        providers, _ = shown_providers(metrics["providers"])
        title, rows = "Appointments per provider", [(p["name"], int(p["appointments"])) for p in providers]
    cancelled = metrics["appointments"].get("cancelled") or 0
    return (f"{title} (not counting {cancelled} cancelled)" if cancelled else title), rows


def unreadable_notice(report: dict[str, Any]) -> str | None:
    """What the email says of the records left out of every figure, and where an operator finds them."""
    count = report["metrics"].get("invalid_documents") or 0
    if not count:
        return None
    doc_id = report_id(str(report.get("clinic_id")), str(report.get("period")), str(report.get("start_date")))
    records = "record" if count == 1 else "records"
    return (
        f"{count} {records} could not be read and {'is' if count == 1 else 'are'} left out of every figure above. "
        f"Your operator finds them, by id and field to fix, under invalid_listed in the Firestore document "
        f'reports/{doc_id} (or in the report-builder log lines "left out of the report").'
    )


def as_of_label(report: dict[str, Any]) -> str:
    """When a partial report's figures were taken, in the clinic's time: "Tue 10 Mar, 14:05 (America/New_York)"."""
    built = report.get("generated_at")
    if not isinstance(built, datetime):
        return "an unknown time"
    try:
        zone = ZoneInfo(str(report.get("timezone")))
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = built.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M} ({zone.key})"


def partial_notice(report: dict[str, Any]) -> str | None:
    if not report.get("partial"):
        return None
    return (
        f"Partial report: the period had not ended when it was built. The figures are as of {as_of_label(report)}; "
        "the complete report is emailed after the period ends."
    )


def report_email(report: dict[str, Any], clinic_name: str) -> Email:
    kind = report["period"]
    subject = f"{clinic_name}: {kind} report, {period_label(report)}"
    if report.get("partial"):
        subject += f" (PARTIAL, as of {as_of_label(report)})"
    filename = f"report_{report['clinic_id']}_{kind}_{report['start_date']}.csv"
    return Email(
        subject=subject,
        text=report_text(report, clinic_name),
        html=report_html(report, clinic_name),
        attachments=((filename, "text/csv", report_csv(report)),),
    )


def report_text(report: dict[str, Any], clinic_name: str) -> str:
    metrics = report["metrics"]
    counts = metrics["appointments"]
    money = money_of(report)
    lines = [f"{clinic_name} - {report['period']} report", period_label(report), ""]
    if metrics.get("empty"):
        lines += ["No appointments in this period.", ""]
    for notice in (partial_notice(report), unreadable_notice(report)):
        if notice:
            lines += [notice, ""]
    lines += [
        f"Appointments: {number(counts['total'])}",
        *(f"  {label}: {number(counts[key])}" for key, label in STATUSES),
        f"Completed revenue: {money(metrics['revenue_cents'])}",
        f"Cancellation rate: {percent(metrics['cancellation_rate'])}",
        f"No-show rate: {percent(metrics['no_show_rate'])}",
        f"New bookings made: {number(metrics['new_bookings'])}",
        "",
    ]
    title, rows = bars(metrics, report["period"])
    top = max((value for _, value in rows), default=0)
    lines.append(title)
    for label, value in rows:
        width = round(TEXT_BAR_WIDTH * value / top) if top else 0
        lines.append(f"  {label[:24]:<24} {'#' * width:<{TEXT_BAR_WIDTH}} {value}")
    if not rows:
        lines.append("  (none)")
    providers, more = shown_providers(metrics["providers"])
    lines += ["", "Providers (appointments, booked time h:mm, completed revenue)" + (f": {more}" if more else "")]
    lines += [
        f"  {p['name']}: {number(p['appointments'])}, {hours_minutes(p['booked_hours'])}, {money(p['revenue_cents'])}"
        for p in providers
    ] or ["  (none)"]
    lines += ["", "Messages (sent / delivered / failed)"]
    for section in ("reminders", "confirmations"):
        for channel in ("sms", "email"):
            c = metrics["messages"][section][channel]
            lines.append(f"  {section} {channel}: {c['sent']} / {c['delivered']} / {c['failed']}")
    lines.append(f"Reminders delivered / sent: {percent(metrics['reminder_delivery_rate'])}")
    lines.append(f"Appointments confirmed (of those not cancelled): {percent(metrics['confirmation_rate'])}")
    wait = metrics["waitlist"]
    median = wait["median_minutes_to_fill"]
    lines += [
        "",
        f"Waitlist: {wait['offers_sent']} offers sent, {wait['slots_filled']} slots filled, "
        f"median time to fill {'-' if median is None else f'{number(median)} min'}",
        f"Open failed tasks: {metrics['open_failed_tasks']}",
    ]
    if "change" in metrics:
        lines += ["", "Against the week before (this week / week before / change)"]
        for key, label in CHANGE_LABELS.items():
            c = metrics["change"][key]
            lines.append(
                f"  {label}: {_change_value(key, c['current'], money)} / {_change_value(key, c['previous'], money)} / "
                f"{_signed(key, c['change'], money)}"
            )
    lines += ["", "The figures are attached as CSV."]
    return "\n".join(lines) + "\n"


def _cell(text: str, *, align: str = "left", bold: bool = False, muted: bool = False) -> str:
    style = f"{FONT}font-size:13px;padding:4px 8px;border-bottom:1px solid #eef0f3;text-align:{align};"
    style += "font-weight:bold;" if bold else ""
    style += "color:#6b7280;" if muted else "color:#1f2933;"
    return f'<td style="{style}">{escape(text)}</td>'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(_cell(h, align="left" if i == 0 else "right", bold=True) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(_cell(v, align="left" if i == 0 else "right") for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="border-collapse:collapse;width:100%;margin:0 0 16px 0;"><tr>{head}</tr>{body}</table>'
    )


def _heading(text: str) -> str:
    return f'<h2 style="{FONT}font-size:16px;color:#1f2933;margin:20px 0 8px 0;">{escape(text)}</h2>'


def _bar_rows(rows: list[tuple[str, int]]) -> str:
    top = max((value for _, value in rows), default=0)
    out = []
    for label, value in rows:
        width = max(2, round(100 * value / top)) if top and value else 0
        bar = (
            f'<td width="{width}%" bgcolor="{BAR_COLOUR}" style="width:{width}%;background-color:{BAR_COLOUR};'
            'height:18px;font-size:0;line-height:0;">&nbsp;</td>'
            if width
            else ""
        )
        rest = (
            f'<td bgcolor="{BAR_TRACK}" style="background-color:{BAR_TRACK};height:18px;font-size:0;'
            'line-height:0;">&nbsp;</td>'
            if width < 100
            else ""
        )
        out.append(
            "<tr>"
            f'<td width="140" style="{FONT}font-size:13px;color:#1f2933;padding:3px 8px 3px 0;width:140px;">'
            f"{escape(label)}</td>"
            '<td style="padding:3px 0;"><table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
            f'border="0" style="width:100%;border-collapse:collapse;"><tr>{bar}{rest}</tr></table></td>'
            f'<td width="48" align="right" style="{FONT}font-size:13px;color:#1f2933;padding:3px 0 3px 8px;'
            f'width:48px;">{value}</td>'
            "</tr>"
        )
    if not out:
        return f'<p style="{FONT}font-size:13px;color:#6b7280;margin:0 0 16px 0;">No appointments to chart.</p>'
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;border-collapse:collapse;margin:0 0 16px 0;">{"".join(out)}</table>'
    )


def _kpis(items: list[tuple[str, str]]) -> str:
    cells = "".join(
        f'<td width="25%" valign="top" style="{FONT}padding:10px;background-color:#f4f7fb;border:4px solid #ffffff;">'
        f'<div style="font-size:12px;color:#6b7280;">{escape(label)}</div>'
        f'<div style="font-size:20px;font-weight:bold;color:#1f2933;">{escape(value)}</div></td>'
        for label, value in items
    )
    return (
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        f'style="width:100%;border-collapse:collapse;margin:8px 0 8px 0;"><tr>{cells}</tr></table>'
    )


def _note(text: str | None) -> str:
    if not text:
        return ""
    return f'<p style="{FONT}font-size:12px;color:#6b7280;margin:0 0 8px 0;">{escape(text[:1].upper() + text[1:])}.</p>'


def report_html(report: dict[str, Any], clinic_name: str) -> str:
    metrics = report["metrics"]
    counts = metrics["appointments"]
    providers, more = shown_providers(metrics["providers"])
    money = money_of(report)
    parts = [
        _kpis(
            [
                ("Appointments", number(counts["total"])),
                ("Completed revenue", money(metrics["revenue_cents"])),
                ("Cancellation rate", percent(metrics["cancellation_rate"])),
                ("No-show rate", percent(metrics["no_show_rate"])),
            ]
        )
    ]
    if metrics.get("empty"):
        parts.append(
            f'<p style="{FONT}font-size:14px;color:#1f2933;background-color:#fff7e0;padding:10px;margin:8px 0;">'
            "No appointments in this period.</p>"
        )
    for notice in (partial_notice(report), unreadable_notice(report)):
        if notice:
            parts.append(
                f'<p style="{FONT}font-size:13px;color:#1f2933;background-color:#fdecea;padding:10px;margin:8px 0;">'
                f"{escape(notice)}</p>"
            )
    title, rows = bars(metrics, report["period"])
    parts += [_heading(title), _bar_rows(rows)]
    parts += [
        _heading("Appointments by status"),
        _table(
            ["Status", "Appointments"],
            [[label, number(counts[key])] for key, label in STATUSES]
            + [["New bookings made", number(metrics["new_bookings"])]],
        ),
        _heading("Providers"),
        _note(more),
        _table(
            ["Provider", "Appointments", "Booked (h:mm)", "Completed revenue"],
            [
                [p["name"], number(p["appointments"]), hours_minutes(p["booked_hours"]), money(p["revenue_cents"])]
                for p in providers
            ]
            or [["(none)", "-", "-", "-"]],
        ),
        _heading("Messages"),
        _table(
            ["Messages", "Sent", "Delivered", "Failed"],
            [
                [
                    f"{section.capitalize()} by {channel.upper() if channel == 'sms' else channel}",
                    number(c["sent"]),
                    number(c["delivered"]),
                    number(c["failed"]),
                ]
                for section in ("reminders", "confirmations")
                for channel in ("sms", "email")
                for c in [metrics["messages"][section][channel]]
            ],
        ),
        _table(
            ["Rate", "Share"],
            [
                ["Reminders delivered / sent", percent(metrics["reminder_delivery_rate"])],
                ["Appointments confirmed (of those not cancelled)", percent(metrics["confirmation_rate"])],
            ],
        ),
    ]
    wait = metrics["waitlist"]
    median = wait["median_minutes_to_fill"]
    parts += [
        _heading("Waitlist and operations"),
        _table(
            ["", "Value"],
            [
                ["Waitlist offers sent", number(wait["offers_sent"])],
                ["Slots filled", number(wait["slots_filled"])],
                ["Median time to fill", "-" if median is None else f"{number(median)} min"],
                ["Open failed tasks", number(metrics["open_failed_tasks"])],
            ],
        ),
    ]
    if "change" in metrics:
        parts += [
            _heading("Against the week before"),
            _table(
                ["", "This week", "Week before", "Change"],
                [
                    [
                        label,
                        _change_value(key, metrics["change"][key]["current"], money),
                        _change_value(key, metrics["change"][key]["previous"], money),
                        _signed(key, metrics["change"][key]["change"], money),
                    ]
                    for key, label in CHANGE_LABELS.items()
                ],
            ),
        ]
    title_text = f"{clinic_name} – {report['period']} report"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title_text)}</title></head>"
        '<body style="margin:0;padding:0;background-color:#f4f5f7;">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'bgcolor="#f4f5f7" style="background-color:#f4f5f7;width:100%;"><tr><td align="center" '
        'style="padding:24px 12px;">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" bgcolor="#ffffff" '
        'style="width:600px;max-width:100%;background-color:#ffffff;border:1px solid #e1e4e8;"><tr>'
        '<td style="padding:20px 24px;">'
        f'<h1 style="{FONT}font-size:20px;color:#1f2933;margin:0 0 4px 0;">{escape(clinic_name)}</h1>'
        f'<p style="{FONT}font-size:14px;color:#6b7280;margin:0 0 12px 0;">'
        f"{escape(report['period'].capitalize())} report · {escape(period_label(report))}</p>"
        f"{''.join(parts)}"
        f'<p style="{FONT}font-size:12px;color:#6b7280;margin:16px 0 0 0;">The figures are attached as CSV.</p>'
        "</td></tr></table></td></tr></table></body></html>"
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


def csv_rows(report: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """Every figure of the report as (section, item, metric, value)."""
    m = report["metrics"]
    rows: list[tuple[str, str, str, Any]] = [
        ("report", "", name, report.get(name)) for name in ("clinic_id", "period", "start_date", "end_date", "partial")
    ]
    rows += [("appointments", "", key, m["appointments"][key]) for key in ("total", *(k for k, _ in STATUSES))]
    rows += [
        ("revenue", "", "completed_revenue_cents", m["revenue_cents"]),
        ("rates", "", "cancellation_rate", m["cancellation_rate"]),
        ("rates", "", "no_show_rate", m["no_show_rate"]),
        ("rates", "", "confirmation_rate", m["confirmation_rate"]),
        ("rates", "", "reminder_delivery_rate", m["reminder_delivery_rate"]),
        ("bookings", "", "new_bookings", m["new_bookings"]),
    ]
    rows += [("day", d["date"], "appointments", d["appointments"]) for d in m["days"]]
    for p in m["providers"]:
        rows += [("provider", p["name"], key, p[key]) for key in ("appointments", "booked_hours", "revenue_cents")]
    for section in ("reminders", "confirmations"):
        for channel in ("sms", "email"):
            rows += [
                (section, channel, state, m["messages"][section][channel][state])
                for state in ("sent", "delivered", "failed")
            ]
    rows += [
        ("waitlist", "", key, m["waitlist"][key]) for key in ("offers_sent", "slots_filled", "median_minutes_to_fill")
    ]
    rows += [
        ("failed_tasks", "", "open", m["open_failed_tasks"]),
        ("quality", "", "invalid_documents", m["invalid_documents"]),
    ]
    for key in CHANGE_LABELS if "change" in m else ():
        rows += [("change", key, name, m["change"][key][name]) for name in ("previous", "change", "percent")]
    return rows


def report_csv(report: dict[str, Any]) -> bytes:
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
    rows = [
        [
            line["name"],
            line["sku"],
            f"{line['on_hand']} {line['unit']}",
            f"{line['reorder_point']} {line['unit']}",
            f"{line['qty']} {line['unit']}",
        ]
        for line in lines
    ]
    html = [
        f'<h1 style="{FONT}font-size:20px;color:#1f2933;margin:0 0 4px 0;">{escape(clinic_name)}</h1>',
        f'<p style="{FONT}font-size:14px;color:#6b7280;margin:0 0 12px 0;">Inventory check · '
        f"{escape(str(order.get('date', '')))} · a draft purchase order is ready</p>",
        _table(["Product", "SKU", "On hand", "Reorder point", "Order"], rows),
    ]
    if invalid:
        html += [
            _heading("Product records that could not be checked"),
            _table(
                ["Product", "SKU", "Field to fix", "Product id"],
                [[item.get("name", "-"), item.get("sku", "-"), item["field"], item["product_id"]] for item in invalid],
            ),
        ]
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head>'
        '<body style="margin:0;padding:0;background-color:#f4f5f7;">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" bgcolor="#f4f5f7">'
        '<tr><td align="center" style="padding:24px 12px;">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" bgcolor="#ffffff" '
        'style="width:600px;max-width:100%;background-color:#ffffff;border:1px solid #e1e4e8;"><tr>'
        f'<td style="padding:20px 24px;">{"".join(html)}</td></tr></table></td></tr></table></body></html>'
    )
    return Email(subject=subject, text="\n".join(text) + "\n", html=body)
