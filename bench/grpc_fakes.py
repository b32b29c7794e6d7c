"""In-process stand-ins for Firestore and Cloud Tasks behind the official clients, with production-like latency.

The official google-cloud-firestore and google-cloud-tasks clients run unchanged on top of a fake gRPC
channel (`FakeChannel`): every request is serialised by the client's own request serialiser (exactly as
gRPC would put it on the wire), answered by an in-memory server from the bytes, and the answer goes
back through the client's own response deserialiser. So the client-side CPU a benchmark measures is the
production client's (proto-plus, value encoding, protobuf serialisation), and the server's own CPU is
counted apart (`Server.cpu_seconds`) so that it can be subtracted. Each call sleeps for a latency drawn
from `Latency` (a seeded random generator), outside any lock: calls in flight overlap as they would
against the cloud, which serves concurrent requests concurrently (unlike the local emulators).

What the Firestore server implements is what the product's Store adapter uses: Commit (create / set /
merge / update with exists and update-time preconditions, all or nothing), BatchGetDocuments (with a
field mask), RunQuery (field filters ==, <, <=, >, >=, in joined by AND, order by, projection, limit)
and RunAggregationQuery (count). Cloud Tasks: CreateTask, refusing a name it has seen (ALREADY_EXISTS),
as the cloud does for about an hour after a task ran.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc


@dataclass
class Latency:
    """Round-trip times drawn uniformly from the ranges below (seconds); `scale` 0 turns them off.

    A tail: a share `tail_share` of the calls takes `tail_factor` times as long (0.01 and 7: a CreateTask's
    p99 near 250 ms); `create_factor` stretches every CreateTask (a named task's de-duplication lookup)."""

    create_task: tuple[float, float] = (0.020, 0.050)
    read: tuple[float, float] = (0.010, 0.050)  # a get, batched get, query or count: the first answer
    read_per_doc: float = 0.00002  # streaming each further document of an answer
    commit_base: tuple[float, float] = (0.010, 0.030)
    commit_per_write: tuple[float, float] = (0.00016, 0.00054)  # 500 writes: about 100-300 ms with the base
    scale: float = 1.0
    seed: int = 12
    tail_share: float = 0.0
    tail_factor: float = 1.0
    create_factor: float = 1.0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _uniform(self, span: tuple[float, float]) -> float:
        with self._lock:
            drawn = self._rng.uniform(*span)
            return drawn * self.tail_factor if self._rng.random() < self.tail_share else drawn

    def of_create(self) -> float:
        return self.scale * self.create_factor * self._uniform(self.create_task)

    def of_read(self, docs: int) -> float:
        return self.scale * (self._uniform(self.read) + max(0, docs - 1) * self.read_per_doc)

    def of_commit(self, writes: int) -> float:
        return self.scale * (self._uniform(self.commit_base) + writes * self._uniform(self.commit_per_write))

    def describe(self) -> str:
        ms = lambda span: f"{span[0] * 1000:g}-{span[1] * 1000:g} ms"  # noqa: E731
        per_write = (
            self.commit_base[0] + 500 * self.commit_per_write[0],
            self.commit_base[1] + 500 * self.commit_per_write[1],
        )
        tail = (
            f"; {self.tail_share:.0%} of calls x{self.tail_factor:g}, CreateTask x{self.create_factor:g}"
            if self.tail_share or self.create_factor != 1
            else ""
        )
        return (
            f"CreateTask {ms(self.create_task)}; Firestore get/batch get/query/count {ms(self.read)} "
            f"+ {self.read_per_doc * 1e6:g} us per further document; commit {ms(self.commit_base)} "
            f"+ {self.commit_per_write[0] * 1e3:g}-{self.commit_per_write[1] * 1e3:g} ms per write "
            f"(500 writes: {ms(per_write)}){tail}"
        )


class FakeRpcError(grpc.RpcError, grpc.Call):
    """What a gRPC call raises on an error status; google.api_core maps it like a real one."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def result(self, timeout: Any = None) -> Any:
        raise self  # what grpc's interceptor calls on a failed call's outcome

    def exception(self, timeout: Any = None) -> FakeRpcError:
        return self

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class _Done:
    """The call object of a finished unary call."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.OK

    def details(self) -> str:
        return ""

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def result(self) -> None:
        return None


class _Stream(_Done):
    """A server stream's answers, deserialised one by one as the client iterates (as gRPC does)."""

    def __init__(self, answers: list[bytes], deserialize: Callable[[bytes], Any]) -> None:
        self._answers, self._deserialize, self._index = answers, deserialize, 0

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> Any:
        if self._index >= len(self._answers):
            raise StopIteration
        self._index += 1
        return self._deserialize(self._answers[self._index - 1])

    def is_active(self) -> bool:
        return self._index < len(self._answers)

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        self._index = len(self._answers)
        return True

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class Server:
    """Answers serialised requests by method name; counts its own CPU so a benchmark can subtract it."""

    def __init__(self, latency: Latency) -> None:
        self.latency = latency
        self.cpu_seconds = 0.0
        self.calls: Counter[str] = Counter()
        self._cpu_lock = threading.Lock()

    def handle(self, method: str, data: bytes) -> tuple[list[bytes], float]:
        """(serialised answers, latency to wait); raises FakeRpcError."""
        raise NotImplementedError

    def call(self, method: str, data: bytes) -> list[bytes]:
        started = time.thread_time()
        try:
            answers, wait = self.handle(method, data)
        finally:
            spent = time.thread_time() - started
            with self._cpu_lock:
                self.cpu_seconds += spent
                self.calls[method.rsplit("/", 1)[-1]] += 1
        if wait > 0:
            time.sleep(wait)
        return answers


class _UnaryUnary:
    def __init__(self, server: Server, method: str, serialize: Any, deserialize: Any) -> None:
        self.server, self.method, self.serialize, self.deserialize = server, method, serialize, deserialize

    def with_call(self, request: Any, timeout: Any = None, metadata: Any = None, **_: Any) -> tuple[Any, _Done]:
        (answer,) = self.server.call(self.method, self.serialize(request))
        return self.deserialize(answer), _Done()

    def __call__(self, request: Any, timeout: Any = None, metadata: Any = None, **_: Any) -> Any:
        return self.with_call(request)[0]


class _UnaryStream(_UnaryUnary):
    def __call__(self, request: Any, timeout: Any = None, metadata: Any = None, **_: Any) -> Any:
        return _Stream(self.server.call(self.method, self.serialize(request)), self.deserialize)


class _Unserved:
    """A streaming-request method (Listen, Write): made by the clients at start, never called here."""

    def __init__(self, method: str) -> None:
        self.method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, f"{self.method} is not served by the benchmark")


class FakeChannel(grpc.Channel):
    """A gRPC channel whose calls are answered in process by `server`."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def unary_unary(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, *_: Any, **__: Any
    ) -> _UnaryUnary:
        return _UnaryUnary(self.server, method, request_serializer, response_deserializer)

    def unary_stream(
        self, method: str, request_serializer: Any = None, response_deserializer: Any = None, *_: Any, **__: Any
    ) -> _UnaryStream:
        return _UnaryStream(self.server, method, request_serializer, response_deserializer)

    def stream_unary(self, method: str, *_: Any, **__: Any) -> Any:
        return _Unserved(method)

    def stream_stream(self, method: str, *_: Any, **__: Any) -> Any:
        return _Unserved(method)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        return None

    def unsubscribe(self, callback: Any) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> FakeChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# ------------------------------------------------------------------------------------------ Firestore


def _pb_types() -> Any:
    from google.cloud.firestore_v1.types import aggregation_result, document, firestore, write

    class Types:
        Document = document.Document.pb()
        Value = document.Value.pb()
        CommitRequest = firestore.CommitRequest.pb()
        CommitResponse = firestore.CommitResponse.pb()
        WriteResult = write.WriteResult.pb()
        BatchGetRequest = firestore.BatchGetDocumentsRequest.pb()
        BatchGetResponse = firestore.BatchGetDocumentsResponse.pb()
        RunQueryRequest = firestore.RunQueryRequest.pb()
        RunQueryResponse = firestore.RunQueryResponse.pb()
        AggregationRequest = firestore.RunAggregationQueryRequest.pb()
        AggregationResponse = firestore.RunAggregationQueryResponse.pb()
        AggregationResult = aggregation_result.AggregationResult.pb()

    return Types


_TYPE_RANK = {
    "null_value": 0,
    "boolean_value": 1,
    "integer_value": 2,
    "double_value": 2,
    "timestamp_value": 3,
    "string_value": 4,
    "bytes_value": 5,
    "reference_value": 6,
    "geo_point_value": 7,
    "array_value": 8,
    "map_value": 9,
}


def _key(value: Any) -> tuple[int, Any]:
    """A Firestore value as (type rank, comparable), in Firestore's order of values."""
    kind = value.WhichOneof("value_type")
    rank = _TYPE_RANK.get(kind or "null_value", 0)
    if kind == "timestamp_value":
        return rank, (value.timestamp_value.seconds, value.timestamp_value.nanos)
    if kind in ("integer_value", "double_value", "boolean_value", "string_value", "bytes_value", "reference_value"):
        return rank, getattr(value, kind)
    if kind is None or kind == "null_value":
        return rank, 0
    return rank, value.SerializeToString(deterministic=True)


def _field_key(path: str) -> Callable[[Any], tuple[int, Any]]:
    """Sort key for an order_by field: the document's value there, below every value where it has none."""
    return lambda doc: _key(doc.fields[path]) if path in doc.fields else (-1, 0)


_OPERATORS: dict[int, Callable[[tuple[int, Any], tuple[int, Any]], bool]] = {}


def _operators() -> dict[int, Callable[[tuple[int, Any], tuple[int, Any]], bool]]:
    if not _OPERATORS:
        from google.cloud.firestore_v1.types import query

        op = query.StructuredQuery.FieldFilter.Operator
        same = lambda a, b: a[0] == b[0]  # noqa: E731 - a range filter only matches values of its own type
        _OPERATORS.update(
            {
                op.EQUAL: lambda a, b: a == b,
                op.NOT_EQUAL: lambda a, b: a != b,
                op.LESS_THAN: lambda a, b: same(a, b) and a < b,
                op.LESS_THAN_OR_EQUAL: lambda a, b: same(a, b) and a <= b,
                op.GREATER_THAN: lambda a, b: same(a, b) and a > b,
                op.GREATER_THAN_OR_EQUAL: lambda a, b: same(a, b) and a >= b,
            }
        )
    return _OPERATORS


class FirestoreServer(Server):
    """Documents in memory as protobuf Documents, answered as the Firestore API answers."""

    def __init__(self, latency: Latency) -> None:
        super().__init__(latency)
        self.t = _pb_types()
        self.docs: dict[str, Any] = {}  # full document name → Document
        self.by_parent: dict[str, dict[str, Any]] = defaultdict(dict)  # collection path → {name: Document}
        self._eq_index: dict[tuple[str, str], dict[Any, set[str]]] = {}  # (collection, field) → value → names
        self._lock = threading.Lock()
        self._clock_nanos = 1_700_000_000 * 10**9
        self.rejected_commits = 0

    # --------------------------------------------------------------------------------- storage

    def _stamp(self, target: Any) -> None:
        self._clock_nanos += 1000
        target.seconds, target.nanos = divmod(self._clock_nanos, 10**9)

    @staticmethod
    def _parent(name: str) -> str:
        return name.rsplit("/", 1)[0]

    def _index_remove(self, name: str, doc: Any) -> None:
        parent = self._parent(name)
        for (collection, field_name), index in self._eq_index.items():
            if collection == parent and field_name in doc.fields:
                index.get(_key(doc.fields[field_name]), set()).discard(name)

    def _index_add(self, name: str, doc: Any) -> None:
        parent = self._parent(name)
        for (collection, field_name), index in self._eq_index.items():
            if collection == parent and field_name in doc.fields:
                index.setdefault(_key(doc.fields[field_name]), set()).add(name)

    def put_document(self, name: str, doc: Any) -> None:
        """Store a Document as is (seeding); the caller keeps no reference to it."""
        with self._lock:
            old = self.docs.get(name)
            if old is not None:
                self._index_remove(name, old)
            doc.name = name
            if not doc.HasField("update_time"):
                self._stamp(doc.update_time)
                doc.create_time.CopyFrom(doc.update_time)
            self.docs[name] = doc
            self.by_parent[self._parent(name)][name] = doc
            self._index_add(name, doc)

    def _delete(self, name: str) -> None:
        old = self.docs.pop(name, None)
        if old is not None:
            self._index_remove(name, old)
            self.by_parent[self._parent(name)].pop(name, None)

    # ---------------------------------------------------------------------------------- methods

    def handle(self, method: str, data: bytes) -> tuple[list[bytes], float]:
        name = method.rsplit("/", 1)[-1]
        if name == "Commit":
            return self._commit(data)
        if name == "BatchGetDocuments":
            return self._batch_get(data)
        if name == "RunQuery":
            return self._run_query(data)
        if name == "RunAggregationQuery":
            return self._aggregate(data)
        raise FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served by the benchmark's Firestore")

    def _commit(self, data: bytes) -> tuple[list[bytes], float]:
        request = self.t.CommitRequest.FromString(data)
        response = self.t.CommitResponse()
        with self._lock:
            for write in request.writes:
                target = write.update.name if write.WhichOneof("operation") == "update" else write.delete
                current = self.docs.get(target)
                if write.HasField("current_document"):
                    condition = write.current_document
                    kind = condition.WhichOneof("condition_type")
                    if kind == "exists" and condition.exists and current is None:
                        self.rejected_commits += 1
                        raise FakeRpcError(grpc.StatusCode.NOT_FOUND, f"No document to update: {target}")
                    if kind == "exists" and not condition.exists and current is not None:
                        self.rejected_commits += 1
                        raise FakeRpcError(grpc.StatusCode.ALREADY_EXISTS, f"Document already exists: {target}")
                    if kind == "update_time" and (current is None or current.update_time != condition.update_time):
                        self.rejected_commits += 1
                        raise FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, f"the stored version differs: {target}")
            self._stamp(response.commit_time)
            for write in request.writes:
                if write.WhichOneof("operation") == "delete":
                    self._delete(write.delete)
                    response.write_results.add().update_time.CopyFrom(response.commit_time)
                    continue
                name = write.update.name
                current = self.docs.get(name)
                if write.HasField("update_mask") and current is not None:
                    doc = self.t.Document()
                    doc.CopyFrom(current)
                    for path in write.update_mask.field_paths:
                        top = path.strip("`")
                        if top in write.update.fields:
                            doc.fields[top].CopyFrom(write.update.fields[top])
                        elif top in doc.fields:
                            del doc.fields[top]
                else:
                    doc = self.t.Document()
                    doc.CopyFrom(write.update)
                    if current is not None:
                        doc.create_time.CopyFrom(current.create_time)
                if current is None:
                    doc.create_time.CopyFrom(response.commit_time)
                doc.update_time.CopyFrom(response.commit_time)
                if current is not None:
                    self._index_remove(name, current)
                self.docs[name] = doc
                self.by_parent[self._parent(name)][name] = doc
                self._index_add(name, doc)
                response.write_results.add().update_time.CopyFrom(response.commit_time)
        return [response.SerializeToString()], self.latency.of_commit(len(request.writes))

    def _masked(self, doc: Any, fields: Any) -> Any:
        if fields is None:
            return doc
        out = self.t.Document(name=doc.name)
        out.create_time.CopyFrom(doc.create_time)
        out.update_time.CopyFrom(doc.update_time)
        for path in fields:
            top = path.strip("`")
            if top in doc.fields:
                out.fields[top].CopyFrom(doc.fields[top])
        return out

    def _batch_get(self, data: bytes) -> tuple[list[bytes], float]:
        request = self.t.BatchGetRequest.FromString(data)
        fields = list(request.mask.field_paths) if request.HasField("mask") else None
        answers = []
        with self._lock:
            for name in request.documents:
                response = self.t.BatchGetResponse()
                self._stamp(response.read_time)
                doc = self.docs.get(name)
                if doc is None:
                    response.missing = name
                else:
                    response.found.CopyFrom(self._masked(doc, fields))
                answers.append(response.SerializeToString())
        return answers, self.latency.of_read(len(answers))

    def _filters(self, where: Any) -> list[Any]:
        kind = where.WhichOneof("filter_type")
        if kind == "composite_filter":
            return [f for part in where.composite_filter.filters for f in self._filters(part)]
        if kind == "field_filter":
            return [where.field_filter]
        if kind is None:
            return []
        raise FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, f"filter {kind} is not served by the benchmark")

    def _matching(self, parent: str, structured: Any) -> list[Any]:
        from google.cloud.firestore_v1.types import query

        collection = f"{parent}/{structured.from_[0].collection_id}"
        filters = self._filters(structured.where) if structured.HasField("where") else []
        ops = _operators()
        equal = query.StructuredQuery.FieldFilter.Operator.EQUAL
        in_ = query.StructuredQuery.FieldFilter.Operator.IN
        candidates: Any = None
        for f in filters:
            if f.op == equal:
                index_key = (collection, f.field.field_path)
                if index_key not in self._eq_index:
                    index: dict[Any, set[str]] = {}
                    for name, doc in self.by_parent.get(collection, {}).items():
                        if f.field.field_path in doc.fields:
                            index.setdefault(_key(doc.fields[f.field.field_path]), set()).add(name)
                    self._eq_index[index_key] = index
                names = self._eq_index[index_key].get(_key(f.value), set())
                candidates = [self.docs[n] for n in names]
                break
        if candidates is None:
            candidates = list(self.by_parent.get(collection, {}).values())
        out = []
        for doc in candidates:
            for f in filters:
                path = f.field.field_path
                if path not in doc.fields:
                    break
                have = _key(doc.fields[path])
                if f.op == in_:
                    if have not in {_key(v) for v in f.value.array_value.values}:
                        break
                elif not ops[f.op](have, _key(f.value)):
                    break
            else:
                out.append(doc)
        out.sort(key=lambda d: d.name)
        for order in reversed(list(structured.order_by)):
            path = order.field.field_path
            if path == "__name__":
                continue
            out.sort(key=_field_key(path), reverse=order.direction == 2)  # 2: DESCENDING
        return out

    def _run_query(self, data: bytes) -> tuple[list[bytes], float]:
        request = self.t.RunQueryRequest.FromString(data)
        structured = request.structured_query
        fields = [f.field_path for f in structured.select.fields] if structured.HasField("select") else None
        with self._lock:
            docs = self._matching(request.parent, structured)
            if structured.HasField("limit"):
                docs = docs[: structured.limit.value]
            answers = []
            for doc in docs:
                response = self.t.RunQueryResponse()
                self._stamp(response.read_time)
                response.document.CopyFrom(self._masked(doc, fields))
                answers.append(response.SerializeToString())
            if not answers:
                response = self.t.RunQueryResponse()
                self._stamp(response.read_time)
                answers.append(response.SerializeToString())
        return answers, self.latency.of_read(len(answers))

    def _aggregate(self, data: bytes) -> tuple[list[bytes], float]:
        request = self.t.AggregationRequest.FromString(data)
        aggregation = request.structured_aggregation_query
        with self._lock:
            docs = self._matching(request.parent, aggregation.structured_query)
        response = self.t.AggregationResponse()
        self._stamp(response.read_time)
        for item in aggregation.aggregations:
            kind = item.WhichOneof("operator")
            if kind == "count":
                response.result.aggregate_fields[item.alias].integer_value = len(docs)
            elif kind == "sum":
                path = item.sum.field.field_path
                total = sum(d.fields[path].integer_value for d in docs if path in d.fields)
                response.result.aggregate_fields[item.alias].integer_value = total
            else:
                raise FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, f"aggregation {kind}")
        return [response.SerializeToString()], self.latency.of_read(1)

    # ------------------------------------------------------------------------------- inspection

    def collection(self, parent: str, collection_id: str) -> dict[str, Any]:
        return dict(self.by_parent.get(f"{parent}/{collection_id}", {}))


# ---------------------------------------------------------------------------------------- Cloud Tasks


class TasksServer(Server):
    """CreateTask: a name seen before answers ALREADY_EXISTS; every accepted task is kept (queue, body)."""

    def __init__(self, latency: Latency) -> None:
        super().__init__(latency)
        from google.cloud.tasks_v2.types import cloudtasks, task

        self.CreateTaskRequest = cloudtasks.CreateTaskRequest.pb()
        self.Task = task.Task.pb()
        self.created: dict[str, tuple[str, bytes, float]] = {}  # task name → (queue, body, schedule epoch)
        self.refused: Counter[str] = Counter()  # names asked for again (ALREADY_EXISTS answered)
        self.order: list[str] = []
        self.fail: Callable[[str, bytes], bool] | None = None  # injected failures: (name, body) → refused
        self._lock = threading.Lock()
        self._generated = 0

    def handle(self, method: str, data: bytes) -> tuple[list[bytes], float]:
        name = method.rsplit("/", 1)[-1]
        if name != "CreateTask":
            raise FakeRpcError(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served by the benchmark's Cloud Tasks")
        request = self.CreateTaskRequest.FromString(data)
        task = request.task
        wait = self.latency.of_create()
        with self._lock:
            if not task.name:
                self._generated += 1
                task.name = f"{request.parent}/tasks/{self._generated}"
            if self.fail is not None and self.fail(task.name, task.http_request.body):
                # Not a code the client retries: the caller sees the failure at once, as after a crash.
                raise FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "injected: the creation failed")
            if task.name in self.created:
                self.refused[task.name] += 1
                raise FakeRpcError(grpc.StatusCode.ALREADY_EXISTS, f"Requested entity already exists: {task.name}")
            schedule = task.schedule_time.seconds + task.schedule_time.nanos / 1e9
            self.created[task.name] = (request.parent, task.http_request.body, schedule)
            self.order.append(task.name)
        answer = self.Task(name=task.name, dispatch_count=0, view=1)  # BASIC: the cloud does not echo the body
        answer.schedule_time.CopyFrom(task.schedule_time)
        return [answer.SerializeToString()], wait

    def queue_of(self, name: str) -> str:
        return self.created[name][0].rsplit("/", 1)[-1]


def firestore_client(server: FirestoreServer, project: str) -> Any:
    """The product's Firestore client (shared.platform.firestore_wire.client_class), talking to `server`."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.firestore_v1.services.firestore import FirestoreClient
    from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport

    from shared.platform.firestore_wire import client_class

    client = client_class()(project=project, credentials=AnonymousCredentials())
    client._firestore_api_internal = FirestoreClient(transport=FirestoreGrpcTransport(channel=FakeChannel(server)))
    return client


def tasks_client(server: TasksServer) -> Any:
    """The official Cloud Tasks client, talking to `server`."""
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=FakeChannel(server)))


def encode_document(data: dict[str, Any]) -> Any:
    """A Document protobuf for seeding, encoded by the Firestore client's own helper."""
    from google.cloud.firestore_v1 import _helpers
    from google.cloud.firestore_v1.types import document

    doc = document.Document.pb()()
    for name, value in _helpers.encode_dict(data).items():
        doc.fields[name].CopyFrom(document.Value.pb(value))
    return doc


def iter_values(doc: Any) -> Iterator[tuple[str, Any]]:
    return iter(doc.fields.items())
