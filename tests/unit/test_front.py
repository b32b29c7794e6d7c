"""The local front's decisions, as Cloud Run's front end makes them, and the bindings it reads from the registry."""

from __future__ import annotations

import dataclasses
import time

import pytest

from deploy import plan, registry
from local import config as stack_config
from local import front as local_front
from local import identity
from shared.platform.settings import Settings
from shared.tasks.auth import TaskAuthenticator
from tests import oidc

CONFIG = stack_config.load({"MEDSPA_PORT_BASE": "7700"})
TASKS = identity.service_account(CONFIG.project, registry.TASKS_INVOKER)
EVENTS = identity.service_account(CONFIG.project, registry.EVENTS_INVOKER)


@pytest.fixture(scope="module")
def issuer(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    return identity.Issuer.load(state), identity.ingress_key(state)


def route(name: str) -> local_front.Route:
    (found,) = [r for r in local_front.routes(CONFIG) if r.name == name]
    return found


def test_every_private_function_is_fronted_with_the_bindings_deploy_sh_grants():
    fronted = {r.name: r for r in local_front.routes(CONFIG)}
    private = {fn.name for fn in registry.FUNCTIONS if not fn.public}
    assert set(fronted) == private and private
    assert fronted["task-handler"].invokers == {TASKS}
    assert fronted["reminder-fanout-unit"].invokers == {TASKS}
    assert fronted["reminder-fanout"].invokers == {EVENTS}
    for r in fronted.values():
        assert r.port != r.backend and r.audience == CONFIG.url(r.name)


def test_public_webhooks_are_not_fronted_and_run_on_their_own_url():
    for fn in registry.FUNCTIONS:
        entry = CONFIG.entry_point(fn.name)
        assert (entry.backend_port == entry.port) is fn.public


def test_the_stack_layout_stays_within_its_block():
    from local.components import stack_ports

    ports = stack_ports(CONFIG)
    # below +50, where a test's second stack starts (tests/spare_ports.py)
    assert len(ports) == len(set(ports)) and max(ports) - 7700 <= 49


def test_a_valid_token_is_forwarded_with_its_signature_removed(issuer):
    signer, key = issuer
    token = signer.mint(email=TASKS, audience=CONFIG.url("task-handler"))
    front = local_front.Front(signer, key)
    forwarded = front.admit(route("task-handler"), {identity.INGRESS_HEADER: key, "Authorization": f"Bearer {token}"})
    assert isinstance(forwarded, str)
    head, payload, signature = forwarded.removeprefix("Bearer ").split(".")
    assert signature == local_front.SIGNATURE_REMOVED and token.startswith(f"{head}.{payload}.")


def test_the_function_behind_the_front_accepts_what_the_front_forwards(issuer):
    """The production check (shared/tasks/auth.py, INVOKER_IAM_CHECK=on) on the front's output."""
    signer, key = issuer
    settings = Settings.from_env({**CONFIG.function_env(), "INVOKER_IAM_CHECK": "on"})
    token = signer.mint(email=TASKS, audience=CONFIG.url("task-handler"))
    forwarded = local_front.Front(signer, key).admit(
        route("task-handler"), {identity.INGRESS_HEADER: key, "Authorization": f"Bearer {token}"}
    )
    assert isinstance(forwarded, str)
    claims = TaskAuthenticator(settings, certs_url="http://127.0.0.1:9/").verify({"Authorization": forwarded})
    assert claims["email"] == TASKS


def test_refusals_in_cloud_runs_order(issuer):
    signer, key = issuer
    front = local_front.Front(signer, key)
    handler = CONFIG.url("task-handler")
    now = int(time.time())
    forger, _ = oidc.signer("forger", key_id=signer.key_id)
    cases = {
        "outside the project": ({"Authorization": f"Bearer {signer.mint(email=TASKS, audience=handler)}"}, 404),
        "wrong ingress key": ({identity.INGRESS_HEADER: "guess"}, 404),
        "no token": ({identity.INGRESS_HEADER: key}, 401),
        "forged": (oidc.token(forger, audience=handler, caller=TASKS), 401),
        "another audience": (signer.mint(email=TASKS, audience=CONFIG.url("reminder-fanout-unit")), 401),
        "expired": (signer.mint(email=TASKS, audience=handler, iat=now - 7200, exp=now - 3600), 401),
        "another caller": (signer.mint(email=EVENTS, audience=handler), 403),
        "a stripped token": (
            signer.mint(email=TASKS, audience=handler).rpartition(".")[0] + "." + local_front.SIGNATURE_REMOVED,
            401,
        ),
    }
    for name, (given, status) in cases.items():
        headers = (
            given if isinstance(given, dict) else {identity.INGRESS_HEADER: key, "Authorization": f"Bearer {given}"}
        )
        decision = front.admit(route("task-handler"), headers)
        assert isinstance(decision, local_front.Refusal) and decision.status == status, name


def test_a_function_whose_registry_row_lacks_the_binding_is_refused(issuer):
    signer, key = issuer
    unbound = [dataclasses.replace(fn, invokers=()) if fn.name == "task-handler" else fn for fn in registry.FUNCTIONS]
    (handler,) = [r for r in local_front.routes(CONFIG, unbound) if r.name == "task-handler"]
    token = signer.mint(email=TASKS, audience=CONFIG.url("task-handler"))
    decision = local_front.Front(signer, key).admit(
        handler, {identity.INGRESS_HEADER: key, "Authorization": f"Bearer {token}"}
    )
    assert isinstance(decision, local_front.Refusal) and decision.status == 403


def test_the_plan_refuses_a_queue_whose_target_does_not_bind_tasks_invoker():
    unbound = [dataclasses.replace(fn, invokers=()) if fn.name == "task-handler" else fn for fn in registry.FUNCTIONS]
    problems = plan.registry_problems(unbound, registry.QUEUES, registry.JOBS)
    assert any("target task-handler does not list tasks-invoker" in p for p in problems), problems
    assert plan.registry_problems(registry.FUNCTIONS, registry.QUEUES, registry.JOBS) == []


def test_the_registry_refuses_invokers_on_public_or_event_functions():
    public = dataclasses.replace(registry.function("twilio-status"), invokers=(registry.TASKS_INVOKER,))
    event = dataclasses.replace(registry.function("reminder-fanout"), invokers=(registry.TASKS_INVOKER,))
    unknown = dataclasses.replace(registry.function("task-handler"), invokers=("someone",))
    problems = plan.registry_problems(
        [
            *(f for f in registry.FUNCTIONS if f.name not in ("twilio-status", "reminder-fanout", "task-handler")),
            public,
            event,
            unknown,
        ],
        registry.QUEUES,
        registry.JOBS,
    )
    assert any("public function" in p for p in problems)
    assert any("event function" in p for p in problems)
    assert any("'someone' is not in deploy/registry.py INVOKERS" in p for p in problems)


def test_a_route_survives_the_command_line():
    for r in local_front.routes(CONFIG):
        assert local_front.parse_route(local_front.route_arg(r)) == r
    unbound = local_front.Route("x", 1, 2, "http://127.0.0.1:1/", frozenset())
    assert local_front.parse_route(local_front.route_arg(unbound)) == unbound
