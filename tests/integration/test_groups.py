"""Group bookings (docs/groups.md) through the real local stack: the group and its seats written on the
Firestore emulator, appointment events published to Pub/Sub and planned by the staged appointment-events
function, the ticks' units run on the emulators, every message a named Cloud Task, delivered to the staged
task handler as Cloud Tasks does once the stack's clock stands at its send time (the emulator schedules a
task on the clock as it was when the task was created, so a task days ahead is posted here, by its ledger
doc, rather than waited for), and sent through the Twilio sandbox.

One timeline around the next New York spring-forward Sunday at 10:00 EDT: a bridal party of three (the
organizer holds a seat) and a couples' facial of two. Bride's party: the organizer gets her 72 h message,
every seat its 24 h and 2 h messages, except the bridesmaid who cancels after her 24 h message was planned
(skipped at send time, nothing after). The couple: the organizer cancels the whole group after its 24 h
messages were planned: both skipped, no 2 h message planned. Nobody's message names anyone else, each message
goes exactly once, a redelivered event changes nothing, and a seat of a group without members is acknowledged
with its code, never a 5xx. The report's group figures are then read from the emulator's ledger.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.cloud.firestore_v1.base_query import FieldFilter

from local.config import StackConfig
from local.processes import wait_until
from shared.contract.events import TickRequest
from shared.groups.figures import report_figures
from shared.messaging.appointment_tasks import AppointmentTask
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.emulator import set_local_clock
from shared.platform.settings import settings
from shared.reminders.coordinator import run_tick
from shared.reminders.fanout import Fanout
from shared.reminders.scheduler import Queues
from shared.reports.periods import period_of
from shared.tasks.queue import CloudTasksQueue
from tests.handler_support import post
from tests.integration.test_fanout import spring_forward_day
from tests.stack_logs import FunctionLogs, publish

pytestmark = pytest.mark.integration

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
WAIT = 60.0
ENDED = ("appointment event done", "appointment event rejected; acknowledged")
DST = spring_forward_day(system_clock.now().date() + timedelta(days=7))
START = datetime.combine(DST, time(10), tzinfo=NY).astimezone(UTC)  # Sunday 10:00 EDT


def ny(days: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DST + timedelta(days=days), time(hour, minute), tzinfo=NY).astimezone(UTC)


class Party:
    """One test's clinic (its own id and sender number), patients, groups and seats on the emulator."""

    def __init__(self, db: Any, stack: StackConfig) -> None:
        self.db, self.stack, self.run = db, stack, uuid.uuid4().hex[:8]
        self.clinic = f"clinic-groups-{self.run}"
        self.sender = f"+1646777{uuid.uuid4().int % 10_000:04d}"
        db.collection("clinics").document(self.clinic).set(
            {
                "name": "Lumen Skin",
                "timezone": "America/New_York",
                "phone": "+12125550100",
                "sms_from": self.sender,
                "email_from": "hello@lumen.example.com",
                "quiet_hours": {"start": "21:00", "end": "08:00"},
            }
        )
        self.names: dict[str, str] = {}  # patient id → first and last name
        self.phones: dict[str, str] = {}
        self.seats: dict[str, str] = {}  # patient id → appointment id

    def patient(self, first: str, last: str) -> str:
        patient_id = f"pat-{first.lower()}-{self.run}"
        phone = f"+1917{uuid.uuid4().int % 10_000_000:07d}"
        self.db.collection("patients").document(patient_id).set(
            {
                "clinic_id": self.clinic,
                "first_name": first,
                "last_name": last,
                "phone": phone,
                "preferred_channel": "sms",
            }
        )
        self.names[patient_id], self.phones[patient_id] = f"{first} {last}", phone
        return patient_id

    def group(self, name: str, organizer: str, members: list[str], *, seated: list[str] | None = None) -> str:
        group_id = f"grp-{name}-{self.run}"
        doc = {"clinic_id": self.clinic, "organizer_patient_id": organizer, "start": START, "status": "active"}
        self.db.collection("groups").document(group_id).set({**doc, "member_patient_ids": members})
        for patient_id in members if seated is None else seated:
            self.seats[patient_id] = f"appt-{patient_id}"
            self.db.collection("appointments").document(self.seats[patient_id]).set(
                {
                    "clinic_id": self.clinic,
                    "patient_id": patient_id,
                    "service_name": "Bridal glow facial",
                    "start": START,
                    "end": START + timedelta(hours=1),
                    "status": "booked",
                    "group_id": group_id,
                    "updated_at": system_clock.now(),
                }
            )
        return group_id

    def created(self, *patients: str) -> list[str]:
        """The booking platform announces the seats (one appointment.created each)."""
        payloads = [
            json.dumps({"event": "appointment.created", "appointment_id": self.seats[p]}).encode() for p in patients
        ]
        return publish(self.stack, "appointment-events", payloads)

    def tick(self, now: datetime) -> Any:
        config = settings()
        fanout = Fanout(
            store=clients.store(),
            tasks=CloudTasksQueue(clients.tasks(), config),
            queues=Queues(sms=config.queue_sms, email=config.queue_email),
            clock=system_clock,
        )
        return run_tick(TickRequest(clinic_id=self.clinic), fanout, now=now)

    def ledger(self) -> list[dict[str, Any]]:
        query = self.db.collection("notifications").where(filter=FieldFilter("clinic_id", "==", self.clinic))
        return [{**(snapshot.to_dict() or {}), "key": snapshot.id} for snapshot in query.stream()]

    def deliver_due(self, now: datetime) -> int:
        """Cloud Tasks at `now`: every scheduled message due by then is posted to the task handler (twice:
        at-least-once delivery), and must be answered 2xx."""
        due = [d for d in self.ledger() if d["state"] == "scheduled" and d["send_at"] <= now]
        for doc in due:
            task = AppointmentTask.from_ledger(doc["key"], doc)
            assert task is not None
            for _ in range(2):
                response = post(self.stack, task.to_json())
                assert response.status_code < 300, response.text
        return len(due)

    def group_ledger(self) -> dict[tuple[str, int], dict[str, Any]]:
        docs = [d for d in self.ledger() if d["kind"] == "group_reminder"]
        keyed = {(d["patient_id"], d["offset_hours"]): d for d in docs}
        assert len(keyed) == len(docs)  # one ledger entry per seat and offset
        return keyed

    def sms(self, sandbox: Any) -> list[dict[str, Any]]:
        return [m for m in sandbox.messages(channel="sms") if m["direction"] == "outbound" and m["from"] == self.sender]

    def wait_settled(self, *seat_offsets: tuple[str, int]) -> dict[tuple[str, int], dict[str, Any]]:
        """Wait until these group messages are settled (sent, delivered or skipped)."""

        def settled() -> bool:
            docs = self.group_ledger()
            return all(docs.get(k, {}).get("state") in ("sent", "delivered", "skipped") for k in seat_offsets)

        assert wait_until(settled, WAIT), {k: v["state"] for k, v in self.group_ledger().items()}
        return self.group_ledger()


@pytest.fixture
def clock(stack: StackConfig) -> Iterator[Callable[[datetime], None]]:
    """Moves the stack's clock; afterwards it is real again and the reminder queues hold none of this test's
    tasks (days ahead on the emulator's own schedule)."""
    path = stack.state_dir / "clock.json"
    yield lambda instant: set_local_clock(path, instant)
    set_local_clock(path, None)
    for queue in (settings().queue_sms, settings().queue_email):
        clients.tasks().purge_queue(name=stack.queue_path(queue))


def test_a_group_gets_the_right_messages_to_the_right_people_exactly_once(stack, firestore_client, sandbox, clock):
    party = Party(firestore_client, stack)
    bride, maid, sister = (
        party.patient("Ottilie", "Vance"),
        party.patient("Bronwyn", "Hale"),
        party.patient("Ines", "Rook"),
    )
    husband, wife = party.patient("Tobias", "Marr"), party.patient("Celeste", "Dunmore")
    party.group("bride", bride, [bride, maid, sister])
    couple = party.group("couple", husband, [husband, wife])
    empty = party.group("empty", party.patient("Quentin", "Lowe"), [], seated=[])
    loner = party.patient("Wilma", "Stray")
    party.seats[loner] = "appt-stray-" + party.run
    firestore_client.collection("appointments").document(party.seats[loner]).set(
        {
            "clinic_id": party.clinic,
            "patient_id": loner,
            "service_name": "Facial",
            "start": START,
            "end": START + timedelta(hours=1),
            "status": "booked",
            "group_id": empty,
        }
    )
    events = FunctionLogs(stack, "appointment-events")

    # Wednesday 19:00 EST: the seats are booked; the events plan the organizers' 72 h messages (Thursday).
    clock(ny(-4, 19))
    first = party.created(bride, maid, sister, husband, wife, loner)
    done = events.wait_for(lambda line: line.get("event_id") in first and line.get("message") in ENDED, count=6)
    rejected = [line for line in done if line.get("error_code")]
    assert [line["error_code"] for line in rejected] == ["group_without_members"]  # acknowledged, never a 5xx
    again = party.created(bride, maid)  # redelivered: plans nothing new
    events.wait_for(lambda line: line.get("event_id") in again and line.get("message") == "appointment event done", 2)
    assert set(party.group_ledger()) == {(bride, 72), (husband, 72)}

    planned = party.group_ledger()
    assert {k: d["send_at"] for k, d in planned.items()} == {(bride, 72): ny(-3, 9), (husband, 72): ny(-3, 9)}

    # Thursday 09:05 EST: the 72 h messages and the booking confirmations go out: the five seats', and the
    # confirmation of the seat whose group has no members (rejected for its group messages, not its own).
    clock(ny(-3, 9, 5))
    assert party.deliver_due(ny(-3, 9, 5)) == 2 + 5 + 1
    party.wait_settled((bride, 72), (husband, 72))

    # Friday evening's tick plans Saturday's 24 h messages; then a bridesmaid cancels, and the couple's
    # organizer cancels the whole group.
    assert party.tick(ny(-2, 20)).failed == 0
    due = {k: d["send_at"] for k, d in party.group_ledger().items() if k[1] == 24}
    assert due == {(p, 24): ny(-1, 9) for p in (bride, maid, sister, husband, wife)}  # 10:00 EDT - 24 h = 09:00 EST
    firestore_client.collection("appointments").document(party.seats[maid]).update({"status": "cancelled"})
    firestore_client.collection("groups").document(couple).update({"status": "cancelled"})

    clock(ny(-1, 9, 5))
    assert party.deliver_due(ny(-1, 9, 5)) == 5
    docs = party.wait_settled(*((p, 24) for p in (bride, maid, sister, husband, wife)))
    assert (docs[(maid, 24)]["state"], docs[(maid, 24)]["reason"]) == ("skipped", "cancelled")
    assert {docs[(p, 24)]["reason"] for p in (husband, wife)} == {"group_cancelled"}

    # Saturday evening's tick plans Sunday's "starting soon" for the seats still coming only.
    report = party.tick(ny(-1, 20))
    assert report.failed == 0 and report.problems["group_cancelled"] == 2
    due = {k: d["send_at"] for k, d in party.group_ledger().items() if k[1] == 2}
    assert due == {(bride, 2): ny(0, 8), (sister, 2): ny(0, 8)}  # 08:00 EDT, the end of the quiet hours
    clock(ny(0, 8, 5))
    assert party.deliver_due(ny(0, 8, 5)) == 2
    docs = party.wait_settled((bride, 2), (sister, 2))

    sent = {k for k, d in docs.items() if d["state"] in ("sent", "delivered")}
    assert sent == {(bride, 72), (bride, 24), (sister, 24), (bride, 2), (sister, 2), (husband, 72)}
    # The seat of the group without members: its own booking confirmation only, never a group message.
    assert [d["kind"] for d in party.ledger() if d["appointment_id"] == party.seats[loner]] == ["booking_confirmation"]
    # Each patient's texts: their own confirmation and group messages, exactly once each, naming nobody else.
    assert party.deliver_due(ny(0, 9)) == 0
    assert wait_until(lambda: len(party.sms(sandbox)) == 6 + 6, WAIT), len(party.sms(sandbox))
    messages = party.sms(sandbox)
    by_phone = {p: [m["body"] for m in messages if m["to"] == phone] for p, phone in party.phones.items()}
    expected = {bride: 4, maid: 1, sister: 3, husband: 2, wife: 1, loner: 1}
    assert {p: len(bodies) for p, bodies in by_phone.items() if bodies} == expected
    assert len({m["body"] for m in messages}) == len(messages)  # no message twice
    for patient_id, bodies in by_phone.items():
        first_name = party.names[patient_id].split()[0]
        strangers = [n for p, n in party.names.items() if p != patient_id]
        for body in bodies:
            assert body.startswith(f"Hi {first_name},")
            assert not [word for name in strangers for word in name.split() if word in body]
    assert sum("group's booking" in m["body"] for m in messages) == 2  # organizers only
    assert sum("starts soon" in m["body"] for m in messages) == 2

    # The report's section, from the emulator's ledger: the week of the spring-forward Sunday.
    figures = report_figures(clients.store(), party.clinic, period_of("weekly", DST, NY)).as_doc()
    assert figures == {
        "groups_messaged": 2,
        "seats_reminded": 3,
        "messages_sent": 6,
        "organizer_reminders": 2,
        "member_cancellations": 1,
        "groups_cancelled": 1,
    }
