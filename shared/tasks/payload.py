"""Task bodies: the envelope every task shares, and a typed body whose parsing and JSON form come from its
fields (each task type's dataclass lives with its service: shared/messaging/appointment_tasks.py,
shared/waitlist/tasks.py, shared/reports/tasks.py, shared/reminders/units.py).

POST JSON {"type": …, "v": 1, fields…}: ids, codes and instants only, never PHI (docs/architecture.md).
`decode` + `envelope` check the bytes, the type and the version once (the router, the retry sweep); the
type's body class then reads its fields, each by the check its annotation names:

    @dataclass(frozen=True)
    class WaveTask(TaskBody):
        offer_id: DocId
        clinic_id: DocId
        wave: Annotated[int, Whole(0, MAX_WAVES)]

A field without a default is required, one with a default may be left out (and is left out of the JSON
form while it holds its default). Every problem is a PermanentError with a code, so the handler records
it in failed_tasks and answers 2xx instead of letting Cloud Tasks retry garbage. Unknown fields are
refused too: a body is ours, and a stray field could carry PHI.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from collections.abc import Mapping
from datetime import date, datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Protocol, Self, TypeVar

from shared.contract.bodies import decode_object
from shared.contract.ids import is_doc_id
from shared.contract.models import EARLIEST, LATEST
from shared.platform.errors import PermanentError

VERSION = 1
MAX_BODY_BYTES = 16 * 1024
ENVELOPE_FIELDS = ("type", "v")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def bad(message: str, code: str = "bad_payload") -> PermanentError:
    return PermanentError(message, code=code)


class FieldCheck(Protocol):
    """How one body field is read from JSON (raising `bad`) and written back to it."""

    def read(self, value: Any, name: str) -> Any: ...

    def write(self, value: Any) -> Any: ...


class _Plain:
    def write(self, value: Any) -> Any:
        return value


class DocIdCheck(_Plain):
    def read(self, value: Any, name: str) -> str:
        if not is_doc_id(value):
            raise bad(f"task field '{name}' is missing or not a document id")
        return value


class InstantCheck:
    """An ISO instant with offset, in range; every overflow is a bad payload, never an exception."""

    def read(self, value: Any, name: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
            utc = parsed.astimezone(timezone.utc) if parsed is not None and parsed.tzinfo is not None else None
        except (ValueError, OverflowError):
            utc = None
        if utc is None or not EARLIEST <= utc < LATEST:
            raise bad(f"task field '{name}' must be an ISO instant with offset")
        return utc

    def write(self, value: datetime) -> str:
        return value.isoformat()


class DayCheck:
    """A calendar date written YYYY-MM-DD (nothing else `date.fromisoformat` would take)."""

    def read(self, value: Any, name: str) -> date:
        try:
            if isinstance(value, str) and _DATE.fullmatch(value):
                return date.fromisoformat(value)
        except ValueError:
            pass
        raise bad(f"task field '{name}' must be a date YYYY-MM-DD")

    def write(self, value: date) -> str:
        return value.isoformat()


@dataclasses.dataclass(frozen=True)
class Whole(_Plain):
    """A whole number in [low, high]; true and 1.0 are not the integer 1."""

    low: int
    high: int

    def read(self, value: Any, name: str) -> int:
        if type(value) is not int or not self.low <= value <= self.high:
            raise bad(f"task field '{name}' must be a whole number from {self.low} to {self.high}")
        return value


@dataclasses.dataclass(frozen=True)
class OneOf(_Plain):
    """One of a few codes (a StrEnum's values, say)."""

    values: tuple[str, ...]

    def read(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise bad(f"task field '{name}' must be one of {', '.join(self.values)}")
        return value


@dataclasses.dataclass(frozen=True)
class Code:
    """A StrEnum's value, read as its member."""

    enum: type[StrEnum]

    def read(self, value: Any, name: str) -> StrEnum:
        try:
            return self.enum(value)
        except ValueError:
            raise bad(f"task field '{name}' must be one of {', '.join(self.enum)}") from None

    def write(self, value: StrEnum) -> str:
        return self.enum(value).value


@dataclasses.dataclass(frozen=True)
class Matches(_Plain):
    pattern: re.Pattern[str]
    what: str

    def read(self, value: Any, name: str) -> str:
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            raise bad(f"task field '{name}' must be {self.what}")
        return value


DocId = Annotated[str, DocIdCheck()]
Instant = Annotated[datetime, InstantCheck()]
Day = Annotated[date, DayCheck()]


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    check: FieldCheck
    required: bool
    default: Any


class TaskBody:
    """What every task dataclass shares: parsed from and written to JSON by its annotated fields.

    `type` and `v` are the envelope: a class serving one task type sets `type` as a field with that
    default; one serving several (shared/messaging/appointment_tasks.py) leaves it required and gets the
    routed name. `validate` holds the rules across fields (a key derived from ids, a window's order)."""

    type: str

    if TYPE_CHECKING:  # what each body offers the router and the retry sweep (fields or properties)

        @property
        def clinic_id(self) -> str: ...  # "" for a task about every clinic

        @property
        def failure_key(self) -> str: ...  # its failed_tasks doc id: one record per intended outcome

    @classmethod
    def spec(cls) -> tuple[_Field, ...]:
        return _spec(cls)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The body's field names: failed_tasks may list these (and the envelope's), never others."""
        return tuple(f.name for f in cls.spec())

    @classmethod
    def from_json(cls, body: dict[str, Any], kind: str) -> Self:
        """A body whose envelope was checked (`envelope`) → the task, or PermanentError."""
        fields = cls.spec()
        allowed = {f.name for f in fields}
        unknown = set(body) - set(ENVELOPE_FIELDS) - allowed
        if unknown:
            raise bad(f"task body has {len(unknown)} unknown field(s)")
        values: dict[str, Any] = {}
        for f in fields:
            raw = body.get(f.name)
            if raw is None:
                if f.required:
                    raise bad(f"task field '{f.name}' is required")
                continue
            values[f.name] = f.check.read(raw, f.name)
        task = cls(type=kind, **values)  # type: ignore[call-arg]  # every body is a dataclass with a type field
        task.validate()
        return task

    def validate(self) -> None:
        """Rules across fields: raise `bad(...)` when the body contradicts itself."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "v": VERSION}
        for f in self.spec():
            value = getattr(self, f.name)
            if value is not None and (f.required or value != f.default):
                body[f.name] = f.check.write(value)
        return body


B = TypeVar("B", bound=TaskBody)
_SPECS: dict[type[TaskBody], tuple[_Field, ...]] = {}


def _spec(cls: type[TaskBody]) -> tuple[_Field, ...]:
    known = _SPECS.get(cls)
    if known is None:
        known = _SPECS[cls] = _read_spec(cls)
    return known


def _read_spec(cls: type[TaskBody]) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]), include_extras=True)
    fields = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # TaskBody subclasses are dataclasses
        if f.name in ENVELOPE_FIELDS:
            continue
        check = _check_of(hints[f.name])
        if check is None:
            raise TypeError(f"{cls.__name__}.{f.name} names no field check (Annotated[..., check])")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        factory = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory() if callable(factory) else None
        fields.append(_Field(f.name, check, required, default))
    return tuple(fields)


def _check_of(hint: Any) -> FieldCheck | None:
    """The check an annotation names: Annotated[T, check], or inside `Annotated[T, check] | None`."""
    found = next((m for m in getattr(hint, "__metadata__", ()) if hasattr(m, "read")), None)
    return found or next((c for c in map(_check_of, typing.get_args(hint)) if c is not None), None)


def decode(raw: bytes) -> dict[str, Any]:
    """Bytes → a JSON object of checked values, or a PermanentError saying why not."""
    return decode_object(raw, max_bytes=MAX_BODY_BYTES, what="task body", not_object_code="malformed_json")


def parse(body: dict[str, Any], bodies: Mapping[str, type[B]]) -> B:
    """A decoded body → the task of the type it names among `bodies` (what the router does, for tools)."""
    kind = envelope(body)
    cls = bodies.get(kind)
    if cls is None:
        raise bad("unknown task type", code="unknown_type")
    return cls.from_json(body, kind)


def envelope(body: dict[str, Any]) -> str:
    """The body's type (any string; the router decides whether it knows it) once its version is 1."""
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise bad("task body has no 'type'")
    version = body.get("v")
    if type(version) is not int or version != VERSION:  # true and 1.0 are not the integer 1
        raise bad("unsupported task version", code="unsupported_version")
    return kind
