"""Decoding what arrives from outside (task bodies, Pub/Sub message data) into plain JSON values, once.

The result holds only what every later step can store and log: bounded size and nesting, strings
that are valid Unicode (no lone surrogates such as "\\ud800", which Firestore and UTF-8 refuse), integers
that fit Firestore's 64 bits, finite numbers. Anything else is a `PermanentError` with a code, so the
caller records it and answers 2xx (or acknowledges), never 5xx: retrying the same bytes cannot help.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from operator import add
from typing import Any

from shared.platform.errors import PermanentError

MAX_DEPTH = 8
INT64 = (-(2**63), 2**63 - 1)

# A string literal, its closing quote optional: an unterminated one ends the scan in one match, where
# restarting at each of its escaped quotes would make the scan quadratic. Bytes of a multi-byte UTF-8
# character are never ASCII, so no bracket or quote can hide inside one.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_PUNCTUATION = b"[]{} \t\n\r,:"
_STEP = tuple(1 if byte in b"[{" else -1 if byte in b"]}" else 0 for byte in range(256))
_SCALAR = tuple(0 if byte in _PUNCTUATION else 1 for byte in range(256))


def decode_object(
    raw: bytes, *, max_bytes: int, empty_ok: bool = False, what: str = "body", not_object_code: str = "not_an_object"
) -> dict[str, Any]:
    """Bytes → a JSON object of checked values, or a PermanentError naming why not."""
    if len(raw) > max_bytes:
        raise PermanentError(f"{what} is {len(raw)} bytes, over {max_bytes}", code="oversized_body")
    if empty_ok and not raw.strip():
        return {}
    if nesting_depth(raw) > MAX_DEPTH:
        raise PermanentError(f"{what} is nested deeper than {MAX_DEPTH} levels", code="too_deep")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError):
        raise PermanentError(f"{what} is not JSON", code="malformed_json") from None
    if not isinstance(body, dict):
        raise PermanentError(f"{what} is not a JSON object", code=not_object_code)
    check_value(body, what=what)
    return body


def nesting_depth(raw: bytes) -> int:
    """How many containers enclose the deepest value of JSON text (as `check_value` counts), read from
    the bytes in one linear pass, so the parser is never handed more nesting than the limit.

    Not json's RecursionError: 3.11 counts its C recursion against sys.getrecursionlimit() (1,000, shared
    with the Python frames), 3.12 against a separate fixed budget (1,500), so a depth-1,000 list is an
    error on one and a value on the other."""
    tokens = _STRING.sub(b"0", raw)  # a string is one scalar; its brackets are text
    # The depth inside each byte, plus one for a scalar's: a scalar at depth d reaches d + 1, as does a
    # container at depth d once opened.
    reached = max(map(add, accumulate(map(_STEP.__getitem__, tokens)), map(_SCALAR.__getitem__, tokens)), default=0)
    return max(reached - 1, 0)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python accepts them, JSON does not


def check_value(value: Any, *, what: str = "body", depth: int = 0) -> None:
    """Walk a decoded JSON value once, refusing what cannot be stored or logged faithfully."""
    if depth > MAX_DEPTH:
        raise PermanentError(f"{what} is nested deeper than {MAX_DEPTH} levels", code="too_deep")
    if isinstance(value, str):
        if not is_clean_text(value):
            raise PermanentError(f"{what} holds a string that is not valid Unicode", code="bad_string")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise PermanentError(f"{what} holds an integer beyond 64 bits", code="number_out_of_range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PermanentError(f"{what} holds a number that is not finite", code="number_out_of_range")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_value(key, what=what, depth=depth + 1)
            check_value(item, what=what, depth=depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_value(item, what=what, depth=depth + 1)


def is_clean_text(text: str) -> bool:
    """True when the string encodes to UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def safe_text(text: str, limit: int) -> str:
    """A string that can always be stored: lone surrogates replaced, cut to `limit` characters."""
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]
