"""Firestore's wire format, written by hand for plain documents: the one module that reaches into the
google-cloud-firestore library's private members (its WriteBatch internals, the client's `_firestore_api`).

Write batches encode a plain document (strings, numbers, booleans, None, datetimes, and lists and maps of
those) straight into its Write protobuf: the library builds the same message through proto-plus field by
field, about 250 us a document, the largest part of the fan-out's CPU per message. Anything else
(sentinels such as SERVER_TIMESTAMP, references, geo points, field paths with dots) goes through the
library as before. The client decodes BatchGetDocuments answers straight from their protobufs
(`read_documents`; bytes, references, geo points, vectors and BSON maps through the library): the library
converts them through proto-plus field by field and deep-copies every document, which was most of the task
handler's read CPU. Same RPC, same default retry, same round trips (bench/handler_round_trips.py). Commits
stay the library's. tests/unit/test_firestore_wire.py holds the encoding and decoding to the library's own
(`_helpers.encode_value` / `decode_value`) over generated values; what it saves: docs/performance.md.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SIMPLE_FIELD = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")  # a field name the API writes as itself


class NotPlain(Exception):
    """A value the fast encoder leaves to the library."""


def encode_into(target: Any, value: Any) -> None:
    """Set a Firestore Value protobuf to `value`, exactly as google.cloud.firestore_v1._helpers.encode_value."""
    kind = type(value)
    if value is None:
        target.null_value = 0
    elif kind is bool:
        target.boolean_value = value
    elif kind is int:
        target.integer_value = value
    elif kind is float:
        target.double_value = value
    elif kind is str:
        target.string_value = value
    elif isinstance(value, datetime):
        _timestamp_into(target.timestamp_value, value)
    elif kind is list or kind is tuple:
        values = target.array_value.values
        target.array_value.SetInParent()
        for item in value:
            encode_into(values.add(), item)
    elif kind is dict and value and all(type(key) is str for key in value):
        fields = target.map_value.fields
        for key in sorted(value):
            encode_into(fields[key], value[key])
    else:
        raise NotPlain


def _timestamp_into(target: Any, value: datetime) -> None:
    """As the library: whole seconds of the UTC instant (a naive datetime is UTC) and its microseconds."""
    from google.api_core.datetime_helpers import DatetimeWithNanoseconds

    if isinstance(value, DatetimeWithNanoseconds):
        target.CopyFrom(value.timestamp_pb())  # type: ignore[no-untyped-call]  # api-core leaves it unannotated
        return
    delta = (value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)) - _EPOCH
    target.seconds, target.nanos = delta.days * 86400 + delta.seconds, delta.microseconds * 1000


def plain_write(path: str, data: Any, *, exists: bool | None = None, mask: bool = False) -> Any | None:
    """The Write protobuf (proto-plus wrapped) for a document of plain values, or None for the library to do."""
    from google.cloud.firestore_v1.types import write

    if type(data) is not dict or not data or not all(type(key) is str for key in data):
        return None
    raw = write.Write.pb()()
    document = raw.update
    document.name = path
    try:
        for key in sorted(data):
            encode_into(document.fields[key], data[key])
    except (NotPlain, ValueError, TypeError, OverflowError):
        return None
    if mask:
        raw.update_mask.field_paths.extend(sorted(data))
    if exists is not None:
        raw.current_document.exists = exists
    return write.Write.wrap(raw)


def decode_value(value: Any) -> Any:
    """A Firestore Value protobuf as google.cloud.firestore_v1._helpers.decode_value gives it, for plain values."""
    kind = value.WhichOneof("value_type")
    if kind == "string_value":
        return value.string_value
    if kind == "timestamp_value":
        from google.api_core.datetime_helpers import DatetimeWithNanoseconds

        return DatetimeWithNanoseconds.from_timestamp_pb(value.timestamp_value)  # type: ignore[no-untyped-call]
    if kind == "integer_value":
        return value.integer_value
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "null_value":
        return None
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [decode_value(item) for item in value.array_value.values]
    if kind == "map_value":
        return _decode_fields(value.map_value.fields)
    raise NotPlain  # bytes, references, geo points: the library's types


def _decode_fields(fields: Any) -> dict[str, Any]:
    decoded = {key: decode_value(item) for key, item in fields.items()}
    if any(key.startswith("__") for key in decoded):  # the library's vector and BSON maps (`__type__`, `__oid__`…)
        raise NotPlain
    return decoded


def decode_document(fields: Any, client: Any) -> dict[str, Any]:
    """A document's fields (protobuf map of Values), decoded exactly as the library's DocumentSnapshot.to_dict()."""
    try:
        return _decode_fields(fields)
    except NotPlain:
        from google.cloud.firestore_v1 import _helpers

        decoded = _helpers.decode_dict(fields, client)
        if not isinstance(decoded, dict):  # a map's fields decode to a dict; the library types it as any value
            raise TypeError(f"Firestore fields decoded to {type(decoded).__name__}") from None
        return decoded


def _well_formed(path: str) -> bool:
    """A document path the library would accept (else it goes through the library, which says why not)."""
    parts = path.split("/")
    return len(parts) % 2 == 0 and all(parts)


@functools.cache
def client_class() -> type:
    """google.cloud.firestore.Client, with write batches that encode plain documents directly."""
    from google.cloud import firestore as firestore_module
    from google.cloud.firestore_v1.batch import WriteBatch

    class Batch(WriteBatch):
        def create(self, reference: Any, document_data: Any) -> None:
            pb = plain_write(reference._document_path, document_data, exists=False)
            if pb is None:
                return super().create(reference, document_data)
            self._document_references[reference._document_path] = reference
            self._add_write_pbs([pb])

        def set(self, reference: Any, document_data: Any, merge: Any = False) -> None:
            plain = merge is False or (
                merge is True
                and type(document_data) is dict
                and all(type(value) is not dict and _SIMPLE_FIELD.match(key) for key, value in document_data.items())
            )
            pb = plain_write(reference._document_path, document_data, mask=merge is True) if plain else None
            if pb is None:
                return super().set(reference, document_data, merge=merge)
            self._document_references[reference._document_path] = reference
            self._add_write_pbs([pb])

        def update(self, reference: Any, field_updates: Any, option: Any = None) -> None:
            simple = type(field_updates) is dict and all(_SIMPLE_FIELD.match(key) for key in field_updates)
            if option.__class__.__name__ == "ExistsOption" or not simple:
                return super().update(reference, field_updates, option=option)
            pb = plain_write(reference._document_path, field_updates, mask=True, exists=None if option else True)
            if pb is None:
                return super().update(reference, field_updates, option=option)
            if option is not None:
                option.modify_write(pb)
            self._document_references[reference._document_path] = reference
            self._add_write_pbs([pb])

    class Client(firestore_module.Client):
        def batch(self) -> Any:
            return Batch(self)

        def read_documents(self, paths: list[str], fields: list[str] | None) -> Any:
            """(path, data, update_time) of each existing document among `paths`, in one BatchGetDocuments call
            (the library's get_all, with its default retry), decoded from the raw protobuf: the library goes
            through proto-plus field by field and then deep-copies every document, most of a read's CPU."""
            from proto.datetime_helpers import DatetimeWithNanoseconds  # type: ignore[import-untyped]

            if not all(_well_formed(path) for path in paths):
                refs = [self.document(path) for path in paths]
                for snapshot in self.get_all(refs, field_paths=fields):
                    if snapshot.exists:
                        yield snapshot.reference.path, snapshot.to_dict() or {}, snapshot.update_time
                return
            prefix = f"{self._database_string}/documents/"
            request = {
                "database": self._database_string,
                "documents": [prefix + path for path in paths],
                "mask": {"field_paths": fields} if fields is not None else None,
                "transaction": None,
            }
            for response in self._firestore_api.batch_get_documents(request=request, metadata=self._rpc_metadata):
                raw = type(response).pb(response)
                if raw.WhichOneof("result") != "found":
                    continue
                found = raw.found
                # the version as proto-plus gives it: the nanosecond-exact class a precondition is sent from
                version = DatetimeWithNanoseconds.from_timestamp_pb(found.update_time)
                yield found.name[len(prefix) :], decode_document(found.fields, self), version

    return Client
