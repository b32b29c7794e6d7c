"""The production auth path, locally: Cloud Tasks' and Eventarc's tokens, the front before every private
function (ingress, token, invoker binding, signature removed) and the function's own check behind it.

Every caller here reaches the functions the way it would in the cloud: through the function's URL, where
local/front.py does what Cloud Run's front end does. A request the front refuses never reaches the function;
the same tokens sent straight to the function's own port (as if the platform had let them through) are
refused by the function itself.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest
import requests

from deploy import registry
from local import front as local_front
from local import identity
from tests import oidc
from tests.handler_support import as_cloud_tasks
from tests.spare_ports import free_port

pytestmark = pytest.mark.integration


def tasks_account(stack) -> str:
    return identity.service_account(stack.project, registry.TASKS_INVOKER)


def refused_callers(stack) -> dict[str, dict[str, str]]:
    """Tokens Cloud Run would refuse (or let through to a 403) at the task handler's URL."""
    issuer = identity.Issuer.load(stack.state_dir)
    handler = stack.url("task-handler")
    inside = identity.internal_headers(stack.state_dir)
    forger, _ = oidc.signer("forger", key_id=issuer.key_id)  # another key, claiming the issuer's key id

    def bearer(token: str) -> dict[str, str]:
        return {**inside, "Authorization": f"Bearer {token}"}

    return {
        "forged": bearer(oidc.token(forger, audience=handler, caller=tasks_account(stack))),
        "another caller": bearer(
            issuer.mint(email=identity.service_account(stack.project, registry.EVENTS_INVOKER), audience=handler)
        ),
        "another audience": bearer(issuer.mint(email=tasks_account(stack), audience=stack.url("reminder-fanout-unit"))),
        "expired": bearer(
            issuer.mint(
                email=tasks_account(stack), audience=handler, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
            )
        ),
        "no token": dict(inside),
    }


def test_a_task_dispatched_by_cloud_tasks_reaches_the_handler_with_a_stripped_token_and_is_delivered(world, sandbox):
    task = world.task(world.appointment(world.patient()))
    world.schedule(task)  # the product's CloudTasksQueue, with its oidc_token, through the emulator
    entry = world.wait_ledger(task.dedup_key, "sent", "delivered", "failed", "skipped")
    assert entry["state"] in ("sent", "delivered")


def test_the_front_refuses_forged_foreign_misaddressed_and_expired_tokens_and_nothing_is_written(world, sandbox, stack):
    task = world.task(world.appointment(world.patient()))
    body = json.dumps(task.to_json())
    statuses = {
        name: requests.post(
            stack.url("task-handler"), data=body, headers={**headers, "Content-Type": "application/json"}, timeout=30
        ).status_code
        for name, headers in refused_callers(stack).items()
    }
    assert statuses == {"forged": 401, "another caller": 403, "another audience": 401, "expired": 401, "no token": 401}
    assert world.ledger(task.dedup_key) == {} and world.failed() == [] and sandbox.messages() == []


def test_a_request_from_outside_the_project_is_refused_by_ingress_even_with_a_valid_token(world, stack):
    task = world.task(world.appointment(world.patient()))
    headers = {k: v for k, v in as_cloud_tasks(stack).items() if k != identity.INGRESS_HEADER}
    answer = requests.post(stack.url("task-handler"), json=task.to_json(), headers=headers, timeout=30)
    assert answer.status_code == 404
    assert world.ledger(task.dedup_key) == {}


def test_the_handler_itself_refuses_what_the_front_would_have_refused(world, sandbox, stack):
    """Straight to the handler's own port: stripped tokens whose claims are wrong, and a stripped token from
    nobody (no ingress, no check) are refused by the function behind IAM, with nothing written."""
    task = world.task(world.appointment(world.patient()))
    backend = f"http://{stack.host}:{stack.entry_point('task-handler').backend_port}/"
    statuses = {}
    for name, headers in refused_callers(stack).items():
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        if token:
            token = token.rpartition(".")[0] + "." + local_front.SIGNATURE_REMOVED
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        statuses[name] = requests.post(backend, json=task.to_json(), headers=sent, timeout=30).status_code
    # The forged token's claims are right: behind IAM only the platform checks signatures, which is why the
    # function's port must never be reachable from outside (in the cloud it is not: only the front is).
    assert statuses.pop("forged") == 200
    assert statuses == {"another caller": 403, "another audience": 401, "expired": 401, "no token": 401}
    assert sandbox.messages() != []  # the one let through was delivered, as the platform vouched for it


def test_an_event_push_needs_eventarcs_identity(stack):
    """reminder-fanout takes pushes from events-invoker only: the tasks account's token is refused (403)."""
    url = stack.url("reminder-fanout")
    tasks = identity.caller_headers(stack.state_dir, email=tasks_account(stack), audience=url)
    assert requests.post(url, data=b"{}", headers=tasks, timeout=30).status_code == 403


def test_a_function_missing_its_binding_in_the_registry_is_refused_locally(world, sandbox, stack):
    """A registry whose task-handler row lists no invokers: the front built from it refuses Cloud Tasks (403),
    exactly as Cloud Run would with the binding deploy.sh then would not grant."""
    unbound = [
        dataclasses.replace(fn, invokers=()) if fn.name == registry.TASK_HANDLER else fn for fn in registry.FUNCTIONS
    ]
    (route,) = [r for r in local_front.routes(stack, unbound) if r.name == registry.TASK_HANDLER]
    assert route.invokers == frozenset()
    spare = free_port()
    route = local_front.Route(route.name, spare, route.backend, stack.url("task-handler"), route.invokers)
    front = local_front.Front(identity.Issuer.load(stack.state_dir), identity.ingress_key(stack.state_dir))
    server = front.server(route)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        task = world.task(world.appointment(world.patient()))
        answer = requests.post(
            f"http://127.0.0.1:{spare}/", json=task.to_json(), headers=as_cloud_tasks(stack), timeout=30
        )
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 403
    assert world.ledger(task.dedup_key) == {} and sandbox.messages() == []


def test_the_issuer_serves_its_certificates_as_google_does(stack):
    certs = requests.get(f"http://{stack.host}:{stack.identity_port}/oauth2/v1/certs", timeout=5).json()
    issuer = identity.Issuer.load(stack.state_dir)
    assert certs == issuer.certs()
    from google.auth import jwt

    token = issuer.mint(email=tasks_account(stack), audience="https://x.example/")
    assert jwt.decode(token, certs=certs, audience="https://x.example/")["email"] == tasks_account(stack)


def test_a_request_the_front_cannot_frame_is_answered_400(stack):
    import socket

    with socket.create_connection((stack.host, stack.entry_point("task-handler").port), timeout=10) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        assert conn.recv(200).split(b"\r\n")[0] == b"HTTP/1.1 400 Bad Request"
