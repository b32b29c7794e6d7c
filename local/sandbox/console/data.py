"""What the console reads from (and the one field it writes to) the local Firestore and Pub/Sub emulators.

Read-only except `set_failed_task_status`, which writes one field exactly as an operator's edit in the
Firestore console does, and `publish`, which publishes exactly as Cloud Scheduler does. Only emulators are
ever dialled: without FIRESTORE_EMULATOR_HOST (and PUBSUB_EMULATOR_HOST) every call refuses, so the
console can never touch a real project. Every call has a short timeout and no retries: a stopped emulator
shows as a banner on the page within seconds, never as a hung request.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.platform.masking import scrub

LEDGER = "notifications"
FAILED_TASKS = "failed_tasks"
REPORTS = "reports"
CLINICS = "clinics"
# What the console lets a person open as a document: what the functions write, never a patient's record.
BROWSABLE = (
    LEDGER,
    FAILED_TASKS,
    REPORTS,
    "slot_offers",
    "fanout_runs",
    "inbound_sms",
    "patient_requests",
    "purchase_orders",
    "report_runs",
    "waitlist",
)
FAILED_TASK_EDITS = ("retry", "resolved")  # what an operator sets by hand (docs/architecture.md, "failed_tasks")
# A ledger doc's fields that never change once it is created (send_at is part of what its key hashes)
KIND_FIELDS = ["kind", "clinic_id", "patient_id", "appointment_id", "channel", "report_id", "offer_id", "send_at"]
CLINIC_CACHE_SECONDS = 3.0
MAX_LIST = 500


class ConsoleDataError(RuntimeError):
    """Firestore or Pub/Sub cannot answer now; the message says why in a few words (no values)."""


@dataclass(frozen=True)
class ClinicRow:
    id: str
    name: str
    timezone: str
    sms_from: str
    email_from: str


def plain(value: Any, depth: int = 0) -> Any:
    """A Firestore value as the console shows it: instants as ISO text, strings scrubbed, bounded."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, str):
        return scrub(value)[:2000]
    if isinstance(value, dict) and depth < 4:
        return {str(key): plain(item, depth + 1) for key, item in sorted(value.items())[:200]}
    if isinstance(value, list | tuple) and depth < 4:
        return [plain(item, depth + 1) for item in list(value)[:200]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return type(value).__name__


class ConsoleData:
    """Lazily created official clients, one per sandbox; thread-safe (the clients are)."""

    def __init__(self, timeout_seconds: float = 3.0) -> None:
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._client: Any = None
        self._publisher: Any = None
        self._clinics: list[ClinicRow] = []
        self._clinics_until = 0.0
        self._kinds: dict[str, dict[str, Any]] = {}  # ledger key → the fields that never change

    # ------------------------------------------------------------------------------------ clients

    def _firestore(self) -> Any:
        emulator = os.environ.get("FIRESTORE_EMULATOR_HOST", "").strip()
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
        if not emulator or not project:
            raise ConsoleDataError("Firestore not configured (FIRESTORE_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT)")
        with self._lock:
            if self._client is None:
                from google.cloud import firestore

                self._client = firestore.Client(project=project)
            return self._client

    def _call(self, what: str, function: Any) -> Any:
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError

        try:
            return function()
        except (GoogleAPIError, GoogleAuthError, OSError, TimeoutError) as error:
            raise ConsoleDataError(f"{what}: Firestore unreachable ({type(error).__name__})") from None

    def _get(self, query: Any) -> list[Any]:
        return list(query.get(retry=None, timeout=self._timeout))

    # ------------------------------------------------------------------------------------ clinics

    def clinics(self) -> list[ClinicRow]:
        """Every clinic's id, name and senders, cached for a few seconds."""
        with self._lock:
            if time.monotonic() < self._clinics_until:
                return list(self._clinics)
        client = self._firestore()
        query = client.collection(CLINICS).select(["name", "timezone", "sms_from", "email_from"]).limit(MAX_LIST)
        snapshots = self._call("clinics", lambda: self._get(query))
        rows = []
        for snapshot in snapshots:
            data = snapshot.to_dict() or {}
            rows.append(
                ClinicRow(
                    id=snapshot.id,
                    name=str(data.get("name") or snapshot.id),
                    timezone=str(data.get("timezone") or ""),
                    sms_from=str(data.get("sms_from") or ""),
                    email_from=str(data.get("email_from") or ""),
                )
            )
        rows.sort(key=lambda row: row.name.lower())
        with self._lock:
            self._clinics, self._clinics_until = rows, time.monotonic() + CLINIC_CACHE_SECONDS
        return list(rows)

    def clinic_names(self) -> dict[str, str]:
        """Clinic id → name for a page's labels; empty while Firestore is unreachable (ids shown instead)."""
        try:
            return {clinic.id: clinic.name for clinic in self.clinics()}
        except ConsoleDataError:
            return {}

    # ------------------------------------------------------------------------------------- ledger

    def ledger_kinds(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """For each ledger key, the fields that never change (kind, clinic, patient, …); unknown keys absent."""
        wanted = {key for key in keys if key and "/" not in key}
        with self._lock:
            missing = [key for key in wanted if key not in self._kinds]
        if missing:
            client = self._firestore()
            for start in range(0, len(missing), 300):
                refs = [client.collection(LEDGER).document(key) for key in missing[start : start + 300]]
                snapshots = self._call(
                    "ledger",
                    lambda refs=refs: list(
                        client.get_all(refs, field_paths=KIND_FIELDS, retry=None, timeout=self._timeout)
                    ),
                )
                with self._lock:
                    for snapshot in snapshots:
                        if snapshot.exists:
                            self._kinds[snapshot.id] = snapshot.to_dict() or {}
        with self._lock:
            return {key: dict(self._kinds[key]) for key in wanted if key in self._kinds}

    def count(self, collection: str, field: str | None = None, value: Any = None) -> int:
        from google.cloud.firestore import FieldFilter

        client = self._firestore()
        query = client.collection(collection)
        if field is not None:
            query = query.where(filter=FieldFilter(field, "==", value))
        result = self._call(collection, lambda: query.count(alias="n").get(retry=None, timeout=self._timeout))
        return int(result[0][0].value)

    def listing(
        self, collection: str, where: list[tuple[str, Any]], *, order: str, limit: int = 200
    ) -> list[tuple[str, dict[str, Any]]]:
        """Docs matching equality filters, newest `order` first (sorted here: no composite index needed)."""
        from google.cloud.firestore import FieldFilter

        client = self._firestore()
        query = client.collection(collection)
        for field, value in where:
            query = query.where(filter=FieldFilter(field, "==", value))
        snapshots = self._call(collection, lambda: self._get(query.limit(MAX_LIST)))
        rows = [(snapshot.id, snapshot.to_dict() or {}) for snapshot in snapshots]
        epoch = datetime.min.replace(tzinfo=None)

        def newest(row: tuple[str, dict[str, Any]]) -> Any:
            stamp = row[1].get(order)
            return stamp.replace(tzinfo=None) if isinstance(stamp, datetime) else epoch

        rows.sort(key=newest, reverse=True)
        return rows[:limit]

    def _matching(self, collection: str, where: list[tuple[str, Any]], order: str | None) -> Any:
        from google.cloud.firestore import FieldFilter, Query
        from google.cloud.firestore_v1.field_path import FieldPath

        query = self._firestore().collection(collection)
        for field, value in where:
            query = query.where(filter=FieldFilter(field, "==", value))
        if order is not None:
            query = query.order_by(order, direction=Query.DESCENDING)
        return query.order_by(FieldPath.document_id(), direction=Query.DESCENDING if order else Query.ASCENDING)

    def unordered(self, collection: str, where: list[tuple[str, Any]], order: str) -> int:
        """How many docs match but lack the `order` field, so a page by `order` cannot place them (two
        count aggregations: Firestore's orderBy leaves such docs out of both the list and its count)."""
        counts = []
        for query in (self._matching(collection, where, None), self._matching(collection, where, order)):
            result = self._call(
                collection, lambda query=query: query.count(alias="n").get(retry=None, timeout=self._timeout)
            )
            counts.append(int(result[0][0].value))
        return max(0, counts[0] - counts[1])

    def page(
        self, collection: str, where: list[tuple[str, Any]], *, order: str | None, size: int, after: str | None = None
    ) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
        """One page of docs matching equality filters, newest `order` first (ties by id), or by id when
        `order` is None, starting after the doc named `after` (a Firestore cursor, as the Firebase consoles
        page); and the next page's cursor, None on the last page. A doc without the `order` field is not on
        an ordered page (Firestore's orderBy): `unordered` counts them, a page by id lists every doc."""
        client = self._firestore()
        query = self._matching(collection, where, order)
        if after and "/" not in after and len(after) <= 1500:
            reference = client.collection(collection).document(after)
            cursor = self._call(collection, lambda: reference.get(retry=None, timeout=self._timeout))
            if cursor.exists:  # a cursor doc deleted since: the first page again, never an error
                query = query.start_after(cursor)
        snapshots = self._call(collection, lambda: self._get(query.limit(size + 1)))
        rows = [(snapshot.id, snapshot.to_dict() or {}) for snapshot in snapshots[:size]]
        return rows, (rows[-1][0] if len(snapshots) > size else None)

    def document(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        if collection not in BROWSABLE or not doc_id or "/" in doc_id or len(doc_id) > 1500:
            return None
        client = self._firestore()
        snapshot = self._call(
            collection, lambda: client.collection(collection).document(doc_id).get(retry=None, timeout=self._timeout)
        )
        return (snapshot.to_dict() or {}) if snapshot.exists else None

    # ------------------------------------------------------------------------------- the two writes

    def set_failed_task_status(self, doc_id: str, status: str) -> bool:
        """An operator's edit in the Firestore console: the one field `status`, set on the existing document
        (an update with that field's mask; nothing else written). False when there is no such document."""
        from google.api_core.exceptions import NotFound

        if status not in FAILED_TASK_EDITS or not doc_id or "/" in doc_id:
            return False
        client = self._firestore()
        reference = client.collection(FAILED_TASKS).document(doc_id)

        def edit() -> bool:
            try:
                reference.update({"status": status}, retry=None, timeout=self._timeout)
            except NotFound:
                return False
            return True

        return bool(self._call("failed_tasks", edit))

    def publish(self, topic: str, data: bytes) -> str:
        """Publish as Cloud Scheduler does (the job's body as the data, no attributes); the message id."""
        emulator = os.environ.get("PUBSUB_EMULATOR_HOST", "").strip()
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
        if not emulator or not project:
            raise ConsoleDataError("Pub/Sub not configured (PUBSUB_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT)")
        from google.api_core.exceptions import GoogleAPIError

        with self._lock:
            if self._publisher is None:
                from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # untyped; mypy misses it in the namespace

                self._publisher = pubsub_v1.PublisherClient()
            publisher = self._publisher
        try:
            return str(publisher.publish(publisher.topic_path(project, topic), data).result(timeout=10))
        except (GoogleAPIError, OSError, TimeoutError) as error:
            raise ConsoleDataError(f"Pub/Sub unreachable ({type(error).__name__})") from None
