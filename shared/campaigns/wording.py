"""What a campaign's SMS says: its template's merge fields, the STOP line, and what it costs to send.

Merge fields are `{first_name}`, `{clinic_name}` and `{link}`; any other is refused when the campaign is
created, never discovered at send time. Every marketing message ends with the STOP line.

Segments follow GSM 03.38: a message entirely in the GSM-7 basic set (extension characters count twice)
is one segment up to 160 characters, else 153 per segment; any other character makes it UCS-2: 70 UTF-16
code units, else 67 per segment. A segment never splits an escape pair or a surrogate pair, so a
character that would straddle a boundary starts the next segment, as the carriers split.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass

from shared.platform.errors import PermanentError

MERGE_FIELDS = ("first_name", "clinic_name", "link")
STOP_LINE = "Reply STOP to opt out."
ESTIMATE_FIRST_NAME = "Alexandrina"  # a long common name: the estimate errs on the side of more segments

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")  # each sent as ESC + a character: two septets
GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


class TemplateError(PermanentError):
    """A template names a merge field we do not fill, or is malformed."""

    code = "bad_template"


def check_template(template: str, *, has_link: bool) -> tuple[str, ...]:
    """The merge fields `template` uses; TemplateError for an unknown one, a format spec or a stray brace."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"template is malformed: {exc} (write a literal brace as {{{{ or }}}})") from None
    used = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in MERGE_FIELDS:
            raise TemplateError(f"unknown merge field {{{name}}}: use {', '.join('{' + f + '}' for f in MERGE_FIELDS)}")
        if spec or conversion:
            raise TemplateError(f"merge field {{{name}}} takes no format")
        used.append(name)
    if "link" in used and not has_link:
        raise TemplateError("the template uses {link} but the campaign has no link")
    return tuple(dict.fromkeys(used))


def render(template: str, values: Mapping[str, str]) -> str:
    """The message one recipient gets: merge fields filled, the STOP line appended."""
    filled = template.format_map({name: values.get(name, "") for name in MERGE_FIELDS})
    return f"{filled.rstrip()}\n{STOP_LINE}"


def is_gsm7(text: str) -> bool:
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    count: int


def segments(text: str) -> Segments:
    """How many SMS segments `text` is sent as."""
    if is_gsm7(text):
        widths = [2 if char in GSM7_EXTENSION else 1 for char in text]
        encoding, single, multi = "GSM-7", GSM7_SINGLE, GSM7_MULTI
    else:
        widths = [2 if ord(char) > 0xFFFF else 1 for char in text]
        encoding, single, multi = "UCS-2", UCS2_SINGLE, UCS2_MULTI
    units = sum(widths)
    if units <= single:
        return Segments(encoding, units, 1 if units else 0)
    count, room = 1, multi
    for width in widths:
        if width > room:
            count, room = count + 1, multi
        room -= width
    return Segments(encoding, units, count)


def estimate_cost_cents(segment_count: int, recipients: int, price_per_segment_cents: float) -> int:
    """segments × recipients × the clinic's price per segment, rounded up to a whole cent."""
    return math.ceil(segment_count * recipients * price_per_segment_cents)


def sample(template: str, clinic_name: str, link: str | None) -> str:
    """The message as the estimate counts it (a long first name: actual messages are rarely longer)."""
    return render(template, {"first_name": ESTIMATE_FIRST_NAME, "clinic_name": clinic_name, "link": link or ""})
