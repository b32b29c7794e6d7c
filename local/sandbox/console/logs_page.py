"""Logs: what each part of the local stack wrote to <state dir>/logs/<name>.log (functions, front, bridge,
emulators, this sandbox), the newest lines first, filtered by least severity and by text. Only the file's
tail is read (TAIL_BYTES at most, never the whole file), and at most MAX_LINES are shown; a structured
JSON line shows its severity, message and fields, any other line as text. Values are scrubbed (the
functions never log PHI; a stray phone number or email in a third-party line is masked all the same)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from local.sandbox.console.layout import html_response, render
from shared.platform.masking import scrub

if TYPE_CHECKING:
    from local.sandbox.console import Console

TAIL_BYTES = 1024 * 1024
MAX_LINES = 500
SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")

LIST = "logs.html"

VIEW = "log.html"


@dataclass(frozen=True)
class LogLine:
    severity: str
    message: str
    fields: str  # the JSON line's other fields, compact; "" for a plain line


def logs_dir() -> Path:
    """The running stack's log folder (MEDSPA_STATE_DIR, as local.config reads it)."""
    from local.config import load

    return load().state_dir / "logs"


def log_files(folder: Path) -> dict[str, int]:
    """Log name → size in bytes, for every <name>.log in the folder."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return {}
    return {
        entry.name[:-4]: entry.stat().st_size
        for entry in sorted(entries, key=lambda entry: entry.name)
        if entry.name.endswith(".log") and entry.is_file() and NAME.match(entry.name[:-4])
    }


def tail(path: Path, limit: int = TAIL_BYTES) -> tuple[list[str], bool]:
    """The last whole lines within `limit` bytes of the file, and whether earlier lines were left unread."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        start = max(0, size - limit)
        handle.seek(start)
        chunk = handle.read(size - start)
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # the first line was cut by the seek
    return lines, start > 0


def parse(line: str) -> LogLine:
    """A JSON log line (severity, message, fields) or a plain one (severity DEFAULT)."""
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            entry: Any = json.loads(stripped)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            severity = str(entry.pop("severity", "DEFAULT")).upper()
            message = str(entry.pop("message", ""))
            fields = json.dumps(entry, ensure_ascii=False, default=str)[:2000] if entry else ""
            return LogLine(severity if severity in SEVERITIES else "DEFAULT", scrub(message), scrub(fields))
    return LogLine("DEFAULT", scrub(line[:4000]), "")


def chosen(lines: list[str], least: str, text: str) -> tuple[list[LogLine], int]:
    """Matching lines newest first (at most MAX_LINES), and how many matched in all."""
    floor = SEVERITIES.index(least) if least in SEVERITIES else 0
    words = text.lower().split()
    kept = []
    for line in reversed(lines):
        entry = parse(line)
        if SEVERITIES.index(entry.severity) < floor:
            continue
        if words and not all(word in f"{entry.message} {entry.fields}".lower() for word in words):
            continue
        kept.append(entry)
    return kept[:MAX_LINES], len(kept)


def routes(blueprint: Blueprint, console: Console) -> None:
    @blueprint.get("/logs")
    def logs_list() -> Response:
        folder = logs_dir()
        return html_response(render(LIST, title="Logs", active="logs", files=log_files(folder), folder=folder))

    @blueprint.get("/logs/<name>")
    def log_view(name: str) -> Response:
        folder = logs_dir()
        files = log_files(folder)
        if name not in files:  # only a file listed in the folder: no path ever comes from the request
            return html_response(render(LIST, title="Logs", active="logs", files=files, folder=folder), status=404)
        least = request.args.get("severity", "").upper()[:20]
        text = request.args.get("q", "")[:200]
        lines, cut = tail(folder / f"{name}.log")
        shown, matched = chosen(lines, least, text)
        page = render(
            VIEW,
            title=f"Logs: {name}",
            active="logs",
            log_name=name,
            files=files,
            size=files[name],
            severities=SEVERITIES,
            least=least if least in SEVERITIES else "",
            text=text,
            lines=shown,
            matched=matched,
            read=len(lines),
            cut=cut,
            tail_bytes=TAIL_BYTES,
            query=urlencode({key: value for key, value in (("severity", least), ("q", text)) if value}),
        )
        return html_response(page)
