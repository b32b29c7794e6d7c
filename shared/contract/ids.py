"""Document ids as this product accepts them: Firestore's own document-id rules, and ours on top.

Firestore refuses an id that is empty, longer than 1,500 bytes, contains "/", is "." or "..", or
matches __.*__. Ours are narrower (letters, digits and _ . : - only, at most 200 characters) and
checked with fullmatch: `re.match` with `$` lets a trailing newline through ("a1\\n").
"""

from __future__ import annotations

import re
from typing import TypeGuard

ID = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")
_RESERVED = re.compile(r"__.*__")


def is_doc_id(value: object) -> TypeGuard[str]:
    """True for a string Firestore accepts as a document id and this product's pattern allows."""
    return (
        isinstance(value, str)
        and ID.fullmatch(value) is not None
        and value not in (".", "..")
        and _RESERVED.fullmatch(value) is None
    )
