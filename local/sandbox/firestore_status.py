"""Status view: counts read from the local Firestore with the official client, tolerant of it being down.

Only IDs, names, time zones and counts are read back: no patient field ever leaves Firestore here.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from local.sandbox.outbox import iso, utc_now

if TYPE_CHECKING:
    from google.cloud import firestore as firestore_module

APPOINTMENT_STATUSES = ("booked", "confirmed", "cancelled", "completed", "no_show")
NOTIFICATION_STATES = ("scheduled", "sending", "sent", "delivered", "skipped", "failed")
FAILED_TASK_STATUSES = ("open", "retry", "retried", "resolved")
MAX_CLINICS = 50


class FirestoreStatus:
    """Figures for the console's Operations page, cached briefly so a page refreshing every 3 s stays cheap."""

    def __init__(
        self, *, timeout_seconds: float = 5.0, cache_seconds: float = 3.0, down_cache_seconds: float = 10.0
    ) -> None:
        self._timeout = timeout_seconds
        self._cache_seconds = cache_seconds
        self._down_cache_seconds = down_cache_seconds
        self._lock = threading.Lock()
        self._client: firestore_module.Client | None = None
        self._cached: dict[str, Any] | None = None
        self._cached_until = 0.0

    def figures(self) -> dict[str, Any]:
        """Counts by clinic, notification state and failed-task status, or why they are unavailable."""
        with self._lock:  # one reader at a time; the others get its fresh answer
            if self._cached is not None and time.monotonic() < self._cached_until:
                return self._cached
            figures = self._collect()
            ttl = self._cache_seconds if figures["firestore"] == "ok" else self._down_cache_seconds
            self._cached, self._cached_until = figures, time.monotonic() + ttl
            return figures

    def _collect(self) -> dict[str, Any]:
        emulator = os.environ.get("FIRESTORE_EMULATOR_HOST", "").strip()
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "").strip()
        figures: dict[str, Any] = {"checked_at": iso(utc_now()), "project": project or None}
        if not emulator or not project:
            # Never point the sandbox at a real project: only the emulator is read.
            return {
                **figures,
                "firestore": "not configured",
                "error": "set FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT",
            }

        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError

        deadline = time.monotonic() + max(self._timeout * 3, 5.0)
        try:
            client = self._firestore(project)
            figures["clinics"] = self._clinics(client, deadline)
            figures["notifications"] = self._counts(client, "notifications", "state", NOTIFICATION_STATES, deadline)
            figures["failed_tasks"] = self._counts(client, "failed_tasks", "status", FAILED_TASK_STATUSES, deadline)
        except (GoogleAPIError, GoogleAuthError, OSError, TimeoutError) as error:
            return {**figures, "firestore": "unreachable", "error": type(error).__name__}
        return {**figures, "firestore": "ok"}

    def _firestore(self, project: str) -> firestore_module.Client:
        if self._client is None:
            from google.cloud import firestore as firestore_module

            self._client = firestore_module.Client(project=project)
        return self._client

    def _count(self, query: Any, deadline: float) -> int:
        if time.monotonic() > deadline:
            raise TimeoutError("status view ran out of time")
        # retry=None: a closed port must fail now, not after the default minute of retries.
        result = query.count(alias="n").get(retry=None, timeout=self._timeout)
        return int(result[0][0].value)

    def _counts(
        self, client: Any, collection: str, field: str, values: tuple[str, ...], deadline: float, base: Any = None
    ) -> dict[str, int]:
        from google.cloud.firestore import FieldFilter

        query = base if base is not None else client.collection(collection)
        counts = {value: self._count(query.where(filter=FieldFilter(field, "==", value)), deadline) for value in values}
        total = self._count(query, deadline)
        counts["other"] = total - sum(counts.values())  # states outside the contract: worth a look
        counts["total"] = total
        return counts

    def _clinics(self, client: Any, deadline: float) -> list[dict[str, Any]]:
        from google.cloud.firestore import FieldFilter

        clinics_query = client.collection("clinics").select(["name", "timezone"]).limit(MAX_CLINICS)
        snapshots = clinics_query.get(retry=None, timeout=self._timeout)
        clinics = []
        for snapshot in snapshots:
            clinic = snapshot.to_dict() or {}
            of_clinic = FieldFilter("clinic_id", "==", snapshot.id)
            clinics.append(
                {
                    "id": snapshot.id,
                    "name": clinic.get("name"),
                    "timezone": clinic.get("timezone"),
                    "patients": self._count(client.collection("patients").where(filter=of_clinic), deadline),
                    "appointments": self._counts(
                        client,
                        "appointments",
                        "status",
                        APPOINTMENT_STATUSES,
                        deadline,
                        base=client.collection("appointments").where(filter=of_clinic),
                    ),
                }
            )
        return clinics
