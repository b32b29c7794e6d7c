"""python -m ops consent record|show: the front desk's and an import's way into consents/ (docs/consent.md).

`record` builds the body of a platform `consent.recorded` event and takes exactly its path: the same
checks (shared.contract.events), the same owner (shared.consent.intake → consents.py). Without
--event-id, the id is derived from the consent itself, so re-running an import records nothing twice.
`show` prints one patient's current consents and their history (ids, codes and times: no PHI is stored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any

from shared.contract.events import (
    CONSENT_CHANNELS,
    CONSENT_PURPOSES,
    CONSENT_RECORDED,
    CONSENT_STATUSES,
    PLATFORM_CONSENT_SOURCES,
    consent_recorded,
)
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.errors import PermanentError
from shared.platform.masking import scrub


def add_parser(sub: Any) -> None:
    """`consent record` and `consent show`, under ops' subcommands."""
    consent = sub.add_parser("consent", help="record a consent from the front desk or an import; show a patient's")
    actions = consent.add_subparsers(dest="action", required=True)
    record = actions.add_parser("record", help="record one consent or revocation (as the booking platform would)")
    record.add_argument("--patient", required=True, help="the patient id")
    record.add_argument("--clinic", required=True, help="the patient's clinic id")
    record.add_argument("--purpose", choices=CONSENT_PURPOSES, required=True)
    record.add_argument("--channel", choices=CONSENT_CHANNELS, default="sms")
    record.add_argument("--status", choices=CONSENT_STATUSES, default="granted")
    record.add_argument("--source", choices=PLATFORM_CONSENT_SOURCES, default="front_desk")
    record.add_argument(
        "--wording-version", default="", help="the version of the wording agreed to (a grant: required)"
    )
    record.add_argument("--at", help="when it was given, ISO 8601 with its offset (default: now)")
    record.add_argument("--event-id", help="the consent's own id (default: derived from the consent)")
    record.set_defaults(run=cmd_record)
    show = actions.add_parser("show", help="a patient's current consents and their history, as JSON")
    show.add_argument("--patient", required=True, help="the patient id")
    show.set_defaults(run=cmd_show)


def cmd_record(args: argparse.Namespace) -> int:
    from shared.consent.intake import record_platform_consent

    body: dict[str, Any] = {
        "event": CONSENT_RECORDED,
        "patient_id": args.patient,
        "clinic_id": args.clinic,
        "purpose": args.purpose,
        "channel": args.channel,
        "status": args.status,
        "at": args.at or system_clock.now().isoformat(),
        "source": args.source,
        "wording_version": args.wording_version,
    }
    body["event_id"] = args.event_id or derived_id(body)
    try:
        result = record_platform_consent(consent_recorded(body), store=clients.store(), clock=system_clock)
    except PermanentError as exc:
        print(f"not recorded ({exc.code}): {scrub(str(exc))[:200]}", file=sys.stderr)
        return 1
    print(json.dumps({"event_id": body["event_id"], **result.summary()}))
    return 0


def derived_id(body: dict[str, Any]) -> str:
    """The same consent, imported twice, gets the same id."""
    key = "|".join(str(body[name]) for name in ("patient_id", "purpose", "channel", "status", "at", "source"))
    return f"{body['source']}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def cmd_show(args: argparse.Namespace) -> int:
    from shared.consent.consents import Consents
    from shared.contract.ids import is_doc_id

    if not is_doc_id(args.patient):
        print(f"not a patient id: {scrub(args.patient)[:80]}", file=sys.stderr)
        return 2
    consents = Consents(clients.store(), system_clock)
    state = consents.current(args.patient)
    shown = {
        "patient_id": args.patient,
        "current": {name: _plain(asdict(event)) for name, event in sorted(state.entries.items())},
        "history": [_plain(asdict(event)) for event in consents.history(args.patient)],
    }
    print(json.dumps(shown, indent=2))
    return 0 if shown["history"] or shown["current"] else 1


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    return {name: value.isoformat() if isinstance(value, datetime) else value for name, value in fields.items()}
