"""SendGrid through the keep-alive transport (shared.platform.sendgrid_transport), against a local HTTP server:
the official client's request arrives as urllib sends it (method, path, headers, body), several sends share
one connection, an HTTP error is python_http_client's, and every failure is classified as it was over urllib."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sendgrid import SendGridAPIClient

from shared.messaging.providers import OutgoingEmail, RecipientRejected, SendGridEmail, SendUnconfirmed
from shared.platform.errors import RetryableError
from shared.platform.sendgrid_transport import keep_alive
from tests.spare_ports import free_port

EMAIL = OutgoingEmail(
    to="p@example.com", sender="c@example.com", subject="Hi", text="t", html="<p>t</p>", reference="k-1"
)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict[str, Any]] = []
        self.connections: set[int] = set()
        self.answer: tuple[int, dict[str, str]] | str = (202, {"X-Message-Id": "msg-1"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.connections.add(id(self.connection))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.requests.append({"path": self.path, "headers": headers, "body": json.loads(body)})
        answer = self.server.answer
        if answer == "drop":  # the request arrived; the answer never goes back
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if answer == "hang":
            threading.Event().wait(2)
            return
        assert not isinstance(answer, str)
        status, headers = answer
        payload = b'{"errors": [{"message": "bad"}]}' if status >= 400 else b""
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(payload))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    thread = threading.Thread(target=running.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def client_for(url: str, timeout: float = 5.0) -> Any:
    client = SendGridAPIClient(api_key="SG.test", host=url)
    client.client = keep_alive(client.client)
    client.client.timeout = timeout
    return client


def url_of(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_the_official_clients_request_arrives_unchanged_and_connections_are_reused(server):
    email = SendGridEmail(client_for(url_of(server)))
    assert [email.send_email(EMAIL) for _ in range(3)] == ["msg-1"] * 3
    first = server.requests[0]
    assert first["path"] == "/v3/mail/send"
    headers = first["headers"]
    assert headers["authorization"] == "Bearer SG.test"
    assert headers["user-agent"].startswith("sendgrid/") and headers["accept"] == "application/json"
    assert headers["content-type"] == "application/json"
    assert first["body"]["personalizations"] == [{"to": [{"email": "p@example.com"}]}]
    assert first["body"]["custom_args"] == {"ledger_key": "k-1"}
    assert len(server.connections) == 1  # one connection for three sends


@pytest.mark.parametrize(
    ("answer", "kind", "code"),
    [
        ((400, {}), RecipientRejected, "email_rejected"),
        ((429, {"Retry-After": "12"}), RetryableError, "sendgrid_throttled"),
        ((503, {}), RetryableError, "sendgrid_unavailable"),
        ("drop", SendUnconfirmed, "sendgrid_answer_lost"),
    ],
)
def test_answers_and_lost_answers_are_classified_as_over_urllib(server, answer, kind, code):
    server.answer = answer
    with pytest.raises(kind) as caught:
        SendGridEmail(client_for(url_of(server))).send_email(EMAIL)
    assert caught.value.code == code
    if code == "sendgrid_throttled":
        assert caught.value.retry_after_seconds == 12


def test_a_read_timeout_is_an_answer_lost_and_a_refused_connection_is_unreachable(server):
    server.answer = "hang"
    with pytest.raises(SendUnconfirmed):
        SendGridEmail(client_for(url_of(server), timeout=0.3)).send_email(EMAIL)
    port = free_port()  # nothing listens there
    with pytest.raises(RetryableError) as caught:
        SendGridEmail(client_for(f"http://127.0.0.1:{port}")).send_email(EMAIL)
    assert caught.value.code == "sendgrid_unreachable"


class RefusingSession:
    """A session whose connection attempt times out: nothing reached the provider."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        import requests

        raise requests.ConnectTimeout("connect timed out")


def test_a_connect_timeout_is_unreachable_not_an_answer_lost():
    client = client_for("http://127.0.0.1:9")
    client.client.session = RefusingSession()
    with pytest.raises(RetryableError) as caught:
        SendGridEmail(client).send_email(EMAIL)
    assert caught.value.code == "sendgrid_unreachable" and not isinstance(caught.value, SendUnconfirmed)


def test_proxies_from_the_environment_still_apply(server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", url_of(server))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    email = SendGridEmail(client_for("http://sendgrid.invalid"))
    assert [email.send_email(EMAIL) for _ in range(2)] == ["msg-1"] * 2  # the second from the cached settings
    assert [request["path"] for request in server.requests] == ["http://sendgrid.invalid/v3/mail/send"] * 2
