"""failed_tasks keeps only what the runbook promises: every stored value scrubbed, valid Unicode and
bounded, so the record of a failure can always be written, whatever the failing body held."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from shared.tasks.failed_tasks import (
    MAX_ERROR_CHARS,
    MAX_VALUE_CHARS,
    FailedTasks,
    body_shape,
    failure_id,
    safe_code,
    safe_value,
)
from tests.builders import NOW
from tests.fakes import FixedClock, MemoryStore

PHONE, EMAIL = "+15551234567", "jane.doe@example.com"
LONG = f"call {PHONE} or write {EMAIL} " * 400  # ~15 KB


def record(store: MemoryStore, doc_id: str = "fail-1", **overrides) -> dict:
    values: dict[str, Any] = {
        "task_type": "appointment_reminder",
        "task_name": "projects/p/locations/l/queues/q/tasks/abc",
        "payload": {"appointment_id": "appt-1"},
        "error_code": "invalid_number",
        "error": "sms recipient rejected: invalid_number",
        "http_status": 200,
        "attempts": 1,
        "clinic_id": "clinic-t",
        "queue": "reminders-sms",
    }
    values.update(overrides)
    FailedTasks(store, FixedClock(NOW)).record(doc_id, **values)
    docs = store.docs("failed_tasks")
    assert len(docs) == 1
    return next(iter(docs.values()))


def assert_storable(doc: dict) -> None:
    """What Firestore and a person reading the console can take: UTF-8, 64-bit ints, no PHI, bounded."""
    text = json.dumps(doc, default=str, ensure_ascii=False)
    text.encode("utf-8")
    assert PHONE not in text and "5551234567" not in text and EMAIL not in text and "jane.doe" not in text
    for value in json.loads(json.dumps(doc, default=str)).values():
        if isinstance(value, str):
            assert len(value) <= 2 * MAX_VALUE_CHARS + MAX_ERROR_CHARS
        if isinstance(value, int):
            assert -(2**63) <= value < 2**63


def test_a_failure_is_recorded_open_with_ids_and_codes():
    store = MemoryStore()
    doc = record(store)
    assert doc["status"] == "open" and doc["note"] is None
    assert doc["first_failed_at"] == doc["last_failed_at"] == NOW
    assert doc["payload"] == {"appointment_id": "appt-1"} and doc["clinic_id"] == "clinic-t"


@pytest.mark.parametrize(
    "overrides",
    [
        {"task_type": f"teleport {PHONE} {EMAIL}" + "x" * 15_000},
        {"error_code": f"{EMAIL}"},
        {"error": LONG},
        {"error": "bad \ud800 string " + PHONE},
        {"task_name": "t\udfff" + "n" * 5000},
        {"payload": {"note": LONG, "who": EMAIL, "n": 2**70, "f": float("inf"), "bad": "\ud800"}},
        {"payload": {"deep": {"deeper": {"deepest": {"x": PHONE}}}, "list": [PHONE] * 100}},
        {"payload": {"\ud800key": 1, "k" * 500: "v"}},
        {"payload": {"when": datetime(2026, 1, 1, tzinfo=timezone.utc), "obj": object(), "none": None, "ok": True}},
        {"attempts": 10**30},
        {"clinic_id": "__x__", "queue": "a/b"},
    ],
)
def test_every_stored_value_is_scrubbed_valid_and_bounded(overrides):
    doc = record(MemoryStore(), **overrides)
    assert_storable(doc)


def test_an_unknown_task_type_or_a_code_that_is_not_one_is_stored_as_a_code():
    doc = record(MemoryStore(), task_type=f"teleport {PHONE}" + "x" * 15_000, error_code="Bad Code!")
    assert doc["task_type"] == "error" and doc["error_code"] == "error"
    assert safe_code("unrecognised") == "unrecognised" and safe_code(None) == "error"


def test_huge_ints_are_kept_as_a_short_string_and_attempts_are_bounded():
    doc = record(MemoryStore(), payload={"n": 2**70, "m": -(2**80), "ok": 7}, attempts=10**30)
    assert doc["payload"] == {"n": str(2**70)[:20], "m": str(-(2**80))[:20], "ok": 7}
    assert doc["attempts"] == 1_000_000


def test_ids_that_are_not_document_ids_are_dropped_and_the_doc_id_is_hashed():
    store = MemoryStore()
    doc = record(store, doc_id="a/b\n", clinic_id="..", queue="__name__")
    assert doc["clinic_id"] is None and doc["queue"] is None
    (doc_id,) = store.docs("failed_tasks")
    assert doc_id.startswith("body-") and len(doc_id) == 45


def test_a_second_failure_keeps_the_first_failures_time_and_reopens():
    store = MemoryStore()
    failures = FailedTasks(store, FixedClock(NOW))
    record(store)
    store.seed(
        "failed_tasks/fail-1", {**store.stored("failed_tasks/fail-1"), "status": "retried", "retry_generation": 2}
    )
    later = datetime(2026, 11, 26, tzinfo=timezone.utc)
    FailedTasks(store, FixedClock(later)).record(
        "fail-1",
        task_type="appointment_reminder",
        task_name=None,
        payload={},
        error_code="invalid_number",
        error="again",
        http_status=200,
        attempts=2,
    )
    doc = store.stored("failed_tasks/fail-1")
    assert doc["first_failed_at"] == NOW and doc["last_failed_at"] == later
    assert doc["status"] == "open" and doc["retry_generation"] == 2 and doc["task_name"] is None
    assert failures.read("fail-1") is not None


def test_failure_ids_are_stable_and_always_document_ids():
    key = "appointment_reminder-" + "a" * 40
    assert failure_id(business_key=key, task_name="t") == key
    assert failure_id(business_key="..", task_name="t") == failure_id(task_name="t")
    assert failure_id(task_name="t\ud800").startswith("task-")
    assert failure_id(body=b"x") == failure_id(body=b"x") != failure_id(body=b"y")


def test_a_body_we_could_not_trust_is_kept_as_its_shape():
    assert body_shape(["a"], ("type",)) == {"shape": "list"}
    assert body_shape({"type": 1, "Jane Doe": 2, PHONE: 3}, ("type", "v")) == {
        "known_fields": ["type"],
        "other_fields": 2,
    }


def test_safe_value_bounds_breadth_depth_and_text():
    value = safe_value({"k": list(range(100)), "s": "y" * 1000, "nan": float("nan")})
    assert len(value["k"]) == 40 and len(value["s"]) == MAX_VALUE_CHARS and value["nan"] is None
    assert safe_value({"a": {"b": {"c": 1}}}) == {"a": {"b": "dict"}}
    assert safe_value((1, 2)) == [1, 2] and safe_value(b"bytes") == "bytes"


def test_status_changes_apply_only_at_the_version_read():
    store = MemoryStore()
    failures = FailedTasks(store, FixedClock(NOW))
    record(store)
    stale = failures.read("fail-1")
    assert stale is not None and failures.request_retry("fail-1")
    failures.resolve(stale, "closed by hand")  # read before the operator's change: refused
    failures.reject_retry(stale, "cannot use")
    failures.defer_retry(stale, "later")
    unchanged = store.stored("failed_tasks/fail-1")
    assert unchanged["status"] == "retry" and unchanged["note"] is None
    fresh = failures.read("fail-1")
    assert fresh is not None and failures.claim_retry(fresh, 1) and not failures.claim_retry(fresh, 1)
    failures.retry_failed("fail-1", "re-enqueue failed \ud800" + "n" * 1000)
    doc = store.stored("failed_tasks/fail-1")
    assert doc["status"] == "retry" and len(doc["note"]) == MAX_ERROR_CHARS
    claimed = failures.read("fail-1")
    assert claimed is not None
    failures.resolve(claimed, "sent since")
    assert store.stored("failed_tasks/fail-1")["status"] == "resolved"
