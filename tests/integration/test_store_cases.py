"""The Store's queries on the real Firestore emulator: filters, order, limits, counts and sums answer there
exactly as in the fake (tests/store_cases.py)."""

from __future__ import annotations

import pytest

from shared.platform.store import FirestoreStore
from tests.store_cases import CASES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_store(case, firestore_client):
    case(FirestoreStore(firestore_client))
