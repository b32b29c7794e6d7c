"""The ledger's state machine on the real Firestore emulator: the preconditions every transition relies
on (exclusive create, versioned update, all-or-nothing commit) hold there exactly as in the fake."""

from __future__ import annotations

import pytest

from shared.platform.store import FirestoreStore
from tests.ledger_cases import CASES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_ledger(case, firestore_client):
    case(FirestoreStore(firestore_client))
