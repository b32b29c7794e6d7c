"""SendGrid's HTTP client (python_http_client) sent over a keep-alive requests.Session instead of urllib.

python_http_client opens a new urllib connection for every request and asks for `Connection: close`. This
transport sends the same requests (method, URL, the sendgrid package's headers, body) over one
shared.platform.sessions session. An HTTP answer >= 400 is raised as python_http_client raises it
(`BadRequestsError`, `TooManyRequestsError`… with status, body and headers); a request that got no answer
raises requests' own exception, unchanged: which of those are safe to retry is decided once, by type, in
shared.messaging.providers (docs/architecture.md, "Provider connections").
"""

from __future__ import annotations

import functools
import json
from typing import Any

from shared.platform.sessions import session


def keep_alive(client: Any) -> Any:
    """A python_http_client.Client like `client` (host, version, headers, path, timeout) sending over a session."""
    transport = _client_class()(
        host=client.host,
        version=client._version,
        request_headers=client.request_headers,
        url_path=list(client._url_path),
        append_slash=client.append_slash,
        timeout=client.timeout,
    )
    transport.session = session()
    return transport


@functools.cache
def _client_class() -> type:
    import python_http_client
    from python_http_client.exceptions import HTTPError, err_dict

    class Answer(python_http_client.client.Response):  # type: ignore[misc]  # the library ships no types
        """A requests.Response as python_http_client's Response: status code, body and headers."""

        def __init__(self, response: Any) -> None:  # no super().__init__: it reads a urllib answer
            self._status_code = int(response.status_code)
            self._body = bytes(response.content)
            self._headers = response.headers

    class SessionClient(python_http_client.Client):  # type: ignore[misc]
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
                response = self.session.request(
                    method,
                    self._build_url(query_params),
                    data=data,
                    headers=dict(self.request_headers),
                    timeout=timeout or self.timeout,
                )
                if response.status_code >= 400:
                    error = err_dict.get(response.status_code, HTTPError)
                    raise error(response.status_code, response.reason or "", response.content, response.headers)
                return Answer(response)

            return http_request

    return SessionClient
