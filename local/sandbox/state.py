"""The sandbox's whole world in one object: outbox, fault rules, carrier, status view, shutdown flag."""

from __future__ import annotations

import threading
from typing import Any

from local.sandbox.courier import Courier
from local.sandbox.faults import FaultBook
from local.sandbox.firestore_status import FirestoreStatus
from local.sandbox.log import log
from local.sandbox.opt_outs import OptOuts
from local.sandbox.outbox import Outbox
from local.sandbox.settings import SandboxSettings
from shared.platform.masking import mask_address


class Sandbox:
    """Everything the HTTP routes share; tests may build one with explicit settings and inspect it."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings.from_env()
        self.outbox = Outbox()
        self.faults = FaultBook(self.settings.seed)
        self.opt_outs = OptOuts()
        self.stopping = threading.Event()
        self.courier = Courier(self.outbox, self.opt_outs, self.settings, self.stopping)
        self.firestore_status = FirestoreStatus(timeout_seconds=self.settings.status_timeout_seconds)

    def add_fault(self, spec: Any, *, source: str) -> dict[str, Any]:
        """Add a fault rule (FaultError names a bad field), wake the console's live views, log it masked."""
        fault = self.faults.add(spec)
        self.outbox.note_change()
        log(
            "INFO",
            "fault added",
            source=source,
            fault=fault["id"],
            channel=fault["channel"],
            kind=fault["kind"],
            recipient=mask_address(fault["to"]) or None,
            rate=fault["rate"],
            times=fault["times"],
        )
        return fault

    def hang(self, seconds: float | None) -> None:
        """Hold a request open like a provider that stopped answering; returns early on shutdown."""
        self.stopping.wait(self.settings.hang_seconds if seconds is None else seconds)

    def close(self) -> None:
        self.stopping.set()
        self.outbox.wake()  # the console's live streams return at once
        self.courier.close()
