"""The outbox page at `/`: what a person would have received, newest first, recipients masked."""

from __future__ import annotations

from typing import Any

from flask import render_template_string

from local.sandbox.firestore_status import APPOINTMENT_STATUSES
from shared.platform.masking import mask_address

SNIPPET_CHARS = 80
PAGE_ROWS = 200  # the newest; the JSON API has them all

# render_template_string autoescapes, so message bodies cannot inject markup into the page.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<noscript><meta http-equiv="refresh" content="5"></noscript>
<script>
 // Reload every 5 s, except while a reply is being typed.
 setInterval(function () {
   if (!document.activeElement || document.activeElement.tagName !== "INPUT") location.reload();
 }, 5000);
</script>
<title>Provider sandbox — outbox</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
 table { border-collapse: collapse; width: 100%; margin-bottom: 2rem; }
 th, td { border-bottom: 1px solid #ddd; padding: .35rem .6rem; text-align: left; vertical-align: top; }
 th { background: #f4f4f4; }
 .failed, .undelivered, .bounce { color: #b00020; font-weight: 600; }
 .delivered { color: #1b5e20; }
 .muted { color: #777; }
 code { font-size: .9em; }
</style>
</head>
<body>
<h1>Provider sandbox</h1>
<p class="muted">Twilio and SendGrid stand-in. {{ total }} message(s){% if total > messages|length %}
 (newest {{ messages|length }} shown; all in <a href="/_sandbox/messages">/_sandbox/messages</a>){% endif %}
{%- if faults %},
 {{ faults|length }} active fault rule(s){% endif %}. Refreshes every 5 s.</p>

<h2>Outbox</h2>
{% if messages %}
<table>
 <thead><tr><th>Time (UTC)</th><th>Channel</th><th>Direction</th><th>To</th><th>From</th><th>Status</th>
 <th>Error</th><th>Subject / body</th><th>Provider id</th><th>Reply as the patient</th></tr></thead>
 <tbody>
 {% for m in messages %}
 <tr>
  <td>{{ m.time }}</td><td>{{ m.channel }}</td><td>{{ m.direction }}</td>
  <td><code>{{ m.to }}</code></td><td><code>{{ m.from }}</code></td>
  <td class="{{ m.status }}">{{ m.status }}</td><td>{{ m.error_code or "" }}</td>
  <td>{{ m.summary }}</td><td><code class="muted">{{ m.id }}</code></td>
  <td>{% if m.can_reply %}<form method="post" action="/_sandbox/reply">
   <input type="hidden" name="message_id" value="{{ m.id }}"><input name="body" size="8" placeholder="YES, C, HELP…"
   aria-label="reply text"><button type="submit">Reply</button></form>{% endif %}</td>
 </tr>
 {% endfor %}
 </tbody>
</table>
{% else %}
<p class="muted">No messages yet.</p>
{% endif %}

<h2>Status view</h2>
{% if status.firestore == "ok" %}
<p class="muted">Firestore project <code>{{ status.project }}</code>, read at {{ status.checked_at }}.</p>
<table>
 <thead><tr><th>Clinic</th><th>Time zone</th><th>Patients</th>
 {% for s in appointment_statuses %}<th>Appts {{ s }}</th>{% endfor %}</tr></thead>
 <tbody>
 {% for c in status.clinics %}
 <tr><td>{{ c.name or c.id }}</td><td>{{ c.timezone }}</td><td>{{ c.patients }}</td>
 {% for s in appointment_statuses %}<td>{{ c.appointments[s] }}</td>{% endfor %}</tr>
 {% else %}
 <tr><td colspan="8" class="muted">No clinics.</td></tr>
 {% endfor %}
 </tbody>
</table>
{% for title, counts in [("Notifications by state", status.notifications),
                         ("Failed tasks by status", status.failed_tasks)] %}
<h3>{{ title }}</h3>
<table>
 <thead><tr>{% for key in counts %}<th>{{ key }}</th>{% endfor %}</tr></thead>
 <tbody><tr>{% for value in counts.values() %}<td>{{ value }}</td>{% endfor %}</tr></tbody>
</table>
{% endfor %}
{% elif status.firestore == "unreachable" %}
<p class="failed">Firestore unreachable ({{ status.error }}). Counts will return when the emulator answers.</p>
{% else %}
<p class="muted">Firestore not configured ({{ status.error }}).</p>
{% endif %}
</body>
</html>
"""


def _summary(message: dict[str, Any]) -> str:
    text = message["subject"] if message["channel"] == "email" else message["body"]
    text = " ".join((text or "").split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def page_row(message: dict[str, Any]) -> dict[str, Any]:
    """One table row: the patient's own words may show, the patient's address never does."""
    return {
        "time": message["created_at"].replace("T", " ").rstrip("Z"),
        "channel": message["channel"],
        "direction": message["direction"],
        "to": mask_address(message["to"]),
        "from": mask_address(message["from"] or message["messaging_service_sid"]),
        "status": message["status"],
        "error_code": message["error_code"],
        "summary": _summary(message),
        "id": message["id"],
        "can_reply": message["channel"] == "sms" and message["direction"] == "outbound",
    }


def render_outbox(
    messages: list[dict[str, Any]], total: int, faults: list[dict[str, Any]], status: dict[str, Any]
) -> str:
    """The page: `messages` oldest first (shown newest first), `total` held, active faults, status figures."""
    rows = [page_row(message) for message in reversed(messages)]
    return render_template_string(
        PAGE, messages=rows, total=total, faults=faults, status=status, appointment_statuses=APPOINTMENT_STATUSES
    )
