"""Provider sandbox: a local Twilio + SendGrid stand-in (see local/sandbox/server.py).

Names are imported lazily so `python -m local.sandbox.server` does not import the server module twice.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sandbox", "SandboxServer", "SandboxSettings", "make_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("SandboxServer", "make_app", "serve"):
        from local.sandbox import server

        return getattr(server, name)
    if name == "Sandbox":
        from local.sandbox.state import Sandbox

        return Sandbox
    if name == "SandboxSettings":
        from local.sandbox.settings import SandboxSettings

        return SandboxSettings
    raise AttributeError(name)
