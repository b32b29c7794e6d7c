"""A webhook a provider signs (Twilio's status callbacks and inbound texts, SendGrid's event batches):
size → signature → run → answer.

- a body over `max_bytes` → 413 before anything is parsed;
- a signature that does not verify → 403 (or 503 while the key is not configured, so the provider retries),
  before anything is read or written;
- `run` answers the request; a PermanentError it raises is answered by `on_permanent` when given (an
  inbound text answered empty: retrying the same message would fail the same way), else as the taxonomy
  says (shared/platform/http.py); anything else is classified there too (transient → 503), never a stack
  trace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.platform import log
from shared.platform.errors import MedspaError, PermanentError
from shared.platform.http import Response, json_response, to_response


@dataclass(frozen=True)
class SignedWebhook:
    name: str  # heads the log lines ("status callback refused")
    verify: Callable[[Any], None]  # the request → None, or a MedspaError (Unauthorized, ConfigError …)
    run: Callable[[Any], Response]
    max_bytes: int | None = None
    on_permanent: Callable[[PermanentError], Response] | None = None

    def __call__(self, request: Any) -> Response:
        if self.max_bytes is not None and (request.content_length or 0) > self.max_bytes:
            return json_response({"error": "oversized_body"}, 413)
        try:
            self.verify(request)
        except MedspaError as exc:
            log.warning(f"{self.name} refused", error_code=exc.code)
            return to_response(exc)
        try:
            return self.run(request)
        except PermanentError as exc:
            if self.on_permanent is None:
                return to_response(exc)
            log.warning(f"{self.name} rejected; answered", error_code=exc.code, error=str(exc))
            return self.on_permanent(exc)
        except Exception as exc:  # noqa: BLE001 - one boundary: transient → 503, never a stack trace
            return to_response(exc)
