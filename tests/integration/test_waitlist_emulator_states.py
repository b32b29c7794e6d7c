"""The waitlist's state machines on the real Firestore emulator: the same cases as on the in-memory store,
so the preconditions every transition relies on hold there too (tests/waitlist_cases.py)."""

from __future__ import annotations

import pytest

from shared.platform.store import FirestoreStore
from tests.waitlist_cases import CASES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_waitlist_state(case, firestore_client):
    case(FirestoreStore(firestore_client))
