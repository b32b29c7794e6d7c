"""Provider sandbox: the local stand-in for Twilio and SendGrid that the official clients talk to over HTTP.

    python -m local.sandbox.server [--host 127.0.0.1] [--port P (default MEDSPA_PORT_BASE + 4)] [--seed N]

`make_app()` builds the WSGI app; `SandboxServer(...).start()` runs it on a background thread (tests,
the local stack); `serve(host, port)` runs it in the foreground until SIGINT/SIGTERM. Loopback only.

Provider routes (as the official clients call them):
  POST /2010-04-01/Accounts/{sid}/Messages.json       create SMS (form; basic auth) → 201 Message | 4xx Twilio error
  GET  /2010-04-01/Accounts/{sid}/Messages.json       list SMS (?To ?From ?DateSent[<>] ?PageSize ?Page) → 200 page
  GET  /2010-04-01/Accounts/{sid}/Messages/{SM}.json  fetch SMS → 200 Message (current status)
  POST /v3/mail/send                                  SendGrid mail (JSON; Bearer) → 202 + X-Message-Id | 4xx errors
Sandbox routes (JSON):
  GET /healthz · GET /_sandbox/status.json
  GET|DELETE /_sandbox/messages (?to= ?channel= ?direction=) · GET /_sandbox/messages/{id}
  GET|POST|DELETE /_sandbox/faults (?seed=) · DELETE /_sandbox/faults/{id}
  POST /_sandbox/inbound {"from", "to", "body", "url"} · GET|DELETE /_sandbox/opt-outs
The local console (HTML, local/sandbox/console/; docs/console.md): / (outbox) · /conversations · /operations
(· /operations/ledger · /operations/collections/{name}) · /faults · /reports · /logs · /events (server-sent events).
Environment: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, SENDGRID_API_KEY (what it accepts and signs with),
SANDBOX_SEED, SANDBOX_HANG_SECONDS, SANDBOX_CALLBACK_DELAY_SECONDS, SANDBOX_STATUS_TIMEOUT_SECONDS,
FIRESTORE_EMULATOR_HOST + GOOGLE_CLOUD_PROJECT (the console's Firestore views), PUBSUB_EMULATOR_HOST
(its "run the sweep now"), INBOUND_SMS_URL (its "reply as the patient").
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
from types import FrameType
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

from local.config import is_loopback
from local.sandbox.console import console_blueprint
from local.sandbox.control_api import control_blueprint
from local.sandbox.courier import API_VERSION
from local.sandbox.log import log
from local.sandbox.sendgrid_api import errors_response, sendgrid_blueprint, sendgrid_error
from local.sandbox.settings import SandboxSettings
from local.sandbox.state import Sandbox
from local.sandbox.twilio_api import twilio_blueprint, twilio_error

QUIET_PATHS = ("/healthz", "/_sandbox/status.json", "/events")
LIVE_SUFFIXES = ("/rows", "/timeline", "/messages")  # the console's fragments, fetched every few seconds


def make_app(sandbox: Sandbox | None = None) -> Flask:
    """The sandbox's WSGI app; pass a Sandbox to share (and inspect) its state."""
    sandbox = sandbox or Sandbox()
    app = Flask("local.sandbox")
    app.extensions["sandbox"] = sandbox
    app.register_blueprint(twilio_blueprint(sandbox))
    app.register_blueprint(sendgrid_blueprint(sandbox))
    app.register_blueprint(control_blueprint(sandbox))
    app.register_blueprint(console_blueprint(sandbox))

    @app.errorhandler(HTTPException)
    def provider_shaped_error(error: HTTPException) -> Response:
        # Unknown routes answer in the shape of the provider whose path was asked for.
        status = error.code or 500
        if request.path.startswith(f"/{API_VERSION}/"):
            return twilio_error(
                20404 if status == 404 else status,
                status,
                message=f"The requested resource {request.path} was not found" if status == 404 else error.description,
            )
        if request.path.startswith("/v3/"):
            return errors_response(status, [sendgrid_error(None, error.description or "error")])
        response = jsonify({"error": error.description})
        response.status_code = status
        return response

    return app


class _Body:
    """A request's body as the app reads it: at most its Content-Length, counted, the rest drained after."""

    def __init__(self, stream: Any, length: int) -> None:
        self.stream, self.left = stream, length

    def read(self, size: int | None = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.read(size) if size else b""
        self.left -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.readline(size) if size else b""
        self.left -= len(data)
        return data

    def drain(self) -> None:
        while self.left > 0 and self.read(min(self.left, 65536)):
            pass


class _Exhausted:
    """The socket as werkzeug's post-response cleanup reads it: nothing more (the next request is not its)."""

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""


class _RequestLog(WSGIRequestHandler):
    """One JSON line per request, without the query string (`?to=` would carry a phone number).

    Keep-alive, as Twilio's and SendGrid's APIs: werkzeug answers every request `Connection: close` and
    then reads whatever the socket still holds (it cannot know where an unread body ends), so a local send
    paid for a new connection each time. Here a request with a Content-Length (what the providers'
    clients send) keeps its connection: the app reads its body through `_Body`, werkzeug's cleanup finds
    nothing to read, and the unread rest of the body is drained exactly before the next request line. A
    chunked body, or a client that asks to close, closes as before."""

    protocol_version = "HTTP/1.1"
    _body: _Body | None = None

    def run_wsgi(self) -> None:
        length = self.headers.get("Content-Length") or "0"
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower() or not length.isdigit():
            self._body = None
            super().run_wsgi()
            return
        real, self._body = self.rfile, _Body(self.rfile, int(length))
        self.rfile = _Exhausted()  # type: ignore[assignment]
        try:
            super().run_wsgi()
        finally:
            self.rfile = real
        self._body.drain()

    def make_environ(self) -> Any:
        environ = super().make_environ()
        if self._body is not None:
            environ["wsgi.input"] = self._body
        return environ

    def send_header(self, keyword: str, value: str) -> None:
        keep = self._body is not None and not self.close_connection  # unless the client asked to close
        if keyword.lower() == "connection" and value.lower() == "close" and keep:
            return
        super().send_header(keyword, value)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        if path not in QUIET_PATHS and not path.endswith(LIVE_SUFFIXES) and not path.startswith("/static/"):
            log("DEBUG", "request", method=self.command, path=path, http_status=code)

    def log_message(self, format: str, *args: Any) -> None:
        log("WARNING", "http server problem", detail=format)  # only the template: args hold raw request text


def require_loopback(host: str) -> None:
    """The sandbox accepts any message and replays webhooks: it must never listen beyond this machine."""
    if not is_loopback(host):
        raise SystemExit(f"refusing to listen on {host!r}: the provider sandbox binds loopback only")


class SandboxServer:
    """A threaded WSGI server around one Sandbox; `port=0` picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, sandbox: Sandbox | None = None) -> None:
        require_loopback(host)
        self.sandbox = sandbox or Sandbox()
        self.app = make_app(self.sandbox)
        self._server = make_server(host, port, self.app, threaded=True, request_handler=_RequestLog)
        self.host = host
        self.port = self._server.server_port
        self._thread: threading.Thread | None = None
        self._serving = threading.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        self._serving.set()
        log("INFO", "provider sandbox listening", url=self.url)
        self._server.serve_forever(poll_interval=0.1)

    def start(self) -> SandboxServer:
        """Serve on a daemon thread and return at once."""
        self._thread = threading.Thread(target=self.serve_forever, name="provider-sandbox", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, release hanging requests and background deliveries, free the port."""
        self.sandbox.close()
        if self._serving.is_set():
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(host: str = "127.0.0.1", port: int | None = None, settings: SandboxSettings | None = None) -> None:
    """Run the sandbox in the foreground until SIGINT or SIGTERM (default port: the local stack's)."""
    from local.config import load

    server = SandboxServer(host, load().sandbox_port if port is None else port, Sandbox(settings))

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()  # werkzeug turns the KeyboardInterrupt (SIGINT, or SIGTERM above) into a return
    finally:
        log("INFO", "provider sandbox stopping")
        server.close()


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(prog="python -m local.sandbox.server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: the local stack's sandbox port)")
    parser.add_argument("--seed", type=int, default=None, help="seed for rate-limited faults (or SANDBOX_SEED)")
    args = parser.parse_args(argv)
    settings = SandboxSettings.from_env()
    if args.seed is not None:
        settings = dataclasses.replace(settings, seed=args.seed)
    serve(args.host, args.port, settings)


if __name__ == "__main__":
    main()
