"""HTML from Jinja2 templates with autoescape: every value a template writes is escaped (text and
attributes alike), so a clinic, patient or product name can never become markup.

A template is a file in a folder beside the module that renders it (`reports/templates/`,
`messaging/patient_emails/`, `waitlist/pages/`; deploy/stage.py ships shared/ whole). One Environment
per folder, built on the first render rather than at import, so an entry point that renders nothing
compiles nothing; it is kept for the process and compiles each template once. Whitespace between two
tags is dropped from the output: a template is laid out for its reader while the message stays as
compact as hand-joined HTML (Gmail clips a message past ~102 KB). A value is escaped before that, so it
holds no `<` or `>` and is never touched.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jinja2

_BETWEEN_TAGS = re.compile(r">\s+<")


@functools.cache
def _environment(folder: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a name a template misspells fails the render, never prints ""
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the files do not change while a process runs
    )


def render_html(folder: Path, name: str, **context: Any) -> str:
    """The template `name` of `folder`, rendered with `context`."""
    html = _environment(folder).get_template(name).render(context)
    return _BETWEEN_TAGS.sub("><", html).strip()
