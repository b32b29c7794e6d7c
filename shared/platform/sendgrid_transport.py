"""SendGrid's HTTP client (python_http_client) sent over a keep-alive requests.Session instead of urllib.

python_http_client opens a new urllib connection for every request and asks for `Connection: close`. This
transport sends the same requests (method, URL, the sendgrid package's headers, body) over one
shared.platform.sessions session, with the same exceptions on failure (which failures are safe to retry:
docs/architecture.md, "Provider connections").
"""

from __future__ import annotations

import functools
import json
from typing import Any

from shared.platform.sessions import session


def keep_alive(client: Any) -> Any:
    """A python_http_client.Client that sends its requests over one requests.Session instead of urllib: the
    same requests (method, URL, the sendgrid package's headers, body), the same answers and exceptions,
    but connections kept alive (urllib opens one per request and says `Connection: close`)."""
    session_client = _session_client_class()(
        host=client.host,
        version=client._version,
        request_headers=client.request_headers,
        url_path=list(client._url_path),
        append_slash=client.append_slash,
        timeout=client.timeout,
    )
    session_client.session = session()
    return session_client


@functools.cache
def _session_client_class() -> type:
    import python_http_client

    class SessionClient(python_http_client.Client):
        session: Any = None

        def _build_client(self, name: str | None = None) -> Any:
            url_path = self._url_path + [name] if name else self._url_path
            child = type(self)(
                host=self.host,
                version=self._version,
                request_headers=self.request_headers,
                url_path=url_path,
                append_slash=self.append_slash,
                timeout=self.timeout,
            )
            child.session = self.session
            return child

        def __getattr__(self, name: str) -> Any:
            if name not in self.methods:
                return super().__getattr__(name)  # a URL segment, or version()
            method = name.upper()

            def http_request(
                request_body: Any = None,
                query_params: Any = None,
                request_headers: Any = None,
                timeout: float | None = None,
                **_: Any,
            ) -> Any:
                # python_http_client's own http_request, without the urllib opener it builds on every call
                # (its handlers and proxy lookup were a third of an email's CPU) that this transport never uses.
                if request_headers:
                    self._update_headers(request_headers)
                if request_body is None:
                    data = None
                elif self.request_headers.get("Content-Type", "application/json") != "application/json":
                    data = request_body.encode("utf-8")
                else:
                    self.request_headers.setdefault("Content-Type", "application/json")
                    data = json.dumps(request_body).encode("utf-8")
                url = self._build_url(query_params)
                answer = _send(self.session, method, url, dict(self.request_headers), data, timeout or self.timeout)
                return python_http_client.client.Response(answer)

            return http_request

    return SessionClient


class _Answer:
    """A requests.Response as python_http_client.Response reads a urllib answer."""

    def __init__(self, response: Any) -> None:
        self.response = response

    def getcode(self) -> int:
        return int(self.response.status_code)

    def read(self) -> bytes:
        return bytes(self.response.content)

    def info(self) -> Any:
        return _message(self.response.headers)


def _message(headers: Any) -> Any:
    import http.client

    message = http.client.HTTPMessage()
    for name, value in headers.items():
        message[name] = value
    return message


def _send(session: Any, method: str, url: str, headers: dict[str, str], data: bytes | None, timeout: Any) -> Any:
    """A request sent through `session`; errors raised as urllib (and python_http_client) raise them."""
    import io
    import urllib.error

    import requests
    from python_http_client.exceptions import handle_error

    try:
        response = session.request(method, url, data=data, headers=headers, timeout=timeout)
    except requests.ConnectTimeout:
        # No connection, so nothing sent: safe to retry (urllib cannot tell this from a timeout mid-send).
        raise urllib.error.URLError(ConnectionRefusedError("connect timed out")) from None
    except requests.ReadTimeout:
        raise TimeoutError("timed out") from None  # as a read timeout in getresponse()
    except requests.ConnectionError as exc:
        text = repr(exc)
        if "NewConnectionError" in text or "NameResolutionError" in text or "BrokenPipe" in text:
            raise urllib.error.URLError(OSError(text[:200])) from None  # nothing (whole) reached the provider
        raise ConnectionResetError(text[:200]) from None  # the request went out; its answer did not come back
    if response.status_code >= 400:
        error = urllib.error.HTTPError(
            url,
            response.status_code,
            response.reason or "",
            _message(response.headers),
            io.BytesIO(response.content),
        )
        raise handle_error(error) from None
    return _Answer(response)
