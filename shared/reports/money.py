"""Amounts in a clinic's currency (ISO 4217 code, clinics/{id}.currency, default USD), written the way its
locale ("en" or "es") writes them: "$1,234.50" and "CHF 1,234.50"; "1234,50 US$" and "12.345,50 €".

A small table rather than a locale library such as Babel, heavy to import in a function that must start
fast: the minor units of every ISO 4217 currency that does not have two (so yen and dinars come out right),
and symbols for the common ones in each locale; any other code is written as itself, with two decimals.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULT_CURRENCY = "USD"
ISO_CODE = re.compile(r"[A-Z]{3}")
NBSP = "\u00a0"

# ISO 4217 minor units other than 2.
MINOR_UNITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF")
        + ("XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}
# code → (symbol in "en", symbol in "es"); a code missing here is written as itself.
SYMBOLS = {
    "USD": ("$", "US$"),
    "EUR": ("€", "€"),
    "GBP": ("£", "GBP"),
    "CAD": ("CA$", "CA$"),
    "AUD": ("A$", "AUD"),
    "NZD": ("NZ$", "NZD"),
    "MXN": ("MX$", "MXN"),
    "BRL": ("R$", "BRL"),
    "JPY": ("¥", "JPY"),
    "CNY": ("CN¥", "CNY"),
    "INR": ("₹", "INR"),
    "KRW": ("₩", "KRW"),
    "ILS": ("₪", "ILS"),
}


def is_currency(code: Any) -> bool:
    return isinstance(code, str) and bool(ISO_CODE.fullmatch(code))


def format_money(minor: Any, currency: Any = DEFAULT_CURRENCY, locale: Any = "en") -> str:
    """An amount in minor units (cents, or yen) in the currency and locale given; "-" when it is no amount.
    A currency that is not an ISO code (a clinic setting that broke the contract) gets no symbol."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        return "-"
    code = currency if is_currency(currency) else None
    digits = MINOR_UNITS.get(code or "", 2)
    whole, part = divmod(abs(minor), 10**digits)
    sign = "-" if minor < 0 else ""
    en_symbol, es_symbol = SYMBOLS.get(code, (code, code)) if code else ("", "")
    if locale == "es":
        # Spanish groups thousands with "." only from five digits (CLDR's minimum grouping digits, 2).
        grouped = f"{whole:,}".replace(",", ".") if whole >= 10_000 else str(whole)
        fraction = f",{part:0{digits}d}" if digits else ""
        return f"{sign}{grouped}{fraction}{NBSP + es_symbol if es_symbol else ''}"
    fraction = f".{part:0{digits}d}" if digits else ""
    gap = " " if en_symbol[-1:].isalpha() else ""
    return f"{sign}{en_symbol}{gap}{whole:,}{fraction}"
