"""Reading environment variables: the one parser of text, integers and numbers, failing by name."""

from __future__ import annotations

import os
from collections.abc import Mapping

from shared.platform.errors import ConfigError

Environ = Mapping[str, str]


def environ(env: Environ | None = None) -> Environ:
    return os.environ if env is None else env


def text(env: Environ, name: str, default: str = "") -> str:
    return env.get(name, "").strip() or default


def required(env: Environ, name: str, hint: str = "") -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing required environment variable {name}{hint}")
    return value


def integer(env: Environ, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer variable (empty → default); a malformed or out-of-range value names the variable."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw[:40]!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ConfigError(f"environment variable {name} must be between {minimum} and {maximum}, got {value}")
    return value


def number(env: Environ, name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a number, got {raw[:40]!r}") from None
    if not value >= minimum:  # also refuses NaN
        raise ConfigError(f"environment variable {name} must be at least {minimum}, got {raw[:40]!r}")
    return value


def switch(env: Environ, name: str) -> bool:
    """An on/off variable (empty → off); anything but on/off names the variable: a typo never means "off"."""
    raw = env.get(name, "").strip().lower()
    if raw not in ("", "on", "off"):
        raise ConfigError(f"environment variable {name} must be on or off, got {raw[:40]!r}")
    return raw == "on"
