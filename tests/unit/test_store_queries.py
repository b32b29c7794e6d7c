"""The Store's queries on the in-memory store (the same cases run on the emulator too)."""

from __future__ import annotations

import pytest

from tests.fakes import MemoryStore
from tests.store_cases import CASES


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_store(case):
    case(MemoryStore())
