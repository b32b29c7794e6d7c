"""The task handler's caller check: real RS256 tokens verified against certificates fetched over HTTP."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import threading
import time

import pytest
from google.auth import crypt

from shared.platform.errors import ConfigError, Unauthorized
from shared.platform.settings import Settings
from shared.tasks.auth import SIGNATURE_REMOVED, TaskAuthenticator
from tests import oidc
from tests.oidc import bearer

AUDIENCE = "https://handler.example.com/"
CALLER = "tasks@p.iam.gserviceaccount.com"
ENV = {
    "GOOGLE_CLOUD_PROJECT": "p",
    "TASKS_LOCATION": "l",
    "TASK_HANDLER_URL": AUDIENCE,
    "TASKS_SERVICE_ACCOUNT": CALLER,
}
SETTINGS = Settings.from_env(ENV)


@pytest.fixture(scope="module")
def google_keys():
    """A local stand-in for Google's certificate endpoint, serving one signing certificate."""
    private_pem, cert_pem = oidc.key_and_cert("google")
    certs = json.dumps({"kid-1": cert_pem}).encode()

    class Certs(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(certs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield crypt.RSASigner.from_string(private_pem, key_id="kid-1"), f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def token(signing, **overrides) -> str:
    return oidc.token(signing, audience=AUDIENCE, caller=CALLER, **overrides)


def test_a_token_from_the_tasks_service_account_is_accepted(google_keys):
    signer, certs_url = google_keys
    claims = TaskAuthenticator(SETTINGS, certs_url=certs_url).verify(bearer(token(signer)))
    assert claims["email"] == CALLER


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic abc"}, bearer("not.a.jwt")])
def test_missing_or_garbled_tokens_are_401(google_keys, headers):
    with pytest.raises(Unauthorized) as caught:
        TaskAuthenticator(SETTINGS, certs_url=google_keys[1]).verify(headers)
    assert not caught.value.forbidden


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://someone-else.example.com/"},
        {"exp": int(time.time()) - 600, "iat": int(time.time()) - 900},
        {"iss": "https://evil.example.com"},
    ],
)
def test_wrong_audience_expired_or_foreign_issuer_is_401(google_keys, overrides):
    signer, certs_url = google_keys
    with pytest.raises(Unauthorized):
        TaskAuthenticator(SETTINGS, certs_url=certs_url).verify(bearer(token(signer, **overrides)))


def test_a_token_signed_by_another_key_is_401(google_keys):
    other_pem, _ = oidc.key_and_cert("attacker")
    forged = token(crypt.RSASigner.from_string(other_pem, key_id="kid-1"))
    with pytest.raises(Unauthorized):
        TaskAuthenticator(SETTINGS, certs_url=google_keys[1]).verify(bearer(forged))


def test_another_service_account_is_403(google_keys):
    signer, certs_url = google_keys
    with pytest.raises(Unauthorized) as caught:
        TaskAuthenticator(SETTINGS, certs_url=certs_url).verify(bearer(token(signer, email="intruder@p.iam.x")))
    assert caught.value.forbidden


BEHIND_IAM = dataclasses.replace(SETTINGS, invoker_iam_check=True)


def stripped(value: str) -> str:
    """The token as Cloud Run forwards it after checking it: its signature replaced by the marker."""
    return value.rpartition(".")[0] + "." + SIGNATURE_REMOVED


def test_behind_iam_a_stripped_token_with_the_right_claims_is_accepted_without_any_fetch(google_keys):
    signer, _ = google_keys
    claims = TaskAuthenticator(BEHIND_IAM, certs_url=unreachable_url()).verify(bearer(stripped(token(signer))))
    assert claims["email"] == CALLER


def test_a_stripped_token_is_refused_by_a_function_not_deployed_behind_iam(google_keys):
    """Anyone can write the marker: only where Cloud Run checked the signature may it stand for one."""
    signer, certs_url = google_keys
    with pytest.raises(Unauthorized, match="not deployed behind IAM") as caught:
        TaskAuthenticator(SETTINGS, certs_url=certs_url).verify(bearer(stripped(token(signer))))
    assert not caught.value.forbidden


@pytest.mark.parametrize(
    "overrides, forbidden",
    [
        ({"aud": "https://someone-else.example.com/"}, False),
        ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}, False),
        ({"exp": None}, False),
        ({"iss": "https://evil.example.com"}, False),
        ({"email": "intruder@p.iam.gserviceaccount.com"}, True),
        ({"email_verified": False}, True),
        ({"email_verified": "true"}, True),
    ],
)
def test_behind_iam_the_claims_of_a_stripped_token_are_still_checked(google_keys, overrides, forbidden):
    signer, _ = google_keys
    with pytest.raises(Unauthorized) as caught:
        TaskAuthenticator(BEHIND_IAM, certs_url=unreachable_url()).verify(bearer(stripped(token(signer, **overrides))))
    assert caught.value.forbidden is forbidden


def test_behind_iam_a_fully_signed_token_is_still_verified_in_full(google_keys):
    signer, certs_url = google_keys
    authenticator = TaskAuthenticator(BEHIND_IAM, certs_url=certs_url)
    assert authenticator.verify(bearer(token(signer)))["email"] == CALLER
    other_pem, _ = oidc.key_and_cert("attacker")
    with pytest.raises(Unauthorized):
        authenticator.verify(bearer(token(crypt.RSASigner.from_string(other_pem, key_id="kid-1"))))


@pytest.mark.parametrize("value", ["1", "yes", "true", "enabled"])
def test_the_iam_switch_accepts_only_on_or_off(value):
    with pytest.raises(ConfigError, match="INVOKER_IAM_CHECK"):
        Settings.from_env({**ENV, "INVOKER_IAM_CHECK": value})
    assert Settings.from_env({**ENV, "INVOKER_IAM_CHECK": "on"}).invoker_iam_check
    assert not Settings.from_env({**ENV, "INVOKER_IAM_CHECK": "off"}).invoker_iam_check
    assert not SETTINGS.invoker_iam_check


def test_certificates_are_fetched_once_for_many_verifications(signing):
    signer, cert_pem = signing
    certs = CountingCerts(cert_pem)
    try:
        authenticator = TaskAuthenticator(SETTINGS, certs_url=certs.url)
        for _ in range(5):
            assert authenticator.verify(bearer(token(signer)))["email"] == CALLER
        assert certs.fetches == 1
    finally:
        certs.close()


# ------------------------------------------------- the auth matrix at the handler's boundary (issue 8)


class CountingCerts:
    """Google's certificate endpoint on loopback, counting the fetches it answers (or refusing them all)."""

    def __init__(self, cert_pem: str | None) -> None:
        body = json.dumps({"kid-1": cert_pem}).encode() if cert_pem else b""
        self.fetches = 0
        owner = self

        class Certs(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.fetches += 1
                self.send_response(200 if body else 503)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Certs)
        self.url = f"http://127.0.0.1:{self.server.server_port}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def signing():
    private_pem, cert_pem = oidc.key_and_cert("google")
    return crypt.RSASigner.from_string(private_pem, key_id="kid-1"), cert_pem


def unreachable_url() -> str:
    from tests.spare_ports import free_port

    return f"http://127.0.0.1:{free_port()}/"  # nothing listens there any more


def matrix(signing) -> dict[str, dict[str, str]]:
    return oidc.refusals(signing, audience=AUDIENCE, caller=CALLER)


def handler(store, certs_url: str):
    from shared.messaging.appointment_tasks import APPOINTMENT_TASK_TYPES, AppointmentTask
    from shared.tasks.failed_tasks import FailedTasks
    from shared.tasks.router import Attempt, Outcome, Status, TaskRouter, TaskType
    from tests.fakes import FixedClock

    handled: list[AppointmentTask] = []

    def handle(task: AppointmentTask, attempt: Attempt) -> Outcome:
        handled.append(task)
        return Outcome(Status.SENT)

    types = {kind: TaskType(kind, AppointmentTask, "q", handle) for kind in APPOINTMENT_TASK_TYPES}
    clock = FixedClock(dt.datetime.now(dt.timezone.utc))
    router = TaskRouter(
        authenticator=TaskAuthenticator(SETTINGS, certs_url=certs_url),
        failures=FailedTasks(store, clock),
        max_attempts=8,
        types=types,
    )
    return router, handled


BODY = json.dumps(
    {
        "type": "appointment_reminder",
        "v": 1,
        "appointment_id": "appt-1",
        "clinic_id": "clinic-t",
        "patient_id": "pat-1",
        "dedup_key": "appointment_reminder-" + "0" * 40,
        "send_at": "2026-11-25T14:30:00+00:00",
        "appointment_start": "2026-11-26T14:30:00+00:00",
        "offset_hours": 24,
    }
).encode()


def test_every_caller_in_the_matrix_is_refused_and_nothing_is_read_or_written(signing):
    from tests.fakes import MemoryStore

    signer, cert_pem = signing
    certs = CountingCerts(cert_pem)
    try:
        store = MemoryStore()
        router, handled = handler(store, certs.url)
        for name, headers in matrix(signer).items():
            status = router.handle(headers, BODY)[1]
            assert status in (401, 403), f"{name}: {status}"
        assert store.round_trips == 0 and handled == []
        good = router.handle(bearer(token(signer)), BODY)
        assert good[1] == 200 and len(handled) == 1
    finally:
        certs.close()


def test_refusing_a_token_whose_claims_are_wrong_fetches_no_certificate(signing):
    signer, cert_pem = signing
    certs = CountingCerts(cert_pem)
    try:
        authenticator = TaskAuthenticator(SETTINGS, certs_url=certs.url)
        for name, headers in matrix(signer).items():
            if name == "wrong key":
                continue  # its claims are right: only the signature, so the certificates, can refuse it
            with pytest.raises(Unauthorized):
                authenticator.verify(headers)
        assert certs.fetches == 0
    finally:
        certs.close()


@pytest.mark.parametrize("down", ["unreachable", "answers 503"])
def test_certificates_that_cannot_be_fetched_never_turn_into_a_500(signing, down):
    """The only fetch is for a token whose claims are right; when it fails the answer is a 503 to retry."""
    from tests.fakes import MemoryStore

    signer, _ = signing
    certs = CountingCerts(None) if down == "answers 503" else None
    try:
        store = MemoryStore()
        router, handled = handler(store, certs.url if certs else unreachable_url())
        for name, headers in matrix(signer).items():
            text, status, response_headers = router.handle(headers, BODY)
            if name == "wrong key":
                assert status == 503 and response_headers["Retry-After"], text
            else:
                assert status in (401, 403), f"{name}: {status}"
        assert router.handle(bearer(token(signer)), BODY)[1] == 503  # a real task waits for the certificates
        assert store.round_trips == 0 and handled == []
    finally:
        if certs:
            certs.close()


@pytest.mark.parametrize("page", [b"<html>proxy error</html>", b"{}", b"[1, 2]"])
def test_a_certificates_page_that_is_not_certificates_is_a_retry_not_a_refusal(signing, page):
    """An answer 200 that holds no keys is an outage on the way to Google: 503 to retry, never 401."""
    from dataclasses import dataclass

    from shared.platform.errors import RetryableError
    from shared.tasks.auth import CachedCerts

    @dataclass
    class Answer:
        status: int
        data: bytes

    transport = CachedCerts()
    transport._inner = lambda url, **kwargs: Answer(200, page)
    signer, _ = signing
    with pytest.raises(RetryableError) as caught:
        TaskAuthenticator(SETTINGS, certs_url="https://certs.example/", transport=transport).verify(
            bearer(token(signer))
        )
    assert caught.value.code == "certs_unavailable"
