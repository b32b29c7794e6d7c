"""The console's shared shell: the Jinja environment every page renders through (templates/, whose
layout.html holds the one navigation bar), the stylesheet and the small live-update script (static/).

Every template is autoescaped: message bodies and Firestore values are patient-facing or operator-edited
text, never trusted HTML (an email's HTML part is shown only inside a sandboxed iframe, as `srcdoc`). A
field a document lacks renders empty (operators edit these documents by hand).
Nothing is loaded from outside the sandbox: no font, script or stylesheet from a CDN. The live regions
(`data-live`) are re-fetched as fragments when the event stream says something changed, or every
`data-poll` ms for the Firestore views: never a full-page reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Response
from jinja2 import ChainableUndefined, Environment, FileSystemLoader
from markupsafe import Markup

from shared.platform.masking import mask_address

HERE = Path(__file__).resolve().parent
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
NAV = (
    ("outbox", "/", "Outbox"),
    ("conversations", "/conversations", "Conversations"),
    ("operations", "/operations", "Operations"),
    ("faults", "/faults", "Faults"),
    ("reports", "/reports", "Reports"),
    ("campaigns", "/campaigns", "Campaigns"),
    ("logs", "/logs", "Logs"),
)

# Scripts only from this origin (console.js), no plugin, no outside request of any kind; inline styles are
# allowed because report emails carry them (their HTML renders in a sandboxed srcdoc iframe, which
# inherits this policy and, sandboxed without allow-scripts, runs nothing).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"
)


def _when(value: Any) -> str:
    """An ISO instant as 'YYYY-MM-DD HH:MM:SS' (UTC), for tables."""
    if isinstance(value, datetime):
        value = value.isoformat()
    text = str(value or "")
    return text.replace("T", " ")[:19]


def _masked(value: Any) -> str:
    return mask_address(str(value)) if value else ""


def _count(value: Any, word: str) -> str:
    """'1 message', '3 messages', 'no messages': never an empty '()'."""
    number = len(value) if isinstance(value, list | tuple | dict) else int(value or 0)
    if number == 0:
        return f"no {word}s"
    return f"{number} {word}" + ("" if number == 1 else "s")


ENVIRONMENT = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=ChainableUndefined, trim_blocks=True
)
ENVIRONMENT.filters.update(when=_when, masked=_masked, count=_count)
ENVIRONMENT.globals.update(nav=NAV)


def render(name: str, **context: Any) -> str:
    """A page (templates that extend layout.html) or a fragment, every value escaped."""
    context.setdefault("events", False)
    context.setdefault("poll", 0)
    return ENVIRONMENT.get_template(name).render(**context)


def html_response(body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A console page: never cached, never framed elsewhere, scripts only from here."""
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def static(name: str) -> Response:
    response = Response((HERE / "static" / name).read_text(), mimetype=STATIC[name])
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def trusted(fragment: str) -> Markup:
    """A fragment rendered by `render` (so already escaped), for embedding in a page."""
    return Markup(fragment)  # noqa: S704 - rendered by an autoescaping template: every value in it is escaped
