"""The local stand-in for Cloud Run's front end before every private function (docs/architecture.md, "Local stack").

A private function (deploy/registry.py: not `public`) is deployed with internal-only ingress and
--no-allow-unauthenticated. Before such a request reaches the code, Cloud Run
1. refuses it unless it comes from inside the project (Cloud Tasks, Eventarc, the VPC): ingress;
2. verifies the caller's ID token (signature, expiry, audience = the function's URL): 401 otherwise;
3. checks the token's account holds roles/run.invoker on the function: 403 otherwise;
4. forwards it with the token's signature replaced by SIGNATURE_REMOVED_BY_GOOGLE.
This front does the same, in that order, on each private function's URL, and forwards to the port its
functions-framework listens on. Ingress and bindings are read from deploy/registry.py, the list deploy.sh
grants, so a binding missing there is refused here as it would be in the cloud. It also serves the
issuer's certificates (GET /oauth2/v1/certs on its own port), as Google serves its own.

    python -m local.front --state-dir DIR --certs-port P --route NAME=PORT:BACKEND:AUDIENCE:EMAIL[,EMAIL] ...

The stack (local/components.py) builds the routes from its config and the registry (`routes()`).
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import signal
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from deploy import registry
from local import identity
from local.config import StackConfig
from shared.platform import log

SIGNATURE_REMOVED = "SIGNATURE_REMOVED_BY_GOOGLE"
FORWARD_TIMEOUT_SECONDS = 3600  # Cloud Run's longest request timeout
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}


@dataclass(frozen=True)
class Route:
    """One private function as Cloud Run fronts it."""

    name: str
    port: int  # the function's URL's port: where every caller reaches it
    backend: int  # where its functions-framework listens
    audience: str  # its URL: the audience Cloud Run accepts in a token
    invokers: frozenset[str]  # emails bound roles/run.invoker on it


def routes(config: StackConfig, functions: Iterable[registry.Function] = registry.FUNCTIONS) -> list[Route]:
    """A route for every function deployed behind IAM, with the invoker bindings deploy.sh grants it."""
    out = []
    for fn in functions:
        if not fn.behind_iam:
            continue
        entry = config.entry_point(fn.name)
        emails = frozenset(identity.service_account(config.project, account) for account in fn.invoker_accounts)
        out.append(Route(fn.name, entry.port, entry.backend_port, config.url(fn.name), emails))
    return out


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


class Front:
    """Decides each request as Cloud Run would, and forwards what it lets through."""

    def __init__(self, issuer: identity.Issuer, ingress_key: str, host: str = "127.0.0.1") -> None:
        self.issuer, self.ingress_key, self.host = issuer, ingress_key, host

    def admit(self, route: Route, headers: Mapping[str, str] | Message) -> str | Refusal:
        """The Authorization header to forward (signature removed), or why the request is refused."""
        if headers.get(identity.INGRESS_HEADER) != self.ingress_key:
            return Refusal(404, "ingress: internal-only; this request does not come from inside the project")
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Refusal(401, "no bearer token")
        audiences = (route.audience, route.audience.rstrip("/"))
        try:
            claims = self.issuer.verify(token, audiences)
        except ValueError as exc:
            return Refusal(401, f"invalid token: {str(exc)[:120]}")
        if claims.get("email") not in route.invokers:
            return Refusal(403, "the caller does not hold roles/run.invoker on this function")
        return "Bearer " + token.rpartition(".")[0] + "." + SIGNATURE_REMOVED

    def server(self, route: Route) -> http.server.ThreadingHTTPServer:
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = self.headers.get("Content-Length") or "0"
                if not length.isdigit():  # as Cloud Run's front end, a request it cannot frame never goes on
                    self._answer(400, {"Content-Type": "text/plain"}, b"bad Content-Length")
                    return
                body = self.rfile.read(int(length)) if int(length) else b""
                decision = front.admit(route, self.headers)
                if isinstance(decision, Refusal):
                    log.warning("request refused", function=route.name, status=decision.status, reason=decision.reason)
                    self._answer(decision.status, {"Content-Type": "text/plain"}, decision.reason.encode())
                    return
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in HOP_BY_HOP and name.lower() != identity.INGRESS_HEADER.lower()
                }
                headers["Authorization"] = decision
                try:
                    status, answer_headers, answer = front.forward(route, self.command, self.path, headers, body)
                except OSError as exc:  # the function is down: Cloud Run answers 503 while no instance serves
                    self._answer(503, {"Content-Type": "text/plain"}, f"function unavailable: {exc}".encode())
                    return
                self._answer(status, answer_headers, answer)

            def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        server = http.server.ThreadingHTTPServer((self.host, route.port), Handler)
        server.daemon_threads = True
        return server

    def forward(
        self, route: Route, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.host, route.backend, timeout=FORWARD_TIMEOUT_SECONDS)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def certs_server(issuer: identity.Issuer, host: str, port: int) -> http.server.ThreadingHTTPServer:
    """GET /oauth2/v1/certs: the issuer's certificates, in the format of Google's endpoint."""
    body = json.dumps(issuer.certs()).encode()

    class Certs(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            found = self.path.split("?")[0] in ("/oauth2/v1/certs", "/healthz")
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return http.server.ThreadingHTTPServer((host, port), Certs)


def route_arg(route: Route) -> str:
    """A route as one command-line argument (the audience is a URL: its colons stay inside)."""
    return f"{route.name}={route.port}:{route.backend}:{','.join(sorted(route.invokers))}:{route.audience}"


def parse_route(text: str) -> Route:
    name, _, rest = text.partition("=")
    port, backend, invokers, audience = rest.split(":", 3)
    return Route(name, int(port), int(backend), audience, frozenset(filter(None, invokers.split(","))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.front", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="holds the issuer's key and the ingress key")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--certs-port", type=int, required=True)
    parser.add_argument("--route", type=parse_route, action="append", default=[])
    args = parser.parse_args(argv)
    issuer = identity.Issuer.load(args.state_dir)
    front = Front(issuer, identity.ingress_key(args.state_dir), args.host)
    servers = [certs_server(issuer, args.host, args.certs_port)]
    for route in args.route:
        servers.append(front.server(route))
        invokers = sorted(route.invokers)
        log.info("fronting", function=route.name, port=route.port, backend=route.backend, invokers=invokers)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stopping.wait()
    for server in servers:  # close every listening socket at once: `down` checks nothing listens afterwards
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
