"""In-memory stand-ins for the services' collaborators, in the spirit of dramatiq's StubBroker.

They record what happened and can be told to fail, so unit tests assert outcomes (documents stored,
messages sent, tasks created) instead of call sequences. `MemoryStore` keeps the `Store` contract of
shared.platform.store (exclusive create, versioned update, all-or-nothing commit); the emulator tests
(tests/integration) keep the real adapter to the same contract.
"""

from __future__ import annotations

import copy
import itertools
import operator
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.messaging.providers import LOOKUP_SKEW, OutgoingEmail, OutgoingSms, SentMessage
from shared.platform.store import DOC_ID, Create, Delete, Doc, Filter, Order, Put, Update, Write
from shared.tasks.queue import TaskSpec


class FixedClock:
    """A clock for tests of pure logic: stands still until told to move."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        return self.instant

    def advance(self, **delta: float) -> None:
        self.instant += timedelta(**delta)


# Firestore's value type ordering (https://cloud.google.com/firestore/docs/concepts/data-types, "Value type
# ordering"): null < booleans < numbers (integers and doubles together, numerically) < timestamps < strings
# < bytes < references < geo points < arrays < maps. Only values of one type compare in a range filter; an
# equality never matches across types (True is not 1, as it is in Python).
_TYPE_RANK: tuple[tuple[type | tuple[type, ...], int], ...] = (
    (type(None), 0),
    (bool, 1),  # before int: bool is an int in Python, never in Firestore
    ((int, float), 2),
    (datetime, 3),
    (str, 4),
    (bytes, 5),
    (list, 8),
    (dict, 10),
)
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _sort_key(value: Any) -> tuple[Any, ...]:
    """A key that orders values as Firestore does, across types: arrays element by element (the shorter first
    when one is the other's prefix), maps by key then value."""
    rank = next((rank for kind, rank in _TYPE_RANK if isinstance(value, kind)), None)
    if rank is None:
        raise TypeError(f"MemoryStore holds no {type(value).__name__} (not a Firestore value type)")
    if rank == 0:
        return (0,)
    if rank == 8:
        return (8, tuple(_sort_key(item) for item in value))
    if rank == 10:
        return (10, tuple((key, _sort_key(value[key])) for key in sorted(value)))
    return (rank, value)


def _equal(have: Any, want: Any) -> bool:
    return _sort_key(have) == _sort_key(want)


def _compare(op: str, have: Any, want: Any) -> bool:
    """Firestore's filter semantics, for the operators the services use (a missing field never matches)."""
    if op == "==":
        return _equal(have, want)
    if op == "!=":  # Firestore: the field exists and is neither null nor the value
        return have is not None and not _equal(have, want)
    if op == "in":  # a value filter: null is matched by `==` alone (IS_NULL), as the emulator answers
        return have is not None and any(_equal(have, candidate) for candidate in want)
    if op == "array_contains":
        return isinstance(have, list) and any(_equal(item, want) for item in have)
    have_key, want_key = _sort_key(have), _sort_key(want)
    if have is None or have_key[0] != want_key[0]:  # a range filter only matches values of its own type
        return False
    return bool(_ORDER[op](have_key, want_key))


def _ordered(docs: list[Doc], order_by: Sequence[Order], where: Sequence[Filter]) -> list[Doc]:
    """Firestore's result order: the explicit order, then each inequality field not in it (by name), then the
    document id in the last direction given (https://firebase.google.com/docs/firestore/query-data/order-limit-data;
    the REST reference of StructuredQuery.order_by). A document missing an ordered field is not in the result."""
    orders = list(order_by)
    named = {name for name, _ in orders}
    last = orders[-1][1] if orders else "asc"
    ranged = sorted({name for name, op, _ in where if op in (*_ORDER, "!=")} - named)
    orders += [(name, last) for name in ranged]
    if DOC_ID not in named | set(ranged):
        orders.append((DOC_ID, last))

    def value(doc: Doc, name: str) -> Any:
        return doc.id if name == DOC_ID else doc.data[name]

    kept = [doc for doc in docs if all(name == DOC_ID or name in doc.data for name, _ in orders)]
    for name, direction in reversed(orders):

        def key(doc: Doc, name: str = name) -> tuple[Any, ...]:
            return _sort_key(value(doc, name))

        kept.sort(key=key, reverse=direction == "desc")
    return kept


class MemoryStore:
    """A `Store` in memory. `fail_next(kind)` makes the next call of that kind raise, like a flaky backend."""

    def __init__(self) -> None:
        self._docs: dict[str, tuple[dict[str, Any], int]] = {}
        self._versions = itertools.count(1)
        self._lock = threading.RLock()
        self.round_trips = 0
        self._failures: dict[str, list[BaseException]] = {}
        self.on_commit: Callable[[Sequence[Write]], None] | None = None  # a hook to interleave a rival
        self.after_read: Callable[[], None] | None = None  # runs once, right after the next get_all answers

    # test controls
    def fail_next(self, kind: str, error: BaseException | None = None, times: int = 1) -> None:
        self._failures.setdefault(kind, []).extend([error or ConnectionError(f"injected {kind} failure")] * times)

    def _trip(self, kind: str) -> None:
        self.round_trips += 1
        queue = self._failures.get(kind)
        if queue:
            raise queue.pop(0)

    def docs(self, collection: str) -> dict[str, dict[str, Any]]:
        """Every document directly in `collection`, by id (test inspection)."""
        prefix = collection.rstrip("/") + "/"
        with self._lock:
            return {
                p[len(prefix) :]: copy.deepcopy(d)
                for p, (d, _) in self._docs.items()
                if p.startswith(prefix) and "/" not in p[len(prefix) :]
            }

    def doc(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._docs.get(path)
            return copy.deepcopy(item[0]) if item else None

    def stored(self, path: str) -> dict[str, Any]:
        """The document a test expects to be there (a copy); fails naming the path when it is not."""
        found = self.doc(path)
        assert found is not None, f"no document at {path}"
        return found

    def seed(self, path: str, data: Mapping[str, Any]) -> None:
        with self._lock:
            self._docs[path] = (copy.deepcopy(dict(data)), next(self._versions))

    # the Store contract
    def _read(self, path: str) -> Doc | None:
        item = self._docs.get(path)
        return Doc(path, copy.deepcopy(item[0]), item[1]) if item else None

    def get(self, path: str) -> Doc | None:
        with self._lock:
            self._trip("get")
            return self._read(path)

    def get_all(self, paths: Sequence[str], *, fields: Sequence[str] | None = None) -> dict[str, Doc]:
        with self._lock:
            self._trip("get_all")
            found = {}
            for path in dict.fromkeys(paths):
                doc = self._read(path)
                if doc is not None:
                    if fields is not None:
                        doc = Doc(doc.path, {k: v for k, v in doc.data.items() if k in fields}, doc.version)
                    found[path] = doc
        hook, self.after_read = self.after_read, None
        if hook is not None:
            hook()
        return found

    def _check(self, write: Write) -> bool:
        current = self._docs.get(write.path)
        if isinstance(write, Create):
            return current is None
        if isinstance(write, Update):
            return current is not None and (write.version is None or write.version == current[1])
        return True

    def _apply(self, write: Write) -> int | None:
        if isinstance(write, Delete):
            self._docs.pop(write.path, None)
            return None
        current = self._docs.get(write.path)
        if isinstance(write, Create) or (isinstance(write, Put) and not write.merge):
            data = copy.deepcopy(dict(write.data))
        else:
            data = copy.deepcopy(current[0] if current else {})
            data.update(copy.deepcopy(dict(write.data)))
        if current is not None and data == current[0]:
            return current[1]  # like Firestore: a write that changes nothing keeps the update time
        version = next(self._versions)
        self._docs[write.path] = (data, version)
        return version

    def create(self, path: str, data: Mapping[str, Any]) -> Any | None:
        return self._single("create", Create(path, data))

    def update(self, path: str, data: Mapping[str, Any], *, version: Any = None) -> Any | None:
        for key in data:
            assert "." not in key, f"update() takes top-level names, got {key!r}"
        return self._single("update", Update(path, data, version))

    def put(self, path: str, data: Mapping[str, Any], *, merge: bool = False) -> Any:
        return self._single("put", Put(path, data, merge))

    def _single(self, kind: str, write: Write) -> Any | None:
        with self._lock:
            self._trip(kind)
            if not self._check(write):
                return None
            return self._apply(write)

    def commit(self, writes: Sequence[Write]) -> list[Any] | None:
        if self.on_commit is not None:
            self.on_commit(writes)
        with self._lock:
            self._trip("commit")
            assert len(writes) <= 500, "Firestore takes at most 500 writes per commit"
            if not all(self._check(write) for write in writes):
                return None
            return [self._apply(write) for write in writes]

    def _matching(self, collection: str, where: Sequence[Filter]) -> list[Doc]:
        prefix = collection.rstrip("/") + "/"
        out = []
        for path in sorted(self._docs):
            if not path.startswith(prefix) or "/" in path[len(prefix) :]:
                continue
            doc = self._read(path)
            assert doc is not None
            fields = {**doc.data, DOC_ID: doc.id}
            if all(field_name in fields and _compare(op, fields[field_name], value) for field_name, op, value in where):
                out.append(doc)
        return out

    def query(
        self,
        collection: str,
        *,
        where: Sequence[Filter] = (),
        order_by: Sequence[Order] = (),
        fields: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Doc]:
        with self._lock:
            self._trip("query")
            docs = self._matching(collection, where)
        docs = _ordered(docs, order_by, where)
        if limit is not None:
            docs = docs[:limit]
        for doc in docs:
            yield (
                doc
                if fields is None
                else Doc(doc.path, {k: v for k, v in doc.data.items() if k in fields}, doc.version)
            )

    def count(self, collection: str, *, where: Sequence[Filter] = ()) -> int:
        with self._lock:
            self._trip("count")
            return len(self._matching(collection, where))

    def sum(self, collection: str, field_name: str, *, where: Sequence[Filter] = ()) -> int | float:
        with self._lock:
            self._trip("sum")
            values = [d.data.get(field_name) for d in self._matching(collection, where)]
            # Firestore sums numbers only (a boolean is not one; _sort_key ranks numbers 2)
            numbers: list[int | float] = [v for v in values if isinstance(v, int | float) and _sort_key(v)[0] == 2]
            return sum(numbers) if numbers else 0


@dataclass
class RecordingSms:
    """An SmsSender that records every send; `fail_with` queues exceptions for the next sends."""

    sent: list[OutgoingSms] = field(default_factory=list)
    fail_with: list[BaseException] = field(default_factory=list)
    accepted_then_lost: int = 0  # the next N sends are accepted (recorded) but their answer is lost
    listed: list[SentMessage] = field(default_factory=list)  # what the provider's message list returns
    on_send: Callable[[OutgoingSms, str], None] | None = None  # runs once the provider holds the message
    lookups: int = 0  # message-list queries asked
    lookup_fails: list[BaseException] = field(default_factory=list)  # exceptions for the next lookups
    clock: FixedClock | None = None  # stamps each message's sent_at (None: undated, as a message still queued)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def send_sms(self, message: OutgoingSms) -> str:
        if self.fail_with:
            raise self.fail_with.pop(0)
        sid = f"SM{next(self._ids):032d}"
        self.sent.append(message)
        sent_at = self.clock.now() if self.clock is not None else None
        self.listed.append(
            SentMessage(sid=sid, to=message.to, sender=message.sender, body=message.body, sent_at=sent_at)
        )
        if self.on_send is not None:
            self.on_send(message, sid)
        if self.accepted_then_lost:
            from shared.messaging.providers import SendUnconfirmed

            self.accepted_then_lost -= 1
            raise SendUnconfirmed("sms", "twilio_answer_lost")
        return sid

    def find_sent(self, *, to: str, sender: str, since: datetime) -> list[SentMessage]:
        self.lookups += 1
        if self.lookup_fails:
            raise self.lookup_fails.pop(0)
        # Newest first and from `since` on, less the adapter's allowance for Twilio's clock, as TwilioSms answers.
        return [
            m
            for m in reversed(self.listed)
            if m.to == to and m.sender == sender and (m.sent_at is None or m.sent_at >= since - LOOKUP_SKEW)
        ]


@dataclass
class RecordingEmail:
    """An EmailSender that records every send; `fail_with` queues exceptions for the next sends."""

    sent: list[OutgoingEmail] = field(default_factory=list)
    fail_with: list[BaseException] = field(default_factory=list)
    accepted_then_lost: int = 0  # the next N sends are accepted (recorded) but their answer is lost
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def send_email(self, message: OutgoingEmail) -> str:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append(message)
        if self.accepted_then_lost:
            from shared.messaging.providers import SendUnconfirmed

            self.accepted_then_lost -= 1
            raise SendUnconfirmed("email", "sendgrid_answer_lost")
        return f"email-{next(self._ids)}"


@dataclass
class RecordingQueue:
    """A TaskQueue that records each spec; a second create of a name answers False, as Cloud Tasks does."""

    created: list[TaskSpec] = field(default_factory=list)
    fail_with: list[BaseException] = field(default_factory=list)
    fail_keys: set[str] = field(default_factory=set)  # business keys whose create always fails
    names: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, spec: TaskSpec) -> bool:
        with self._lock:
            if self.fail_with:
                raise self.fail_with.pop(0)
            if spec.business_key in self.fail_keys:
                raise ConnectionError("injected create failure")
            name = (spec.queue, spec.business_key)
            if name in self.names:
                return False
            self.names.add(name)
            self.created.append(spec)
            return True

    def keys(self) -> list[str]:
        return [spec.business_key for spec in self.created]
