"""Rebooking nudges and "we missed you" (docs/rebooking.md): the clinic's settings, when each is planned, and
each decided at send time on the fakes (skips, consent, the recipient's window, the STOP line)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ops.why import appointment_timeline, render
from shared.consent.caps import MarketingCaps
from shared.consent.consents import Consents
from shared.consent.evidence import SendRecords
from shared.contract.events import TickRequest
from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.appointment_tasks import AppointmentTask
from shared.messaging.keys import message_key
from shared.messaging.ledger import Planned
from shared.messaging.templates import fit_with_footer, gsm7_safe, render_sms, sms_segments
from shared.platform.errors import PermanentError
from shared.platform.store import Delete
from shared.rebooking.plan import no_show_days, plan_no_show, plan_rebook, rebook_days
from shared.rebooking.sending import RebookingMessages
from shared.rebooking.tasks import DECLARATIONS, NO_SHOW, REBOOK
from shared.reminders.coordinator import coordinate_tick
from shared.reminders.fanout import UNIT_BODIES, Fanout, UnitQueue, day_windows, run_unit
from shared.reminders.fanout_summary import FanoutSummary
from shared.reminders.planned_days import PlannedDays
from shared.reminders.scheduler import Queues
from shared.reminders.units import NO_SHOWS, REBOOKS, ClinicDayTask, Window
from shared.tasks.payload import decode, parse
from tests.builders import CLINIC, NOW, World, appointment_doc
from tests.campaign_support import ATTEMPT, QUEUE_NAMES, CapsAt, Scene
from tests.fakes import RecordingQueue

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
STOP_LINE = "Reply STOP to opt out."


def clinic(**fields: Any) -> Clinic:
    doc = {**CLINIC, "services": {"Botox": {"rebook_after_days": 90}, "HydraFacial": {}}, **fields}
    return Clinic.from_doc("clinic-t", doc)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY).astimezone(UTC)


def appointment(start: datetime, status: str = "completed", service: str = "Botox") -> Appointment:
    doc = appointment_doc("clinic-t", "pat-1", start, service_name=service, status=status)
    return Appointment.from_doc("appt-1", doc)


# ------------------------------------------------------------------------------------------ settings


def test_services_and_the_no_show_setting_are_read_and_a_bad_entry_is_noted_not_fatal():
    read = clinic(
        services={
            "Botox": {"rebook_after_days": 90},
            " dermal  filler ": {"rebook_after_days": 180},
            "Peel": {"rebook_after_days": 0},
            "Laser": "often",
            "HydraFacial": {},
        },
        no_show_message=True,
    )
    assert read.rebook_after_days("botox") == 90 and read.rebook_after_days("Dermal Filler") == 180
    assert read.rebook_after_days("Peel") is None and read.rebook_after_days("HydraFacial") is None
    assert read.rebook_days == (90, 180) and read.no_show_message
    assert {p.field for p in read.problems} == {"services.Peel.rebook_after_days", "services.Laser"}
    broken = clinic(services=["Botox"], no_show_message="yes")
    assert broken.services == () and not broken.no_show_message
    assert {p.field for p in broken.problems} == {"services", "no_show_message"}
    assert Clinic.from_doc("c", CLINIC).services == () and not Clinic.from_doc("c", CLINIC).no_show_message


# ---------------------------------------------------------------------------------------------- plan


def test_a_completed_botox_visit_is_nudged_90_days_after_its_end_at_the_same_local_time_across_dst():
    visit_day = date(2026, 1, 10)  # EST; 90 days on is April, EDT
    visit = appointment(ny(visit_day, 10))
    due = visit_day + timedelta(days=90)
    planned = plan_rebook(visit, clinic(), day=due, now=ny(due - timedelta(days=1), 5))
    assert planned is not None and planned.skipped is None
    assert planned.task.type == REBOOK and planned.task.send_at == ny(due, 11)  # the visit ended at 11:00
    assert planned.key == message_key(REBOOK, "appt-1", visit.start, None)
    # the day before (a missed tick's) is covered too; any other day is another tick's
    assert plan_rebook(visit, clinic(), day=due + timedelta(days=1), now=ny(due, 5)) is not None
    assert plan_rebook(visit, clinic(), day=due - timedelta(days=1), now=ny(due, 5)) is None
    assert plan_rebook(visit, clinic(), day=due + timedelta(days=2), now=ny(due, 5)) is None


@pytest.mark.parametrize(
    ("status", "service", "settings"),
    [
        ("no_show", "Botox", {}),
        ("cancelled", "Botox", {}),
        ("completed", "HydraFacial", {}),
        ("completed", "Botox", {"services": {}}),
    ],
)
def test_no_nudge_without_a_completed_visit_of_a_service_with_a_rebook_setting(status, service, settings):
    visit = appointment(ny(date(2026, 1, 10), 10), status, service)
    assert plan_rebook(visit, clinic(**settings), day=date(2026, 4, 10), now=ny(date(2026, 4, 9), 5)) is None


def test_a_nudge_more_than_a_day_overdue_is_recorded_past_and_one_in_quiet_hours_waits_for_the_morning():
    visit_day = date(2026, 3, 1)
    late = appointment(ny(visit_day, 20, 30))  # ends 21:30: inside the quiet hours 90 days on
    due = visit_day + timedelta(days=90)
    planned = plan_rebook(late, clinic(), day=due, now=ny(due, 5))
    assert planned is not None and planned.task.send_at == ny(due + timedelta(days=1), 8)
    overdue = plan_rebook(appointment(ny(visit_day, 9)), clinic(), day=due, now=ny(due + timedelta(days=2), 9))
    assert overdue is not None and overdue.skipped == "past"


def test_we_missed_you_goes_the_day_after_a_no_show_only_when_the_clinic_sends_them():
    missed = appointment(ny(date(2026, 5, 4), 15), "no_show")
    on = clinic(no_show_message=True)
    planned = plan_no_show(missed, on, now=ny(date(2026, 5, 5), 5))
    assert planned is not None and planned.task.type == NO_SHOW and planned.task.send_at == ny(date(2026, 5, 5), 15)
    caught_up = plan_no_show(missed, on, now=ny(date(2026, 5, 5), 18))  # the tick ran late: at once
    assert caught_up is not None and caught_up.task.send_at == ny(date(2026, 5, 5), 18)
    assert plan_no_show(missed, clinic(), now=ny(date(2026, 5, 5), 5)) is None
    assert plan_no_show(appointment(missed.start, "completed"), on, now=ny(date(2026, 5, 5), 5)) is None


def test_the_tick_reads_one_day_per_distinct_rebook_setting_and_the_no_shows_of_two_days_before():
    two = clinic(
        services={
            "Botox": {"rebook_after_days": 90},
            "Dysport": {"rebook_after_days": 90},
            "Filler": {"rebook_after_days": 180},
        }
    )
    day = date(2026, 7, 1)
    assert rebook_days(two, day, caught_up=False) == [day - timedelta(days=180), day - timedelta(days=90)]
    assert len(rebook_days(two, day, caught_up=True)) == 4
    assert no_show_days(day, caught_up=False) == [date(2026, 6, 29)]
    assert no_show_days(day, caught_up=True) == [date(2026, 6, 28), date(2026, 6, 29)]


def test_the_tick_reads_no_shows_only_for_a_clinic_that_sends_we_missed_you():
    day, now = date(2026, 7, 1), datetime(2026, 6, 30, 10, tzinfo=UTC)

    def kinds(settings: Clinic) -> set[str]:
        world = World()
        planned = PlannedDays(world.store, world.clock)
        return {w.kind for w in day_windows(settings, day, now, planned, FanoutSummary(trigger="test"))}

    assert NO_SHOWS not in kinds(clinic()) and REBOOKS in kinds(clinic())
    assert NO_SHOWS in kinds(clinic(no_show_message=True))


def test_a_shard_may_carry_rebook_windows():
    start = datetime(2026, 4, 1, tzinfo=UTC)
    body = {
        "clinic_id": "clinic-t",
        "date": "2026-07-01",
        "planned_at": NOW.isoformat(),
        "shard": 0,
        "shards": 2,
        "plan": "abc123",
        "windows": [Window(REBOOKS, start, start + timedelta(days=1)).to_json()],
    }
    assert ClinicDayTask.from_json(body, "fanout_clinic_day").windows[0].kind == REBOOKS


# ------------------------------------------------------------------------------------------ sending


class RebookScene(Scene):
    def service(self) -> RebookingMessages:
        ledger = self.ledger()
        return RebookingMessages(
            store=self.store,
            ledger=ledger,
            sender=self.sender(ledger),
            tasks=self.queue,
            queues=lambda queue: QUEUE_NAMES.get(queue, "reminders-sms"),
            clock=self.clock,
            consents=Consents(self.store, self.clock),
            caps=self.caps or MarketingCaps(SendRecords(self.store, self.clock)),
        )

    def visit(self, patient_id: str, start: datetime, status: str = "completed", **fields: Any) -> dict[str, Any]:
        return self.appointment(patient_id, start=start, status=status, service_name="Botox", **fields)

    def task(self, appointment: dict[str, Any], kind: str = REBOOK, **overrides: Any) -> AppointmentTask:
        values = {
            "type": kind,
            "appointment_id": appointment["id"],
            "clinic_id": appointment["clinic_id"],
            "patient_id": appointment["patient_id"],
            "dedup_key": message_key(kind, appointment["id"], appointment["start"], None),
            "send_at": self.clock.now(),
            "appointment_start": appointment["start"],
            **overrides,
        }
        return AppointmentTask(**values)

    def planned(self, appointment: dict[str, Any]) -> AppointmentTask:
        """The nudge as the tick leaves it: its ledger doc scheduled, its task about to run."""
        task = self.task(appointment)
        self.ledger().schedule([Planned(task.dedup_key, task.ledger_fields("sms"))])
        return task


@pytest.fixture
def scene() -> RebookScene:
    world = RebookScene()
    world.clinic(services={"Botox": {"rebook_after_days": 90}}, no_show_message=True)
    world.clock.instant = NOW + timedelta(hours=4)  # 11:00 in New York: inside the recipients' window
    return world


def test_a_consenting_patient_gets_one_nudge_with_the_stop_line_and_no_treatment_name(scene):
    patient = scene.consenting("p-ana", first_name="Ana")
    visit = scene.visit(patient, NOW - timedelta(days=90))
    task = scene.task(visit)
    outcome = scene.service().deliver(task, ATTEMPT)
    assert outcome.status.value == "sent"
    (sms,) = scene.sms.sent
    assert sms.body.endswith(STOP_LINE) and "Botox" not in sms.body and sms_segments(sms.body) <= 2
    entry = scene.entry(task.dedup_key)
    assert entry["state"] == "sent" and entry["purpose"] == "marketing" and entry["basis"] == "consent:ev-p-ana-granted"
    assert scene.service().deliver(task, ATTEMPT).status.value == "duplicate"  # redelivered: nothing more
    assert len(scene.sms.sent) == 1


@pytest.mark.parametrize(
    ("arrange", "reason"),
    [
        (lambda s, p, v: s.appointment(p, start=NOW + timedelta(days=3), status="booked"), "rebooked"),
        (
            lambda s, p, v: s.appointment(
                p, start=NOW - timedelta(days=100), status="completed", created_at=NOW - timedelta(days=2)
            ),
            "rebooked",
        ),
        (lambda s, p, v: s.clinic(services={}), "setting_removed"),
        (
            lambda s, p, v: s.store.seed(f"patients/{p}", {**s.store.doc(f"patients/{p}"), "sms_opt_out": True}),
            "sms_opt_out",
        ),
        (lambda s, p, v: s.store.seed(f"appointments/{v['id']}", {**v, "status": "cancelled"}), "status_cancelled"),
        (lambda s, p, v: s.store.commit([Delete(f"appointments/{v['id']}")]), "appointment_missing"),
    ],
)
def test_a_nudge_is_skipped_with_its_reason_at_send_time(scene, arrange, reason):
    patient = scene.consenting("p-ben")
    visit = scene.visit(patient, NOW - timedelta(days=90))
    arrange(scene, patient, visit)
    task = scene.task(visit)
    assert scene.service().deliver(task, ATTEMPT).reason == reason
    assert scene.entry(task.dedup_key)["state"] == "skipped" and not scene.sms.sent


def test_a_cancelled_later_booking_does_not_count_as_rebooked(scene):
    patient = scene.consenting("p-cy")
    visit = scene.visit(patient, NOW - timedelta(days=90))
    scene.appointment(patient, start=NOW + timedelta(days=3), status="cancelled")
    assert scene.service().deliver(scene.task(visit), ATTEMPT).status.value == "sent"


def test_without_marketing_consent_the_nudge_is_skipped(scene):
    patient = scene.patient("p-no-consent")
    visit = scene.visit(patient, NOW - timedelta(days=90))
    assert scene.service().deliver(scene.task(visit), ATTEMPT).reason == "no_marketing_consent"


def test_outside_the_recipients_window_the_nudge_moves_to_its_opening_and_the_ledger_with_it(scene):
    scene.clock.instant = NOW  # 07:00 in New York: the window opens at 08:00
    patient = scene.consenting("p-early")
    visit = scene.visit(patient, NOW - timedelta(days=90))
    task = scene.planned(visit)
    assert scene.service().deliver(task, ATTEMPT).reason == "moved"
    (moved,) = scene.queue.created
    opening = NOW + timedelta(hours=1)
    assert moved.schedule_time == opening and moved.payload["send_at"] == opening.isoformat()
    assert moved.payload["dedup_key"] == task.dedup_key and scene.entry(task.dedup_key).get("send_at") == opening
    assert not scene.sms.sent


def test_a_nudge_settled_meanwhile_is_not_moved(scene):
    scene.clock.instant = NOW  # before the window opens
    visit = scene.visit(scene.consenting("p-late"), NOW - timedelta(days=90))
    task = scene.task(visit)  # no scheduled ledger doc: nothing to move
    assert scene.service().deliver(task, ATTEMPT).reason == "not_scheduled" and not scene.queue.created


def test_at_the_daily_cap_the_nudge_moves_a_day(scene):
    patient = scene.consenting("p-capped")
    scene.caps = CapsAt({patient})
    visit = scene.visit(patient, NOW - timedelta(days=90))
    assert scene.service().deliver(scene.planned(visit), ATTEMPT).reason == "moved"
    (moved,) = scene.queue.created
    assert moved.schedule_time is not None and moved.schedule_time >= scene.clock.now() + timedelta(days=1)


def test_we_missed_you_is_transactional_and_goes_by_email_to_a_patient_without_a_phone(scene):
    patient = scene.patient("p-dee", phone=None)  # no marketing consent: not needed
    missed = scene.visit(patient, NOW - timedelta(days=1), "no_show")
    outcome = scene.service().deliver(scene.task(missed, NO_SHOW), ATTEMPT)
    assert outcome.status.value == "sent" and outcome.channel == "email"
    (email,) = scene.email.sent
    assert "missed you" in email.text and "STOP" not in email.text


def test_we_missed_you_is_skipped_once_the_patient_rebooked_or_the_clinic_stopped_them(scene):
    patient = scene.patient("p-eve")
    missed = scene.visit(patient, NOW - timedelta(days=1), "no_show")
    scene.appointment(patient, start=NOW + timedelta(days=5), status="booked")
    assert scene.service().deliver(scene.task(missed, NO_SHOW), ATTEMPT).reason == "rebooked"
    other = scene.patient("p-fay")
    missed_too = scene.visit(other, NOW - timedelta(days=1), "no_show")
    scene.clinic(services={"Botox": {"rebook_after_days": 90}}, no_show_message=False)
    assert scene.service().deliver(scene.task(missed_too, NO_SHOW), ATTEMPT).reason == "setting_removed"


def test_a_body_that_does_not_match_its_appointment_is_refused(scene):
    patient = scene.consenting("p-gil")
    visit = scene.visit(patient, NOW - timedelta(days=90))
    with pytest.raises(PermanentError) as refused:
        scene.service().deliver(scene.task(visit, dedup_key=message_key(REBOOK, "appt-x", NOW, None)), ATTEMPT)
    assert refused.value.code == "dedup_key_mismatch"
    with pytest.raises(PermanentError):
        scene.service().deliver(scene.task(visit, offset_hours=24), ATTEMPT)


def test_a_stuck_ledger_doc_gives_back_its_task():
    (rebook, no_show) = DECLARATIONS
    assert rebook.from_ledger is not None
    doc = {
        "kind": REBOOK,
        "appointment_id": "appt-1",
        "clinic_id": "clinic-t",
        "patient_id": "pat-1",
        "send_at": NOW,
        "appointment_start": NOW - timedelta(days=90),
    }
    key = message_key(REBOOK, "appt-1", NOW - timedelta(days=90), None)
    task = rebook.from_ledger(key, doc)
    assert task is not None and task.type == REBOOK and task.dedup_key == key
    assert rebook.from_ledger(key, {**doc, "kind": "appointment_reminder"}) is None


# --------------------------------------------------------------------------------------------- words


@pytest.mark.parametrize("locale", ["en", "es"])
@pytest.mark.parametrize("kind", [REBOOK, NO_SHOW])
def test_the_texts_are_gsm7_within_two_segments_and_never_name_the_treatment(kind, locale):
    long_clinic = clinic(
        name="The Very Long Named Aesthetic Medicine and Wellness Clinic of Upper Manhattan", locale=locale
    )
    patient = Patient.from_doc(
        "pat-1", {"clinic_id": "clinic-t", "first_name": "Maximiliana", "last_name": "Q", "phone": "+12125551234"}
    )
    visit = appointment(NOW, "no_show" if kind == NO_SHOW else "completed")
    footer = STOP_LINE if kind == REBOOK else None
    text = render_sms(kind, clinic=long_clinic, patient=patient, appointment=visit, footer=footer)
    assert text == gsm7_safe(text) and sms_segments(text) <= 2 and "Botox" not in text
    assert "CANCEL" not in text and (text.endswith(STOP_LINE) if footer else "STOP" not in text)


def test_a_footer_is_never_cut_the_body_is():
    text = fit_with_footer("word " * 200, STOP_LINE)
    assert text.endswith(f"... {STOP_LINE}") and sms_segments(text) == 2


def test_ops_why_names_a_nudge_and_says_why_it_was_skipped(scene):
    patient = scene.consenting("p-why")
    visit = scene.visit(patient, NOW - timedelta(days=90))
    scene.appointment(patient, start=NOW + timedelta(days=3), status="booked")
    task = scene.planned(visit)
    scene.service().deliver(task, ATTEMPT)
    text = render(appointment_timeline(scene.store, visit["id"]))
    assert "rebooking nudge" in text and "rebooked: the patient booked at the clinic again after the visit" in text


def test_a_large_clinic_day_split_into_shards_plans_each_nudge_and_we_missed_you_once():
    world = World()
    world.clinic(services={"Botox": {"rebook_after_days": 90}}, no_show_message=True)
    tomorrow = date(2026, 11, 26)  # New York's tomorrow at NOW
    visits = [
        world.appointment(world.patient(), start=ny(tomorrow - timedelta(days=90), 8) + timedelta(minutes=6 * n))
        for n in range(60)
    ]
    for visit in visits:
        world.store.seed(f"appointments/{visit['id']}", {**visit, "status": "completed", "service_name": "Botox"})
    missed = [
        world.appointment(world.patient(), start=ny(tomorrow - timedelta(days=2), 9, 7 * n), status="no_show")
        for n in range(5)
    ]
    tasks, units = RecordingQueue(), RecordingQueue()
    fanout = Fanout(
        store=world.store,
        tasks=tasks,
        queues=Queues("reminders-sms", "reminders-email"),
        clock=world.clock,
        units=UnitQueue(units, "reminders-fanout"),
        max_day_appointments=40,
        shard_appointments=25,
    )
    coordinate_tick(TickRequest(), fanout, now=NOW)
    done = 0
    while done < len(units.created):
        spec = units.created[done]
        done += 1
        run_unit(parse(decode(json.dumps(spec.payload).encode()), UNIT_BODIES), fanout)
    assert any(spec.payload.get("shards") for spec in units.created)  # the day was split
    kinds = [spec.payload["type"] for spec in tasks.created]
    assert kinds.count(REBOOK) == 60 and kinds.count(NO_SHOW) == 5 and len(tasks.created) == len(set(tasks.keys()))
    assert {spec.payload["appointment_id"] for spec in tasks.created} == {a["id"] for a in visits + missed}
