"""Group bookings (docs/groups.md) on the fakes: the group document's contract, which seat gets which
offset (organizer 72 h, every seat 24 h and 2 h) across DST and quiet hours, the send-time re-read
(cancelled seats, cancelled groups, a changed organizer), names that never cross between members (the
cal.com seat bugs), events and ticks that classify a broken group, and the report's figures."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from shared.contract.clinic_time import in_quiet_hours
from shared.contract.events import AppointmentEvent, EventRejected, TickRequest
from shared.contract.models import Appointment, Clinic, Patient
from shared.groups.figures import report_figures
from shared.groups.model import WORDING, Group, parse_group, read_groups
from shared.messaging.appointment_tasks import GROUP, REMINDER, AppointmentTask
from shared.messaging.keys import message_key
from shared.messaging.templates import gsm7_safe, render, render_sms, sms_segments
from shared.platform.errors import PermanentError
from shared.platform.store import Delete
from shared.reminders.coordinator import run_tick
from shared.reminders.fanout import Fanout, handle_appointment_event
from shared.reminders.plan import plan_reminders, reminder_window
from shared.reminders.scheduler import Queues
from shared.reports.periods import period_of
from tests.builders import CLINIC, CLINIC_ID, FIRST_TRY, NOW, World, appointment_task
from tests.fakes import RecordingQueue

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
FAR = datetime(2100, 1, 1, tzinfo=UTC)
DST = date(2027, 3, 14)  # New York springs forward at 02:00


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=NY).astimezone(UTC)


def group_doc(organizer: str, members: list[str], start: Any, **fields: Any) -> dict[str, Any]:
    return {
        "clinic_id": CLINIC_ID,
        "organizer_patient_id": organizer,
        "member_patient_ids": members,
        "start": start,
        "status": "active",
        **fields,
    }


def seat(patient_id: str, start: datetime, group_id: str | None = "grp-1", **fields: Any) -> Appointment:
    return Appointment.from_doc(
        f"appt-{patient_id}",
        {
            "clinic_id": CLINIC_ID,
            "patient_id": patient_id,
            "service_name": "HydraFacial",
            "start": start,
            "end": start + timedelta(hours=1),
            "status": "booked",
            "group_id": group_id,
            **fields,
        },
    )


CLINIC_NY = Clinic.from_doc(CLINIC_ID, CLINIC)


def plan(appointment: Appointment, group: Any, now: datetime) -> dict[int | None, datetime]:
    planned = plan_reminders(appointment, CLINIC_NY, now=now, horizon=FAR, group=group)
    assert all(m.skipped is None for m in planned)
    assert all(m.task.type == GROUP and m.task.group_id == appointment.group_id for m in planned)
    return {m.task.offset_hours: m.task.send_at for m in planned}


# ------------------------------------------------------------------------------------- the contract


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (None, "group_missing"),
        (group_doc("p1", [], NOW), "group_without_members"),
        ({**group_doc("p1", ["p1"], NOW), "member_patient_ids": None}, "group_without_members"),
        (group_doc("p1", ["p1", "a/b"], NOW), "group_without_members"),
        (group_doc("p9", ["p1", "p2"], NOW), "organizer_not_member"),
        (group_doc("p1", ["p1"], NOW, status="postponed"), "group_invalid"),
        (group_doc("p1", ["p1"], "tomorrow"), "group_invalid"),
        ("not a map", "group_invalid"),
    ],
)
def test_a_group_document_that_breaks_the_contract_reads_as_its_code(data, code):
    assert parse_group("grp-1", data) == code


def test_a_valid_group_gives_the_organizer_three_offsets_and_each_member_two():
    group = parse_group("grp-1", group_doc("p1", ["p1", "p2", "p2"], NOW))
    assert isinstance(group, Group) and group.member_patient_ids == ("p1", "p2")
    assert (group.offsets_for("p1"), group.offsets_for("p2"), group.offsets_for("p3")) == ((72, 24, 2), (24, 2), ())
    cancelled = parse_group("grp-1", group_doc("p1", ["p1", "p2"], NOW, status="cancelled"))
    assert isinstance(cancelled, Group) and cancelled.offsets_for("p1") == ()


# ------------------------------------------------------------------------------------------ planning


def test_the_organizer_is_reminded_72_hours_before_and_every_seat_24_and_2_across_the_dst_change():
    start = ny(DST, 10)  # Sunday 10:00 EDT: the hour lost at 02:00 counts, as for reminders
    group = parse_group("grp-1", group_doc("p1", ["p1", "p2"], start))
    now = start - timedelta(days=5)
    assert plan(seat("p1", start), group, now) == {
        72: ny(DST - timedelta(days=3), 9),  # Thursday 09:00 EST: 72 real hours
        24: ny(DST - timedelta(days=1), 9),  # Saturday 09:00 EST
        2: ny(DST, 8),  # 08:00 EDT
    }
    assert plan(seat("p2", start), group, now) == {24: ny(DST - timedelta(days=1), 9), 2: ny(DST, 8)}


def test_group_messages_move_out_of_quiet_hours_like_reminders():
    start = ny(DST + timedelta(days=3), 8)  # 08:00: the 2 h message (06:00) would fall in quiet hours
    group = parse_group("grp-1", group_doc("p1", ["p1"], start))
    times = plan(seat("p1", start), group, start - timedelta(days=5))
    assert times[2] == ny(DST + timedelta(days=2), 20, 45)  # 08:00 is too late: the evening before
    assert not any(in_quiet_hours(at, NY, CLINIC_NY.quiet_hours) for at in times.values())


@pytest.mark.parametrize("quiet", [("21:00", "08:00"), ("12:00", "11:30")])
def test_a_ticks_window_reaches_the_organizers_72_hour_lead_and_no_further(quiet):
    clinic = Clinic.from_doc(CLINIC_ID, {**CLINIC, "quiet_hours": {"start": quiet[0], "end": quiet[1]}})
    _, end, horizon = reminder_window(clinic, DST)
    group = parse_group("grp-1", group_doc("p1", ["p1"], end))
    for minutes in range(0, 24 * 60, 15):
        late = seat("p1", end + timedelta(minutes=minutes))
        assert plan_reminders(late, clinic, now=horizon - timedelta(days=4), horizon=horizon, group=group) == []
    last = seat("p1", end - timedelta(minutes=1))
    planned = plan_reminders(last, clinic, now=horizon - timedelta(days=4), horizon=horizon, group=group)
    assert [m.task.offset_hours for m in planned] == [72]  # due just before the horizon, planned by this tick


def test_each_seat_and_offset_has_its_own_ledger_key_and_a_payload_of_ids_only():
    start = ny(DST + timedelta(days=3), 11)
    group = parse_group("grp-1", group_doc("p1", ["p1", "p2", "p3"], start))
    planned = [
        m
        for p in ("p1", "p2", "p3")
        for m in plan_reminders(seat(p, start), CLINIC_NY, now=start - timedelta(days=5), horizon=FAR, group=group)
    ]
    assert len(planned) == len({m.key for m in planned}) == 3 + 2 + 2
    assert {m.key for m in planned} == {
        message_key(GROUP, f"appt-{p}", start, h)
        for p, hs in (("p1", (72, 24, 2)), ("p2", (24, 2)), ("p3", (24, 2)))
        for h in hs
    }
    assert set(planned[0].task.to_json()) == {
        "type", "v", "appointment_id", "clinic_id", "patient_id", "dedup_key", "send_at", "appointment_start",
        "offset_hours", "group_id",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("group", "appointment_fields"),
    [
        (None, {}),  # the group document is missing
        ("group_without_members", {}),
        (group_doc("p1", ["p1", "p2"], NOW, status="cancelled"), {}),
        (group_doc("p1", ["p1"], NOW), {}),  # p2 is not a member
        (group_doc("p1", ["p1", "p2"], NOW, clinic_id="clinic-other"), {}),
        (group_doc("p1", ["p1", "p2"], NOW), {"status": "cancelled"}),  # the member cancelled
    ],
)
def test_a_seat_whose_group_cannot_be_used_or_who_cancelled_gets_no_group_message(group, appointment_fields):
    start = ny(DST + timedelta(days=3), 11)
    read = parse_group("grp-1", group) if isinstance(group, dict) else group
    planned = plan_reminders(
        seat("p2", start, **appointment_fields), CLINIC_NY, now=start - timedelta(days=5), horizon=FAR, group=read
    )
    assert planned == []


def test_an_appointment_outside_any_group_keeps_the_clinics_reminders():
    start = ny(DST + timedelta(days=3), 11)
    plain = seat("p1", start, group_id=None)
    assert {(m.task.type, m.task.offset_hours) for m in plan_reminders(plain, CLINIC_NY, now=NOW, horizon=FAR)} == {
        (REMINDER, 24),
        (REMINDER, 2),
    }


def test_group_id_belongs_to_group_messages_only():
    body = appointment_task({"id": "a1", "clinic_id": "c", "patient_id": "p", "start": NOW}, send_at=NOW).to_json()
    with pytest.raises(PermanentError):
        AppointmentTask.from_json({**body, "group_id": "grp-1"}, REMINDER)
    with pytest.raises(PermanentError):
        AppointmentTask.from_json(body, GROUP)


@pytest.mark.parametrize("offset", [72, 24, 2])
@pytest.mark.parametrize("locale", ["en", "es"])
def test_each_group_wording_is_gsm7_two_segments_and_names_no_treatment(offset, locale):
    clinic = Clinic.from_doc(CLINIC_ID, {**CLINIC, "name": "Lumen Skin & Laser Aesthetics of Upper Manhattan"})
    patient = Patient.from_doc("p1", {"clinic_id": CLINIC_ID, "first_name": "Maximiliana", "locale": locale})
    appointment = seat("p1", ny(DST, 10))
    sms = render_sms(WORDING[offset], clinic=clinic, patient=patient, appointment=appointment,
                     send_at=appointment.start - timedelta(hours=offset))  # fmt: skip
    assert gsm7_safe(sms) == sms and sms_segments(sms) <= 2 and not sms.endswith("...")
    assert "STOP" not in sms.upper() and "CANCEL" not in sms.upper() and "HydraFacial" not in sms
    assert sms.startswith("Hola Maximiliana," if locale == "es" else "Hi Maximiliana,")
    email = render(WORDING[offset], clinic=clinic, patient=patient, appointment=appointment)
    assert "Maximiliana" in email.text and "<p>" in email.html


# ------------------------------------------------------------------------------------ at send time


class Party:
    """A World with a group of three (the organizer holds a seat), each with their own name and number."""

    NAMES = ("Ottilie", "Bronwyn", "Ignatius")

    def __init__(self, status: str = "active") -> None:
        self.world = World()
        self.start = NOW + timedelta(days=4, hours=3)  # Sunday 10:00 EST
        self.patients = [
            self.world.patient(first_name=name, phone=f"+1212555{1000 + i:04d}") for i, name in enumerate(self.NAMES)
        ]
        self.seats = [self.world.appointment(p, start=self.start, group_id="grp-1") for p in self.patients]
        self.world.store.seed("groups/grp-1", group_doc(self.patients[0], self.patients, self.start, status=status))

    def task(self, index: int, offset: int) -> AppointmentTask:
        appointment = self.seats[index]
        return AppointmentTask(
            type=GROUP,
            appointment_id=appointment["id"],
            clinic_id=CLINIC_ID,
            patient_id=appointment["patient_id"],
            dedup_key=message_key(GROUP, appointment["id"], appointment["start"], offset),
            send_at=self.world.clock.now(),
            appointment_start=appointment["start"],
            offset_hours=offset,
            group_id="grp-1",
        )

    def change_seat(self, index: int, **fields: Any) -> None:
        """The booking platform updates one seat's appointment."""
        doc = {k: v for k, v in self.seats[index].items() if k != "id"}
        self.world.store.seed(f"appointments/{self.seats[index]['id']}", {**doc, **fields})

    def deliver(self, index: int, offset: int) -> Any:
        return self.world.messages().deliver(self.task(index, offset), FIRST_TRY)


def test_each_member_reads_only_their_own_name_in_every_message():
    party = Party()
    for index, offsets in enumerate(((72, 24, 2), (24, 2), (24, 2))):
        for offset in offsets:
            assert party.deliver(index, offset).status == "sent"
    sent = party.world.sms.sent
    assert len(sent) == 7
    for index, name in enumerate(Party.NAMES):
        mine = [m for m in sent if m.to == f"+1212555{1000 + index:04d}"]
        assert len(mine) == (3 if index == 0 else 2)
        others = set(Party.NAMES) - {name}
        assert all(name in m.body and not any(o in m.body for o in others) for m in mine)
        assert all("HydraFacial" not in m.body for m in mine)
    organizer_72 = next(m.body for m in sent if "group's booking" in m.body)
    assert organizer_72.startswith("Hi Ottilie,")
    assert sum("starts soon" in m.body for m in sent) == 3


def test_a_member_who_cancelled_is_skipped_and_the_others_still_go():
    party = Party()
    party.change_seat(1, status="cancelled")
    assert party.deliver(1, 24).reason == "cancelled"
    assert party.deliver(2, 24).status == "sent" and party.deliver(0, 72).status == "sent"
    assert [m.to for m in party.world.sms.sent] == ["+12125551002", "+12125551000"]


def test_a_cancelled_group_skips_every_seats_messages_as_group_cancelled():
    party = Party(status="cancelled")
    outcomes = [party.deliver(0, 72), party.deliver(0, 2), party.deliver(1, 24), party.deliver(2, 2)]
    assert {(o.status, o.reason) for o in outcomes} == {("skipped", "group_cancelled")}
    assert party.world.sms.sent == []


@pytest.mark.parametrize(
    ("change", "index", "offset", "reason"),
    [
        ("missing", 1, 24, "group_missing"),
        ("organizer", 0, 72, "not_organizer"),  # the organizer changed since planning: not theirs any more
        ("left", 1, 24, "left_group"),
        ("no_members", 1, 24, "group_without_members"),
    ],
)
def test_a_group_changed_since_planning_skips_with_its_reason(change, index, offset, reason):
    party = Party()
    store = party.world.store
    if change == "missing":
        store.commit([Delete("groups/grp-1")])
    elif change == "organizer":
        store.seed("groups/grp-1", group_doc(party.patients[1], party.patients, party.start))
    elif change == "left":
        party.change_seat(1, group_id="grp-2")
    else:
        store.seed("groups/grp-1", group_doc(party.patients[0], [], party.start))
    outcome = party.deliver(index, offset)
    assert (outcome.status, outcome.reason) == ("skipped", reason)
    assert party.world.entry(party.task(index, offset).dedup_key)["reason"] == reason


def test_an_offset_no_group_rule_allows_is_refused():
    party = Party()
    with pytest.raises(PermanentError) as refused:
        party.deliver(1, 48)
    assert refused.value.code == "payload_mismatch"


# ----------------------------------------------------------------------------- events and the tick


class Planner:
    def __init__(self, party: Party) -> None:
        self.party, self.queue = party, RecordingQueue()
        world = party.world
        self.fanout = Fanout(
            store=world.store, tasks=self.queue, queues=Queues("reminders-sms", "reminders-email"), clock=world.clock
        )

    def event(self, index: int, now: datetime) -> Any:
        event = AppointmentEvent("appointment.created", self.party.seats[index]["id"])
        return handle_appointment_event(event, self.fanout, now=now)

    def group_tasks(self) -> list[tuple[str, int]]:
        return sorted(
            (s.payload["patient_id"], s.payload["offset_hours"])
            for s in self.queue.created
            if s.payload["type"] == GROUP
        )


def test_events_plan_the_72_hour_message_and_a_redelivered_event_changes_nothing():
    party = Party()
    planner = Planner(party)
    now = party.start - timedelta(days=3, hours=20)  # the 72 h message sends before the end of local tomorrow
    for index in range(3):
        planner.event(index, now)
    assert planner.group_tasks() == [(party.patients[0], 72)]
    tasks = len(planner.queue.created)
    again = planner.event(0, now)
    assert again.created == 0 and len(planner.queue.created) == tasks and len(planner.group_tasks()) == 1


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        (None, "group_missing"),
        ("no_members", "group_without_members"),
        ("not_member", "organizer_not_member"),
    ],
)
def test_an_event_for_a_seat_of_a_broken_group_is_rejected_with_a_code(doc, code):
    party = Party()
    store = party.world.store
    if doc is None:
        store.commit([Delete("groups/grp-1")])
    elif doc == "no_members":
        store.seed("groups/grp-1", group_doc(party.patients[0], [], party.start))
    else:
        store.seed("groups/grp-1", group_doc("pat-stranger", party.patients, party.start))
    planner = Planner(party)
    with pytest.raises(EventRejected) as rejected:
        planner.event(1, party.start - timedelta(days=1))
    assert rejected.value.code == code
    # the seat's booking confirmation still goes (only this event plans it); no group message does
    kinds = [spec.payload["type"] for spec in planner.queue.created]
    assert kinds == ["booking_confirmation"]


def test_an_event_for_a_seat_of_a_cancelled_group_plans_nothing():
    party = Party(status="cancelled")
    planner = Planner(party)
    report = planner.event(0, party.start - timedelta(days=1))
    assert report.skipped["group_cancelled"] == 1 and planner.queue.created == []


def test_the_ticks_plan_every_seat_once_and_count_a_broken_group_as_a_problem():
    party = Party()
    world = party.world
    stray = world.appointment(world.patient(first_name="Stray"), start=party.start, group_id="grp-nowhere")
    planner = Planner(party)
    first = run_tick(TickRequest(), planner.fanout, now=party.start - timedelta(days=3, hours=14))
    assert planner.group_tasks() == [(party.patients[0], 72)]
    second = run_tick(TickRequest(), planner.fanout, now=party.start - timedelta(days=1, hours=14))
    assert planner.group_tasks() == sorted([(party.patients[0], 72), *((p, 24) for p in party.patients)])
    assert first.problems["group_missing"] == second.problems["group_missing"] == 1
    assert stray["id"] not in {s.payload["appointment_id"] for s in planner.queue.created}
    again = run_tick(TickRequest(), planner.fanout, now=party.start - timedelta(days=1, hours=14))
    assert again.created == 0 and len(planner.group_tasks()) == 4


def test_read_groups_reads_every_group_in_one_batch():
    party = Party()
    party.world.store.round_trips = 0
    found = read_groups(party.world.store, ["grp-1", "grp-1", "grp-nowhere", "bad/id"])
    assert party.world.store.round_trips == 1
    assert isinstance(found["grp-1"], Group) and found["grp-nowhere"] == "group_missing" and "bad/id" not in found


# ------------------------------------------------------------------------------------- the report


def test_the_reports_figures_count_groups_seats_and_cancellations():
    party = Party()
    party.deliver(0, 72)
    party.deliver(0, 24)
    party.deliver(2, 24)
    party.change_seat(1, status="cancelled")
    party.deliver(1, 24)
    party.world.store.seed(
        "groups/grp-1", group_doc(party.patients[0], party.patients, party.start, status="cancelled")
    )
    party.deliver(0, 2)
    local_day = NOW.astimezone(NY).date()
    figures = report_figures(party.world.store, CLINIC_ID, period_of("weekly", local_day, NY)).as_doc()
    assert figures == {
        "groups_messaged": 1,
        "seats_reminded": 2,
        "messages_sent": 3,
        "organizer_reminders": 1,
        "member_cancellations": 1,
        "groups_cancelled": 1,
    }
    other = report_figures(party.world.store, "clinic-other", period_of("weekly", local_day, NY)).as_doc()
    assert set(other.values()) == {0}
