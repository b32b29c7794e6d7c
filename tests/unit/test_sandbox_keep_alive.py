"""The provider sandbox keeps a client's connection alive between requests, as Twilio's and SendGrid's APIs
do (a local send must not pay for a new connection each time), and a body its route never read does not
spill into the next request on that connection."""

from __future__ import annotations

import http.client

from local.sandbox.server import SandboxServer


def ask(connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> int:
    headers = {"Content-Type": "application/octet-stream"} if body else {}
    connection.request(method, path, body=body, headers=headers)
    answer = connection.getresponse()
    answer.read()
    assert answer.version == 11 and (answer.getheader("Connection") or "").lower() != "close"
    return answer.status


def test_requests_share_one_connection_even_after_a_body_nobody_read():
    with SandboxServer() as server:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
        assert ask(connection, "GET", "/healthz") == 200
        socket_before = connection.sock
        assert ask(connection, "POST", "/nowhere", b"x" * 100_000) == 404  # the route reads none of it
        assert ask(connection, "GET", "/healthz") == 200
        assert connection.sock is socket_before  # the same connection all along
        connection.close()


def test_a_client_that_asks_to_close_gets_its_connection_closed():
    with SandboxServer() as server:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
        connection.request("GET", "/healthz", headers={"Connection": "close"})
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200 and answer.will_close
        connection.close()
