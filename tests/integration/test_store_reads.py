"""FirestoreStore.get_all on the emulator: the client's direct decoding (shared.platform.firestore_wire) reads what the
library reads, field for field and type for type, and its versions are exact enough for a precondition."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore

from shared.platform.store import FirestoreStore
from tests.unit.test_firestore_wire import shape

pytestmark = pytest.mark.integration

DOC = {
    "state": "scheduled",
    "generation": 3,
    "ratio": 0.5,
    "live": True,
    "nothing": None,
    "at": DatetimeWithNanoseconds(2026, 3, 8, 6, 59, tzinfo=timezone.utc, nanosecond=123456789),
    "history": [{"at": datetime(2026, 3, 7, tzinfo=timezone.utc), "state": "sending"}],
    "blob": b"\x00\x01",
}


def library_reads(paths: list[str], fields: list[str] | None = None) -> dict[str, Any]:
    plain = firestore.Client()  # the library as it is, on the same emulator
    found = {}
    for snapshot in plain.get_all([plain.document(path) for path in paths], field_paths=fields):
        if snapshot.exists:
            found[snapshot.reference.path] = (shape(snapshot.to_dict()), snapshot.update_time)
    return found


def test_get_all_reads_what_the_library_reads(firestore_client):
    store = FirestoreStore(firestore_client)
    store.put("notifications/plain", {key: value for key, value in DOC.items() if key != "blob"})
    store.put("notifications/blob", DOC)  # bytes: decoded by the library
    paths = ["notifications/plain", "notifications/blob", "notifications/missing"]
    read = store.get_all(paths)
    assert sorted(read) == ["notifications/blob", "notifications/plain"]
    assert {path: (shape(doc.data), doc.version) for path, doc in read.items()} == library_reads(paths)
    assert read["notifications/plain"].data["at"] == DOC["at"]  # to the microsecond, as Firestore keeps it
    masked = store.get_all(paths, fields=["state", "generation"])
    assert masked["notifications/plain"].data == {"state": "scheduled", "generation": 3}


def test_the_version_read_is_the_precondition_that_wins_once(firestore_client):
    store = FirestoreStore(firestore_client)
    store.put("notifications/k", {"state": "scheduled"})
    version = store.get_all(["notifications/k"])["notifications/k"].version
    assert store.update("notifications/k", {"state": "sending"}, version=version) is not None
    assert store.update("notifications/k", {"state": "sending"}, version=version) is None  # no longer at it
    assert store.get_all(["notifications/k"])["notifications/k"].data == {"state": "sending"}


def test_a_malformed_path_is_refused_as_the_library_refuses_it(firestore_client):
    with pytest.raises(ValueError):
        FirestoreStore(firestore_client).get_all(["notifications"])


def test_each_write_gives_the_version_a_read_then_sees(firestore_client):
    store = FirestoreStore(firestore_client)
    created = store.create("notifications/w", {"state": "scheduled", "at": DOC["at"]})
    assert created is not None and store.create("notifications/w", {"state": "other"}) is None
    assert store.get("notifications/w").version == created  # type: ignore[union-attr]
    updated = store.update("notifications/w", {"state": "sending"}, version=created)
    assert updated is not None and updated != created
    assert store.update("notifications/w", {"state": "sent"}, version=created) is None  # the old version lost
    put = store.put("notifications/w", {"state": "sent"}, merge=True)
    assert store.get_all(["notifications/w"])["notifications/w"].version == put
    assert store.update("notifications/gone", {"state": "sent"}) is None
