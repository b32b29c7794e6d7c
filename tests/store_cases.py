"""The Store's queries, case by case, written once and run twice: on the in-memory store (unit,
tests/unit/test_store_queries.py) and on the Firestore emulator (tests/integration/test_store_cases.py), so
the fake filters, orders, limits, counts and sums exactly as Firestore does: booleans are not integers,
values of different types order by Firestore's value type ordering, and a document missing a filtered or
ordered field is not in the result."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from shared.platform.store import DOC_ID, Create, Filter, Order, Store

CASES: list[Callable[[Store], None]] = []
WHEN = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
COLLECTION = "store_cases"

# One document per kind of value Firestore orders, each named for its place in the value type ordering.
MIXED: dict[str, Any] = {
    "a-null": None,
    "b-false": False,
    "c-true": True,
    "d-minus-one": -1,
    "e-zero": 0,
    "f-half": 0.5,
    "g-one": 1,
    "h-when": WHEN,
    "i-later": WHEN + timedelta(seconds=1),
    "j-empty-string": "",
    "k-text": "one",
    "l-bytes": b"\x00",
    "m-array": [1, 2],
    "n-longer-array": [1, 2, 0],
    "o-map": {"a": 1},
}


def case(function: Callable[[Store], None]) -> Callable[[Store], None]:
    CASES.append(function)
    return function


def seeded(store: Store, values: Mapping[str, Any], name: str = "value", **common: Any) -> Store:
    """One document per id, holding `name` = its value (no such field when the value is `...`)."""
    writes = [
        Create(f"{COLLECTION}/{doc_id}", {**common, **({} if value is ... else {name: value})})
        for doc_id, value in values.items()
    ]
    assert store.commit(writes) is not None
    return store


def ids(
    store: Store,
    where: Sequence[Filter] = (),
    order_by: Sequence[Order] = (),
    limit: int | None = None,
) -> list[str]:
    return [doc.id for doc in store.query(COLLECTION, where=where, order_by=order_by, limit=limit)]


@case
def equality_keeps_booleans_and_numbers_apart(store: Store) -> None:
    seeded(store, {"true": True, "one": 1, "one-point-oh": 1.0, "false": False, "zero": 0})
    assert ids(store, [("value", "==", True)]) == ["true"]
    assert ids(store, [("value", "==", 1)]) == ["one", "one-point-oh"]  # integers and doubles are one type
    assert ids(store, [("value", "==", False)]) == ["false"]
    assert ids(store, [("value", "==", 0)]) == ["zero"]
    assert store.count(COLLECTION, where=[("value", "==", True)]) == 1
    assert store.count(COLLECTION, where=[("value", "==", 1)]) == 2


@case
def in_and_array_contains_keep_booleans_and_numbers_apart(store: Store) -> None:
    seeded(store, {"true": True, "one": 1, "flags": [True], "ones": [1]})
    assert ids(store, [("value", "in", [True])]) == ["true"]
    assert ids(store, [("value", "in", [1, "x"])]) == ["one"]
    assert ids(store, [("value", "array_contains", True)]) == ["flags"]
    assert ids(store, [("value", "array_contains", 1)]) == ["ones"]


@case
def not_equal_drops_null_missing_and_the_value(store: Store) -> None:
    seeded(store, {"missing": ..., "null": None, "true": True, "one": 1, "two": 2})
    assert ids(store, [("value", "!=", 1)]) == ["true", "two"]  # ordered by the value: booleans first
    assert ids(store, [("value", "!=", True)]) == ["one", "two"]


@case
def a_range_filter_matches_values_of_its_own_type_only(store: Store) -> None:
    seeded(store, MIXED)
    assert ids(store, [("value", ">", -5)]) == ["d-minus-one", "e-zero", "f-half", "g-one"]
    assert ids(store, [("value", ">=", False)]) == ["b-false", "c-true"]
    assert ids(store, [("value", "<", 1)]) == ["d-minus-one", "e-zero", "f-half"]
    assert ids(store, [("value", ">=", "")]) == ["j-empty-string", "k-text"]
    assert ids(store, [("value", ">", WHEN)]) == ["i-later"]


@case
def a_range_filter_orders_by_its_field_then_by_id(store: Store) -> None:
    seeded(store, {"a": 3, "b": 1, "c": 2, "d": 1, "e": ..., "f": "3"})
    assert ids(store, [("value", ">=", 1)]) == ["b", "d", "c", "a"]
    assert ids(store, [("value", ">=", 1)], limit=2) == ["b", "d"]


@case
def values_of_every_type_order_by_firestores_value_type_ordering(store: Store) -> None:
    seeded(store, MIXED)
    assert ids(store, order_by=[("value", "asc")]) == sorted(MIXED)
    assert ids(store, order_by=[("value", "desc")]) == sorted(MIXED, reverse=True)
    assert ids(store, order_by=[("value", "asc")], limit=3) == ["a-null", "b-false", "c-true"]


@case
def ordering_drops_documents_missing_the_field(store: Store) -> None:
    seeded(store, {"a": 2, "b": ..., "c": None, "d": 1})
    assert ids(store, order_by=[("value", "asc")]) == ["c", "d", "a"]
    assert ids(store) == ["a", "b", "c", "d"]  # no order: every document, by id
    assert store.count(COLLECTION) == 4


@case
def a_filter_drops_documents_missing_the_field(store: Store) -> None:
    seeded(store, {"a": None, "b": ..., "c": 1})
    assert ids(store, [("value", "==", None)]) == ["a"]
    assert ids(store, [("value", "in", [None, 1])]) == ["c"]  # null is found by `==` alone
    assert store.count(COLLECTION, where=[("value", "!=", 5)]) == 1


@case
def equal_values_are_ordered_by_id_in_the_last_direction(store: Store) -> None:
    seeded(store, {"a": 1, "b": 2, "c": 1, "d": 2})
    assert ids(store, order_by=[("value", "desc")]) == ["d", "b", "c", "a"]
    assert ids(store, order_by=[("value", "asc")]) == ["a", "c", "b", "d"]
    assert ids(store, order_by=[("value", "desc")], limit=3) == ["d", "b", "c"]


@case
def a_second_order_breaks_ties_of_the_first(store: Store) -> None:
    for doc_id, (rank, name) in {"a": (1, "z"), "b": (2, "y"), "c": (1, "x"), "d": (1, ...)}.items():
        seeded(store, {doc_id: name}, name="name", rank=rank)
    assert ids(store, order_by=[("rank", "asc"), ("name", "asc")]) == ["c", "a", "b"]
    assert ids(store, order_by=[("rank", "desc"), ("name", "asc")]) == ["b", "c", "a"]


@case
def filters_on_document_ids(store: Store) -> None:
    seeded(store, {"a": 1, "b": 2, "c": 3})
    assert ids(store, [(DOC_ID, "in", ["c", "a", "z"])]) == ["a", "c"]
    assert ids(store, [(DOC_ID, ">", "a")], limit=1) == ["b"]
    assert ids(store, [(DOC_ID, "==", "b"), ("value", "==", 2)]) == ["b"]


@case
def filters_combine_and_limits_apply_after_them(store: Store) -> None:
    for doc_id, (clinic, status) in {
        "a": ("c1", "booked"),
        "b": ("c1", "cancelled"),
        "c": ("c2", "booked"),
        "d": ("c1", "booked"),
        "e": ("c1", "booked"),
    }.items():
        seeded(store, {doc_id: status}, name="status", clinic_id=clinic)
    where: list[Filter] = [("clinic_id", "==", "c1"), ("status", "==", "booked")]
    assert ids(store, where) == ["a", "d", "e"]
    assert ids(store, where, limit=2) == ["a", "d"]
    assert ids(store, where, order_by=[(DOC_ID, "desc")], limit=2) == ["e", "d"]
    assert store.count(COLLECTION, where=where) == 3
    assert ids(store, where, limit=0) == []


@case
def projected_fields_only(store: Store) -> None:
    seeded(store, {"a": 1}, kept="yes", dropped="no")
    (doc,) = store.query(COLLECTION, fields=["kept", "value"])
    assert doc.data == {"kept": "yes", "value": 1}
    (bare,) = store.query(COLLECTION, fields=[])
    assert (bare.id, bare.data) == ("a", {})


@case
def a_sum_adds_numbers_only(store: Store) -> None:
    seeded(store, {"int": 3, "true": True, "text": "4", "null": None, "missing": ..., "other": 5})
    assert store.sum(COLLECTION, "value") == 8
    assert isinstance(store.sum(COLLECTION, "value"), int)
    assert store.sum(COLLECTION, "value", where=[("value", "==", True)]) == 0
    assert store.sum(COLLECTION, "value", where=[("value", "==", "nothing")]) == 0
    assert store.sum(COLLECTION, "nowhere") == 0


@case
def a_sum_with_a_double_is_a_double(store: Store) -> None:
    seeded(store, {"a": 1, "b": 0.5, "c": 2})
    total = store.sum(COLLECTION, "value")
    assert total == 3.5 and isinstance(total, float)
    assert store.sum(COLLECTION, "value", where=[("value", ">", 0.5)]) == 3


@case
def a_count_with_filters(store: Store) -> None:
    seeded(store, MIXED)
    assert store.count(COLLECTION) == len(MIXED)
    assert store.count(COLLECTION, where=[("value", ">=", -1), ("value", "<", 1)]) == 3
    assert store.count(COLLECTION, where=[("value", "==", [1, 2])]) == 1
    assert store.count(COLLECTION, where=[("value", "==", {"a": 1})]) == 1
    assert store.count(COLLECTION, where=[("value", "in", [0, False, ""])]) == 3
