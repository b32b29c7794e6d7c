"""Documents as the services see them: a small store interface (`Store`) with versions for
single-document preconditions, and its Firestore adapter (`FirestoreStore`).

Every exactly-once step in this product is one document write with a precondition: `create()` (fails
when the document exists) or `update(version=…)` (fails when someone wrote the document since it was
read). Paths are Firestore document paths ("notifications/KEY", "slot_offers/ID/claims/1"); each
collection is named only by the module that owns its documents. The in-memory fake used by the unit
tests (tests/fakes.py) keeps the same contract; the emulator tests keep this adapter honest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from google.cloud import firestore as firestore_module

MAX_WRITES = 500  # Firestore's limit of writes in one commit
OPERATORS = ("==", "!=", "<", "<=", ">", ">=", "in", "array_contains")
DOC_ID = "__name__"  # a filter on this field compares document ids (in the queried collection)

Filter = tuple[str, str, Any]  # (field, operator, value)
Order = tuple[str, str]  # (field, "asc" | "desc")


@dataclass(frozen=True)
class Doc:
    """One document as read: its path, its fields and an opaque version for a later precondition."""

    path: str
    data: dict[str, Any]
    version: Any

    @property
    def id(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)


@dataclass(frozen=True)
class Create:
    """Write a new document; the commit fails if it exists."""

    path: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Update:
    """Change top-level fields of an existing document (at `version`, when given); fails otherwise."""

    path: str
    data: Mapping[str, Any]
    version: Any = None


@dataclass(frozen=True)
class Put:
    """Write a document whatever is there (merge: only the given top-level fields)."""

    path: str
    data: Mapping[str, Any]
    merge: bool = False


@dataclass(frozen=True)
class Delete:
    path: str


Write = Create | Update | Put | Delete


class Store(Protocol):
    def get(self, path: str) -> Doc | None: ...

    def get_all(self, paths: Sequence[str], *, fields: Sequence[str] | None = None) -> dict[str, Doc]:
        """The documents that exist among `paths`, by path (one round trip per MAX_WRITES paths)."""

    def create(self, path: str, data: Mapping[str, Any]) -> Any | None:
        """The new document's version, or None when it already existed."""

    def update(self, path: str, data: Mapping[str, Any], *, version: Any = None) -> Any | None:
        """The new version, or None when the document is missing or no longer at `version`."""

    def put(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> Any: ...

    def commit(self, writes: Sequence[Write]) -> list[Any] | None:
        """All writes or none (at most MAX_WRITES): their versions, or None when a precondition failed."""

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        fields: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Doc]: ...

    def count(self, collection: str, *, where: Sequence[Filter] = ()) -> int: ...

    def sum(self, collection: str, field: str, *, where: Sequence[Filter] = ()) -> int | float: ...


class FirestoreStore:
    """`Store` over a google.cloud.firestore Client (the official emulator locally)."""

    def __init__(self, client: firestore_module.Client) -> None:
        self.client = client

    def _doc(self, snapshot: Any) -> Doc:
        return Doc(snapshot.reference.path, snapshot.to_dict() or {}, snapshot.update_time)

    def get(self, path: str) -> Doc | None:
        if getattr(self.client, "read_documents", None) is not None:
            return self.get_all([path]).get(path)  # the same one BatchGetDocuments call the library makes
        snapshot = self.client.document(path).get()
        return self._doc(snapshot) if snapshot.exists else None

    def get_all(self, paths: Sequence[str], *, fields: Sequence[str] | None = None) -> dict[str, Doc]:
        found: dict[str, Doc] = {}
        unique = list(dict.fromkeys(paths))
        reader = getattr(self.client, "read_documents", None)  # shared.platform.firestore_wire's direct decoding
        for start in range(0, len(unique), MAX_WRITES):
            if reader is not None:
                wanted = list(fields) if fields is not None else None
                for path, data, version in reader(unique[start : start + MAX_WRITES], wanted):
                    found[path] = Doc(path, data, version)
                continue
            refs = [self.client.document(path) for path in unique[start : start + MAX_WRITES]]
            for snapshot in self.client.get_all(refs, field_paths=list(fields) if fields is not None else None):
                if snapshot.exists:
                    found[snapshot.reference.path] = self._doc(snapshot)
        return found

    def create(self, path: str, data: Mapping[str, Any]) -> Any | None:
        from google.api_core import exceptions as gexc

        try:
            return self.client.document(path).create(dict(data)).update_time
        except gexc.AlreadyExists:
            return None

    def update(self, path: str, data: Mapping[str, Any], *, version: Any = None) -> Any | None:
        from google.api_core import exceptions as gexc

        option = self.client.write_option(last_update_time=version) if version is not None else None
        try:
            return self.client.document(path).update(_top_level(data), option=option).update_time
        except (gexc.NotFound, gexc.FailedPrecondition):
            return None

    def put(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> Any:
        return self.client.document(path).set(dict(data), merge=merge).update_time

    def commit(self, writes: Sequence[Write]) -> list[Any] | None:
        from google.api_core import exceptions as gexc

        if not writes:
            return []
        if len(writes) > MAX_WRITES:
            raise ValueError(f"{len(writes)} writes in one commit; Firestore takes at most {MAX_WRITES}")
        batch = self.client.batch()
        for write in writes:
            ref = self.client.document(write.path)
            if isinstance(write, Create):
                batch.create(ref, dict(write.data))
            elif isinstance(write, Update):
                option = self.client.write_option(last_update_time=write.version) if write.version else None
                batch.update(ref, _top_level(write.data), option=option)
            elif isinstance(write, Put):
                batch.set(ref, dict(write.data), merge=write.merge)
            else:
                batch.delete(ref)
        try:
            return [result.update_time for result in batch.commit()]
        except (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.NotFound):
            return None

    def _query(self, collection: str, where: Sequence[Filter]) -> Any:
        from google.cloud.firestore_v1.base_query import FieldFilter

        query: Any = self.client.collection(collection)
        for field, op, value in where:
            if op not in OPERATORS:
                raise ValueError(f"unsupported operator {op!r}")
            if field == DOC_ID:  # Firestore compares document ids as references, never as strings
                ids = value if isinstance(value, list) else [value]
                refs = [self.client.collection(collection).document(doc_id) for doc_id in ids]
                value = refs if isinstance(value, list) else refs[0]
            query = query.where(filter=FieldFilter(field, op, value))
        return query

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        fields: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Doc]:
        from google.cloud.firestore_v1.query import Query

        query = self._query(collection, where)
        for field, direction in order_by:
            query = query.order_by(field, direction=Query.DESCENDING if direction == "desc" else Query.ASCENDING)
        if fields is not None:
            query = query.select(list(fields))
        if limit is not None:
            query = query.limit(limit)
        for snapshot in query.stream():
            yield self._doc(snapshot)

    def count(self, collection: str, *, where: Sequence[Filter] = ()) -> int:
        result = self._query(collection, where).count(alias="n").get()
        return int(result[0][0].value)

    def sum(self, collection: str, field: str, *, where: Sequence[Filter] = ()) -> int | float:
        result = self._query(collection, where).sum(field, alias="s").get()
        value = result[0][0].value
        return value if isinstance(value, int | float) else 0


def _top_level(data: Mapping[str, Any]) -> dict[str, Any]:
    """Firestore reads a dotted key in update() as a nested field path; ours are plain top-level names."""
    for key in data:
        if "." in key or "`" in key:
            raise ValueError(f"update() takes top-level field names, got {key!r}")
    return dict(data)
