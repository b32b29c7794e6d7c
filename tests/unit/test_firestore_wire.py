"""The contract of shared.platform.firestore_wire, Firestore's wire format written by hand: every value it
encodes or decodes comes out exactly as the library's own `_helpers.encode_value` / `decode_value` gives it
(over generated values), and whatever is not a plain value (sentinels, references, bytes, geo points,
vectors, sets, dotted or quoted field names) it leaves to the library. Its batches and reads then write and
read exactly what the library's do."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.types import document, write
from google.cloud.firestore_v1.vector import Vector
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.platform import firestore_wire

PATH = "projects/p/databases/(default)/documents/notifications/k"
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)
INSTANTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.sampled_from([timezone.utc, None])
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    INSTANTS,
    INSTANTS.map(lambda d: d.replace(tzinfo=timezone(timedelta(hours=-5)))),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(NAMES, inner, min_size=1, max_size=4)),
    max_leaves=12,
)
DOCS = st.dictionaries(NAMES, VALUES, min_size=1, max_size=10)


def raw(pb: Any) -> Any:
    return write.Write.pb(pb)


@settings(max_examples=300, deadline=None)
@given(doc=DOCS)
def test_plain_documents_encode_exactly_as_the_library_does(doc):
    assert raw(firestore_wire.plain_write(PATH, doc, exists=False)) == raw(_helpers.pbs_for_create(PATH, doc)[0])
    assert raw(firestore_wire.plain_write(PATH, doc)) == raw(_helpers.pbs_for_set_no_merge(PATH, doc)[0])
    assert raw(firestore_wire.plain_write(PATH, doc, mask=True, exists=True)) == raw(
        _helpers.pbs_for_update(PATH, doc, None)[0]
    )


def test_nanosecond_timestamps_and_flat_merges_match_too():
    doc = {"at": DatetimeWithNanoseconds(2026, 1, 1, tzinfo=timezone.utc, nanosecond=123456789), "n": 1, "l": [1]}
    assert raw(firestore_wire.plain_write(PATH, doc, exists=False)) == raw(_helpers.pbs_for_create(PATH, doc)[0])
    assert raw(firestore_wire.plain_write(PATH, doc, mask=True)) == raw(
        _helpers.pbs_for_set_with_merge(PATH, doc, True)[0]
    )


@pytest.mark.parametrize(
    "doc",
    [
        {"at": firestore.SERVER_TIMESTAMP},
        {"tags": {"a", "b"}},
        {"empty": {}},
        {"big": 2**64},
        {},
        {1: "not a string key"},
    ],
)
def test_what_is_not_plain_is_left_to_the_library(doc):
    assert firestore_wire.plain_write(PATH, doc) is None


def batch_writes(action: Any) -> list[Any]:
    client = firestore_wire.client_class()(project="p", credentials=AnonymousCredentials())
    batch = client.batch()
    action(batch, client.document("notifications/k"))
    return [raw(pb) for pb in batch._write_pbs]


def library_writes(action: Any) -> list[Any]:
    client = firestore.Client(project="p", credentials=AnonymousCredentials())
    batch = client.batch()
    action(batch, client.document("notifications/k"))
    return [raw(pb) for pb in batch._write_pbs]


VERSION = DatetimeWithNanoseconds(2026, 1, 1, 12, tzinfo=timezone.utc, nanosecond=5)


@pytest.mark.parametrize(
    "action",
    [
        lambda b, ref: b.create(ref, {"state": "scheduled", "at": datetime(2026, 1, 1, tzinfo=timezone.utc)}),
        lambda b, ref: b.create(ref, {"at": firestore.SERVER_TIMESTAMP, "n": 1}),
        lambda b, ref: b.set(ref, {"a": 1, "b": [1, 2]}),
        lambda b, ref: b.set(ref, {"a": 1}, merge=True),
        lambda b, ref: b.set(ref, {"a": {"b": 1}}, merge=True),
        lambda b, ref: b.set(ref, {"a": 1}, merge=["a"]),
        lambda b, ref: b.update(ref, {"state": "sending", "generation": 2}),
        lambda b, ref: b.update(ref, {"state": "sent"}, option=b._client.write_option(last_update_time=VERSION)),
        lambda b, ref: b.update(ref, {"a.b": 1}),
        lambda b, ref: b.update(ref, {"n": firestore.Increment(1)}),
        lambda b, ref: b.delete(ref),
    ],
)
def test_the_clients_batches_write_what_the_librarys_write(action):
    assert batch_writes(action) == library_writes(action)


def shape(value: Any) -> Any:
    """A value with its types spelled out (equal datetimes of different classes must not pass as equal)."""
    if isinstance(value, dict):
        return ("dict", sorted((key, shape(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", [shape(item) for item in value])
    if isinstance(value, datetime):
        exact = value.timestamp_pb() if hasattr(value, "timestamp_pb") else None  # what a write sends back
        return (f"{type(value).__module__}.{type(value).__name__}", value, exact)
    return (type(value).__name__, value)


def encoded_fields(doc: dict[str, Any]) -> Any:
    from google.cloud.firestore_v1.types import document

    return document.Document.pb(document.Document(fields=_helpers.encode_dict(doc))).fields


LIBRARY_CLIENT = firestore.Client(project="p", credentials=AnonymousCredentials())
SPECIAL_NAMES = st.one_of(NAMES, st.sampled_from(["__type__", "__oid__", "__x", "value"]))
ANY_DOCS = st.dictionaries(
    SPECIAL_NAMES,
    st.recursive(
        st.one_of(SCALARS, st.binary(max_size=4), st.builds(firestore.GeoPoint, st.just(1.5), st.just(-2.0))),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(SPECIAL_NAMES, inner, min_size=1, max_size=3)
        ),
        max_leaves=8,
    ),
    min_size=1,
    max_size=6,
)


def decoded_as_by_the_library(doc: dict[str, Any]) -> bool:
    fields = encoded_fields(doc)
    return shape(firestore_wire.decode_document(fields, LIBRARY_CLIENT)) == shape(
        _helpers.decode_dict(fields, LIBRARY_CLIENT)
    )


@settings(max_examples=300, deadline=None)
@given(doc=DOCS)
def test_plain_documents_decode_exactly_as_the_library_does(doc):
    assert decoded_as_by_the_library(doc)


@settings(max_examples=200, deadline=None)
@given(doc=ANY_DOCS)
def test_anything_else_decodes_as_the_library_does_too(doc):
    assert decoded_as_by_the_library(doc)


def test_nanosecond_timestamps_references_and_vectors_decode_as_the_library_does():
    doc = {
        "at": DatetimeWithNanoseconds(2026, 1, 1, tzinfo=timezone.utc, nanosecond=123456789),
        "ref": LIBRARY_CLIENT.document("clinics/c1"),
        "v": Vector([1.0, 2.0]),
        "nested": {"when": [datetime(2026, 3, 8, 7, tzinfo=timezone.utc)]},
    }
    fields = encoded_fields(doc)
    decoded = firestore_wire.decode_document(fields, LIBRARY_CLIENT)
    library = _helpers.decode_dict(fields, LIBRARY_CLIENT)
    assert isinstance(library, dict)  # the library's decode is typed as any decoded value
    assert decoded["at"].nanosecond == 123456789 and decoded["ref"].path == "clinics/c1"
    assert decoded["v"] == library["v"] and decoded["nested"] == library["nested"]
    assert shape(decoded["at"]) == shape(library["at"])


# ------------------------------------------------------------------ value by value, against encode_value / decode_value

# a map with a key that starts "__" may be one of the library's vectors or BSON values: left to it when read
PLAIN_KEYS = st.one_of(NAMES, st.text(max_size=6)).filter(lambda key: not key.startswith("__"))
ANY_KEYS = st.one_of(PLAIN_KEYS, SPECIAL_NAMES)
PLAIN_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(PLAIN_KEYS, inner, min_size=1, max_size=4)),
    max_leaves=16,
)
STORABLE_LEAVES = st.one_of(
    SCALARS,
    st.binary(max_size=4),
    st.builds(firestore.GeoPoint, st.floats(-90, 90), st.floats(-180, 180)),
    st.just(LIBRARY_CLIENT.document("clinics/c1")),
    st.builds(Vector, st.lists(st.floats(-1e6, 1e6), max_size=3)),
    st.just({}),
)
UNSTORABLE_INTEGERS = st.integers(2**63, 2**70) | st.integers(-(2**70), -(2**63) - 1)


def nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(ANY_KEYS, inner, max_size=3)),
        max_leaves=10,
    )


STORABLE_VALUES = nested(STORABLE_LEAVES)  # every kind of value a document read can hold
OTHER_VALUES = nested(STORABLE_LEAVES | UNSTORABLE_INTEGERS)  # and what a write may be handed


def wire_encoded(value: Any) -> Any:
    target = document.Value.pb()()
    firestore_wire.encode_into(target, value)
    return target


@settings(max_examples=300, deadline=None)
@given(value=PLAIN_VALUES)
def test_a_plain_value_encodes_exactly_as_the_librarys_encode_value(value):
    assert wire_encoded(value) == document.Value.pb(_helpers.encode_value(value))


@settings(max_examples=300, deadline=None)
@given(value=PLAIN_VALUES)
def test_a_plain_value_decodes_exactly_as_the_librarys_decode_value(value):
    encoded = _helpers.encode_value(value)
    assert shape(firestore_wire.decode_value(document.Value.pb(encoded))) == shape(
        _helpers.decode_value(encoded, LIBRARY_CLIENT)
    )


@settings(max_examples=300, deadline=None)
@given(value=OTHER_VALUES)
def test_any_other_value_is_refused_or_encoded_as_the_library_does(value):
    try:
        encoded = wire_encoded(value)
    except (firestore_wire.NotPlain, ValueError, TypeError, OverflowError):
        return  # left to the library (plain_write answers None)
    assert encoded == document.Value.pb(_helpers.encode_value(value))


@settings(max_examples=300, deadline=None)
@given(value=STORABLE_VALUES)
def test_any_other_value_is_refused_or_decoded_as_the_library_does(value):
    encoded = _helpers.encode_value(value)
    try:
        decoded = firestore_wire.decode_value(document.Value.pb(encoded))
    except firestore_wire.NotPlain:
        return  # decode_document then hands the whole document to the library
    assert shape(decoded) == shape(_helpers.decode_value(encoded, LIBRARY_CLIENT))


def test_what_the_library_alone_can_read_is_refused():
    for value in (b"x", firestore.GeoPoint(1.5, -2.0), LIBRARY_CLIENT.document("clinics/c1"), {"__type__": "x"}):
        with pytest.raises(firestore_wire.NotPlain):
            firestore_wire.decode_value(document.Value.pb(_helpers.encode_value(value)))
