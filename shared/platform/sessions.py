"""HTTP sessions that keep their connections alive, for the provider clients (Twilio's, and SendGrid's transport).

A requests.Session keeps a connection per origin alive between requests, so a warm instance does not pay a
TCP and TLS handshake per message. This one also works out its environment settings (proxies, CA bundle)
once per origin: requests scans the whole environment for proxy variables on every request (about 0.4 ms),
and an instance's environment does not change while it runs.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests


def session() -> Any:
    """A new requests.Session that works out its environment settings once per origin."""
    return _session_class()()


@functools.cache
def _session_class() -> type[requests.Session]:
    import requests

    class Session(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self.environment: dict[tuple[Any, ...], dict[str, Any]] = {}

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
            origin = "/".join(str(url).split("/", 3)[:3])  # proxies depend on the scheme and host only
            key = (origin, tuple(sorted((proxies or {}).items())), stream, verify, cert)
            found = self.environment.get(key)
            if found is None:
                found = super().merge_environment_settings(url, proxies, stream, verify, cert)
                self.environment[key] = found
            return {**found, "proxies": dict(found["proxies"])}

    return Session
