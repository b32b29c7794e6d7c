"""Fixtures of the integration tests that drive the task handler (helpers in tests/handler_support.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.config import StackConfig
from tests.handler_support import Sandbox, World


@pytest.fixture
def sandbox(stack: StackConfig) -> Iterator[Sandbox]:
    box = Sandbox(stack.sandbox_url)
    box.reset()
    yield box
    box.reset()


@pytest.fixture
def world(firestore_client: Any) -> World:
    return World(firestore_client)
