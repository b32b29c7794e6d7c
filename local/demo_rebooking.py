"""The demo's rebooking step (local/demo.py, docs/rebooking.md): 90 days after a Botox visit, the patient who gave
marketing consent gets a rebooking nudge; one who has booked again since gets nothing (skipped "rebooked"); a
patient who missed a visit two days ago gets "we missed you". The visits are a month after the demo's day (after
every seeded appointment, which would count as booked since); the stack's clock moves 90 days past them and the clinic's
tick for that day is run as `python -m ops replay-tick` runs it (the units of the reminder-fanout functions), so
the messages go through the real task handler, ledger and Twilio sandbox seconds later.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.contract.events import TickRequest
from shared.messaging.keys import message_key
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.emulator import set_local_clock
from shared.platform.settings import settings
from shared.rebooking.tasks import NO_SHOW, REBOOK
from shared.reminders.coordinator import run_tick
from shared.reminders.fanout import Fanout
from shared.reminders.scheduler import Queues
from shared.tasks.queue import CloudTasksQueue

REBOOK_AFTER_DAYS = 90
VISIT_IN_DAYS = 30  # the demo's Botox visits: a month after the demo's day, after every seeded appointment
NUDGE_IN = timedelta(seconds=15)  # the nudge falls due this long after the tick
SETTLED = ("sent", "delivered", "skipped", "failed")


def rebooked(
    world: Any,
    say: Callable[[str], None],
    wait_for: Callable[[str, Callable[[], Any], float], Any],
    clinic_id: str,
    consenting: list[str],
    missed: str,
) -> dict[str, Any]:
    """Run the step for `clinic_id`: `consenting` (two patients with marketing consent) get a Botox visit 90 days
    before, the second one a booking since; `missed` a no-show two days before. Returns the step's figures."""
    clinic = world.doc(f"clinics/{clinic_id}") or {}
    zone = ZoneInfo(str(clinic.get("timezone") or "America/New_York"))
    world.db.document(f"clinics/{clinic_id}").set(
        {"services": {"Botox": {"rebook_after_days": REBOOK_AFTER_DAYS}}, "no_show_message": True}, merge=True
    )
    # the visits after every seeded appointment (three weeks ahead at most), whose bookings are older
    now = (system_clock.now() + timedelta(days=VISIT_IN_DAYS + REBOOK_AFTER_DAYS)).replace(microsecond=0)
    set_local_clock(world.config.clock_file, now)
    local = now.astimezone(zone)
    # wall-clock arithmetic in the clinic's zone, as the planner's: the nudge falls due NUDGE_IN after now
    end = ((now + NUDGE_IN).astimezone(zone) - timedelta(days=REBOOK_AFTER_DAYS)).astimezone(UTC)
    nudged, rebooker = consenting[:2]
    keys = {
        "nudge": (REBOOK, _visit(world, clinic_id, nudged, end - timedelta(hours=1), "completed")),
        "rebooked": (REBOOK, _visit(world, clinic_id, rebooker, end - timedelta(hours=1, minutes=2), "completed")),
        "missed": (NO_SHOW, _visit(world, clinic_id, missed, (local - timedelta(days=2, hours=-1)), "no_show")),
    }
    _visit(world, clinic_id, rebooker, now + timedelta(days=5), "booked", created_at=now - timedelta(days=30))
    config = settings()
    fanout = Fanout(
        store=clients.store(),
        tasks=CloudTasksQueue(clients.tasks(), config),
        queues=Queues(sms=config.queue_sms, email=config.queue_email),
        clock=system_clock,
    )
    tick = run_tick(TickRequest(date=local.date(), clinic_id=clinic_id), fanout, now=now)
    say(
        f"{REBOOK_AFTER_DAYS} days after a Botox visit ({local:%a %d %b}): the clinic's services say Botox: rebook "
        f"after {REBOOK_AFTER_DAYS} days, and no_show_message is on; its tick for the day planned {tick.created} "
        "messages"
    )
    ledger = {
        name: message_key(kind, appointment_id, start, None) for name, (kind, (appointment_id, start)) in keys.items()
    }

    def settled() -> dict[str, dict[str, Any]] | None:
        docs = {name: world.doc(f"notifications/{key}") or {} for name, key in ledger.items()}
        return docs if all(doc.get("state") in SETTLED for doc in docs.values()) else None

    done = wait_for("the rebooking messages", settled, world.timeout)
    say(f"a Botox patient with marketing consent: rebooking nudge {done['nudge']['state']} (SMS, ends with STOP)")
    say(f"a Botox patient who booked again since: {done['rebooked']['state']} ({done['rebooked'].get('reason')})")
    say(f'a patient who missed a visit two days ago: "we missed you" {done["missed"]["state"]}')
    went = ("sent", "delivered")
    return {
        "rebook_nudges_sent": int(done["nudge"]["state"] in went),
        "rebook_skipped_rebooked": int(done["rebooked"].get("reason") == "rebooked"),
        "no_show_messages_sent": int(done["missed"]["state"] in went),
    }


def _visit(
    world: Any, clinic_id: str, patient_id: str, start: datetime, status: str, **fields: Any
) -> tuple[str, datetime]:
    appointment_id = f"demo-rebook-{uuid.uuid4().hex[:10]}"
    start = start.astimezone(UTC)
    world.db.document(f"appointments/{appointment_id}").set(
        {
            "clinic_id": clinic_id,
            "patient_id": patient_id,
            "provider_id": "demo-provider",
            "provider_name": "Dr. Demo",
            "service_name": "Botox",
            "requires_prep": False,
            "prep_instructions": "",
            "start": start,
            "end": start + timedelta(hours=1),
            "status": status,
            "price_cents": 42000,
            "created_at": start - timedelta(days=7),
            "updated_at": start,
            **fields,
        }
    )
    return appointment_id, start
