"""Fixtures shared by the test suite: the local stack for integration tests, nothing for unit tests.

- Tests under tests/integration (and any test using `stack`) are marked `integration` and run after the
  unit tests (the quick ones first). `pytest -m "not integration"` runs the unit tests alone, without the stack.
- `stack` (session): reuses a running, healthy stack (`make up`) or starts one through local.stack and
  stops it at the end; returns the StackConfig. When the stack cannot start, the tests that need it are
  skipped, or fail when CI=true. It changes no environment variable: `stack_environment` points os.environ
  at the emulators for each test that uses the stack, and only while that test runs, so no test depends on
  which ran before it. A process started for a longer scope is given `stack.function_env()` explicitly.
- `clean_firestore` wipes every document of the emulator's database; `firestore_client` is
  shared.clients.firestore() on a wiped database. On a reused stack that includes demo data: point
  the tests at their own stack with MEDSPA_PORT_BASE (and MEDSPA_STATE_DIR) to keep it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local import config as stack_config
from local import stack as local_stack
from local.config import StackConfig
from local.processes import ProcessDir
from shared.platform import clients, settings

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
KNOWN_COLLECTIONS = (
    "clinics",
    "patients",
    "appointments",
    "waitlist",
    "notifications",
    "failed_tasks",
    "slot_offers",
    "reports",
    "stack_checks",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).resolve().parents or "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    # Stable: unit tests keep their order and run first (they need no stack, and fail fastest).
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _reset_cached_clients() -> None:
    clients.reset()
    settings.settings.cache_clear()


@pytest.fixture(scope="session")
def stack() -> Iterator[StackConfig]:
    """The running local stack's config (started for the session when it is not up); it sets no variable."""
    config = stack_config.load()
    processes = ProcessDir(config.state_dir)
    owned = not any(processes.running(name) for name in processes.names())
    if not local_stack.healthy(config):
        try:
            local_stack.up(config)
        except local_stack.StackError as exc:
            _unavailable(f"the local stack did not start: {exc}")
    yield config
    if owned:
        local_stack.down(config)


@pytest.fixture(autouse=True)
def stack_environment(request: pytest.FixtureRequest) -> Iterator[None]:
    """For a test that uses the stack: os.environ holds the stack's function_env(), and the cached clients and
    settings are built from it, for that test alone; everything is as it was again after it."""
    if "stack" not in request.fixturenames:
        yield
        return
    config: StackConfig = request.getfixturevalue("stack")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in config.function_env().items():
            patch.setenv(name, value)
        _reset_cached_clients()
        try:
            yield
        finally:
            _reset_cached_clients()


def documents_url(config: StackConfig) -> str:
    return (
        f"http://{config.host}:{config.firestore_port}/emulator/v1/projects/{config.project}"
        "/databases/(default)/documents"
    )


def _delete_documents(client: Any) -> None:
    """Fallback for emulators without the wipe endpoint: delete, in batches, every document it can find.

    The npm stand-in implements neither the endpoint nor ListCollectionIds; there the contract's
    collections (docs/architecture.md, "Firestore contract") and the tests' own are emptied, subcollections
    and other names are not.
    """
    from google.api_core.exceptions import GoogleAPICallError

    try:
        collections = [collection.id for collection in client.collections()]
    except GoogleAPICallError:
        collections = list(KNOWN_COLLECTIONS)
    for name in collections:
        while documents := list(client.collection(name).limit(400).stream()):
            batch = client.batch()
            for snapshot in documents:
                batch.delete(snapshot.reference)
            batch.commit()


@pytest.fixture
def clean_firestore(stack: StackConfig) -> None:
    """An empty Firestore database: the official emulator's DELETE .../documents wipes everything."""
    try:
        wiped = requests.delete(documents_url(stack), timeout=10).status_code == 200
    except requests.RequestException:
        wiped = False
    if not wiped:
        _delete_documents(clients.firestore())


@pytest.fixture
def firestore_client(stack: StackConfig, clean_firestore: None) -> Any:
    """shared.clients.firestore() talking to the stack's emulator, on an empty database."""
    return clients.firestore()
