"""Consents on the real Firestore emulator: history, replay and the not-older rule answer there exactly as
on the fake (tests/consent_cases.py)."""

from __future__ import annotations

import pytest

from shared.platform.store import FirestoreStore
from tests.consent_cases import CASES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.__name__)
def test_consents(case, firestore_client):
    case(FirestoreStore(firestore_client))
