"""The fan-out on MemoryStore + RecordingQueue: one ledger doc and one named task per message, however
often a run repeats or crashes; every skip recorded with its reason; every document that breaks the
contract counted and logged by collection, id and field."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.contract.events import AppointmentEvent, EventRejected, TickRequest
from shared.messaging.appointment_tasks import CONFIRMATION, FOLLOWUP, REMINDER, AppointmentTask
from shared.messaging.keys import message_key
from shared.messaging.ledger import Ledger, Planned
from shared.platform.errors import RetryableError
from shared.platform.store import Create
from shared.reminders import scheduler as scheduler_module
from shared.reminders.coordinator import run_tick
from shared.reminders.fanout import Fanout, check_tick_date, handle_appointment_event, run_unit
from shared.reminders.planned_days import PlannedDays
from shared.reminders.scheduler import Queues
from shared.reminders.units import ClinicDayTask
from tests.builders import NOW, World
from tests.fakes import RecordingQueue

UTC = timezone.utc
TOMORROW = date(2026, 11, 26)  # New York's tomorrow at NOW (07:00 EST)
SOON = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # 10:00 EST tomorrow: both reminders this tick
LATER = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # the day after: its 24 h reminder only


class Setup:
    def __init__(self) -> None:
        self.world = World()
        self.store, self.clock = self.world.store, self.world.clock
        self.queue = RecordingQueue()
        self.fanout = Fanout(
            store=self.store, tasks=self.queue, queues=Queues("reminders-sms", "reminders-email"), clock=self.clock
        )

    def appointment(self, start: datetime = SOON, patient: dict[str, Any] | None = None, **fields: Any) -> str:
        return self.world.appointment(self.world.patient(**(patient or {})), start=start, **fields)["id"]

    def tick(self, now: datetime = NOW, **request: Any):
        return run_tick(TickRequest(**request), self.fanout, now=now)

    def ledger(self) -> dict[str, dict[str, Any]]:
        return self.store.docs("notifications")

    def keys(self, appointment_id: str, start: datetime = SOON, offsets: tuple[int, ...] = (24, 2)) -> set[str]:
        return {message_key(REMINDER, appointment_id, start, hours) for hours in offsets}


@pytest.fixture
def setup() -> Setup:
    return Setup()


def log_lines(capsys) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_a_first_run_creates_each_message_once_with_its_named_task(setup):
    soon, later = setup.appointment(SOON), setup.appointment(LATER)
    report = setup.tick()
    wanted = setup.keys(soon) | setup.keys(later, LATER, (24,))
    assert (report.created, report.failed, report.clinics, report.appointments) == (3, 0, 1, 2)
    assert set(setup.queue.keys()) == wanted == set(setup.ledger())
    for spec in setup.queue.created:
        entry = setup.ledger()[spec.business_key]
        assert entry["state"] == "scheduled" and entry["channel"] == "sms" and spec.queue == "reminders-sms"
        assert spec.schedule_time == entry["send_at"] and spec.payload["send_at"] == entry["send_at"].isoformat()
        assert set(spec.payload) <= {"type", "v", *AppointmentTask.field_names()}  # ids and instants only
        assert "Zelda" not in json.dumps(spec.payload) and "+1212" not in json.dumps(spec.payload)
    assert setup.store.doc(f"fanout_runs/clinic-t_{TOMORROW.isoformat()}")["created"] == 3


def test_a_rerun_creates_nothing(setup):
    setup.appointment(SOON)
    setup.tick()
    again = setup.tick()
    assert (again.created, again.already_present, again.recovered) == (0, 2, 0)
    assert len(setup.queue.created) == 2


def test_a_crashed_runs_scheduled_docs_get_their_tasks(setup):
    appointment = setup.appointment(SOON)
    keys = sorted(setup.keys(appointment))
    Ledger(setup.store, setup.clock).schedule([Planned(key, {"kind": REMINDER}) for key in keys])  # then it died
    report = setup.tick()
    assert (report.created, report.recovered, report.already_present) == (0, 2, 0)
    assert sorted(setup.queue.keys()) == keys


def test_failed_creations_are_counted_and_the_rerun_fills_exactly_the_gap(setup):
    appointment = setup.appointment(SOON)
    failing = sorted(setup.keys(appointment))[0]
    setup.queue.fail_keys.add(failing)
    report = setup.tick()
    assert (report.created, report.failed) == (1, 1) and failing in report.failures[0]
    with pytest.raises(RetryableError) as caught:
        report.raise_if_failed()
    assert caught.value.code == "fanout_incomplete"
    assert not PlannedDays(setup.store, setup.clock).completed("clinic-t", TOMORROW)  # not a finished day
    setup.queue.fail_keys.clear()
    again = setup.tick()
    assert (again.created, again.recovered, again.already_present, again.failed) == (0, 1, 1, 0)
    assert sorted(setup.queue.keys()) == sorted(setup.keys(appointment))
    assert PlannedDays(setup.store, setup.clock).completed("clinic-t", TOMORROW)


def test_a_ledger_commit_that_fails_is_counted_and_the_rerun_writes_it(setup):
    setup.appointment(SOON)
    setup.store.fail_next("commit")
    report = setup.tick()
    assert report.failed == 2 and "ledger commit: ConnectionError" in report.failures[0]
    assert setup.ledger() == {} and setup.queue.created == []
    assert setup.tick().created == 2


@pytest.mark.parametrize(
    ("patient", "reason"),
    [({"sms_opt_out": True, "email_opt_out": True}, "opted_out"), ({"phone": None, "email": None}, "no_contact")],
)
def test_an_unreachable_patient_gets_skipped_ledger_docs_in_the_chunks_commit_and_no_task(setup, patient, reason):
    reachable = setup.appointment(SOON)
    unreachable = setup.appointment(SOON, patient)
    commits: list[list[str]] = []
    setup.store.on_commit = lambda writes: commits.append([w.path for w in writes if isinstance(w, Create)])
    report = setup.tick()
    assert report.skipped[reason] == 2 and report.created == 2
    for key in setup.keys(unreachable):
        assert setup.ledger()[key]["state"] == "skipped" and setup.ledger()[key]["reason"] == reason
    assert set(setup.queue.keys()) == setup.keys(reachable)
    (chunk,) = commits  # one commit holds the sendable and the skipped docs alike
    assert {path.split("/")[1] for path in chunk} == setup.keys(reachable) | setup.keys(unreachable)


def test_an_email_only_patient_is_queued_on_the_email_queue(setup):
    setup.appointment(SOON, {"phone": None})
    setup.tick()
    assert {spec.queue for spec in setup.queue.created} == {"reminders-email"}
    assert {doc["channel"] for doc in setup.ledger().values()} == {"email"}


def test_missing_and_invalid_patients_are_counted_logged_by_id_and_field_and_still_queued(setup, capsys):
    missing = setup.world.appointment("pat-gone", start=SOON)["id"]
    invalid = setup.world.appointment(setup.world.patient("pat-bad", first_name=None), start=SOON)["id"]
    report = setup.tick()
    assert report.problems["patient_missing"] == 1 and report.problems["invalid_patient"] == 1
    assert set(setup.queue.keys()) == setup.keys(missing) | setup.keys(invalid)  # the handler records them
    lines = log_lines(capsys)
    assert any(line.get("patient_id") == "pat-gone" for line in lines)
    (bad,) = [line for line in lines if line.get("doc_id") == "pat-bad"]
    assert (bad["collection"], bad["field"], bad["error_code"]) == ("patients", "first_name", "invalid_document")


def test_documents_that_break_the_contract_are_counted_and_logged_never_silently_skipped(setup, capsys):
    setup.store.seed("clinics/clinic-bad", {"name": "No zone", "phone": "+12125550142"})
    bad_status = setup.appointment(SOON, status="teleported")
    string_start = setup.appointment(SOON)
    setup.store.seed(
        f"appointments/{string_start}",
        {**setup.store.doc(f"appointments/{string_start}"), "start": "2026-11-26T15:00:00Z"},
    )
    number_clinic = setup.appointment(SOON)
    setup.store.seed(
        f"appointments/{number_clinic}", {**setup.store.doc(f"appointments/{number_clinic}"), "clinic_id": 7}
    )
    report = setup.tick()
    assert report.problems["invalid_clinics"] == 1 and report.problems["invalid_appointments"] == 1
    assert report.problems["unreachable_appointment"] == 2  # the range query cannot see these two
    lines = {line.get("doc_id"): line for line in log_lines(capsys) if line.get("doc_id")}
    assert (lines["clinic-bad"]["collection"], lines["clinic-bad"]["field"]) == ("clinics", "timezone")
    assert (lines[bad_status]["collection"], lines[bad_status]["field"]) == ("appointments", "status")
    assert (lines[string_start]["collection"], lines[string_start]["field"]) == ("appointments", "start")
    assert (lines[number_clinic]["collection"], lines[number_clinic]["field"]) == ("appointments", "clinic_id")
    assert setup.queue.created == []


def test_a_tick_for_one_clinic_runs_that_clinic_only_and_an_unknown_one_is_rejected(setup):
    setup.world.clinic("clinic-other")
    setup.world.appointment(setup.world.patient(clinic_id="clinic-other"), start=SOON, clinic_id="clinic-other")
    setup.appointment(SOON)
    report = setup.tick(clinic_id="clinic-t", date=TOMORROW)
    assert report.clinics == 1 and report.created == 2
    assert {spec.payload["clinic_id"] for spec in setup.queue.created} == {"clinic-t"}
    with pytest.raises(EventRejected) as caught:
        setup.tick(clinic_id="clinic-nowhere")
    assert caught.value.code == "unknown_clinic"


@pytest.mark.parametrize("days", [26, -8])
def test_a_tick_date_out_of_range_is_rejected(days):
    with pytest.raises(EventRejected) as caught:
        check_tick_date(NOW.date() + timedelta(days=days), NOW)
    assert caught.value.code == "date_out_of_range"
    check_tick_date(NOW.date() + timedelta(days=25), NOW)
    check_tick_date(None, NOW)


def test_a_first_day_also_covers_what_the_missing_tick_would_have(setup):
    today = setup.appointment(NOW + timedelta(hours=6))  # 13:00 EST today: the missed tick's
    report = setup.tick()
    assert report.problems["caught_up_missed_tick"] == 1
    assert setup.keys(today, NOW + timedelta(hours=6)) <= set(setup.ledger())
    assert message_key(REMINDER, today, NOW + timedelta(hours=6), 2) in setup.queue.keys()


def test_after_a_completed_day_the_next_tick_does_not_catch_up(setup):
    PlannedDays(setup.store, setup.clock).record("clinic-t", TOMORROW - timedelta(days=1), {"created": 0})
    setup.appointment(NOW + timedelta(hours=6))
    report = setup.tick()
    assert "caught_up_missed_tick" not in report.problems and report.created == 0


def test_followups_of_completed_appointments_a_week_back(setup):
    completed = setup.appointment(SOON - timedelta(days=7), status="completed")
    setup.appointment(SOON - timedelta(days=7), status="no_show")
    setup.tick()
    assert setup.queue.keys() == [message_key(FOLLOWUP, completed, SOON - timedelta(days=7), None)]


def test_many_messages_are_written_in_chunks_each_within_firestores_limit(setup, monkeypatch):
    monkeypatch.setattr(scheduler_module, "CHUNK_SIZE", 7)
    for minutes in range(0, 600, 30):
        setup.appointment(SOON + timedelta(minutes=minutes))
    sizes: list[int] = []
    setup.store.on_commit = lambda writes: sizes.append(len(writes))
    report = setup.tick()
    assert report.created == 40 and len(set(setup.queue.keys())) == 40
    assert len(sizes) == 6 and max(sizes) <= 7


def test_a_clinic_day_unit_records_its_day_with_its_counts(setup):
    setup.appointment(SOON)
    report = run_unit(ClinicDayTask("clinic-t", TOMORROW, NOW), setup.fanout)
    run = setup.store.doc(f"fanout_runs/clinic-t_{TOMORROW.isoformat()}")
    assert report.created == 2 and run["created"] == 2 and run["completed_at"] == NOW and run["date"] == "2026-11-26"


# ----------------------------------------------------------------------------- appointment events


def event(kind: str, appointment_id: str) -> AppointmentEvent:
    return AppointmentEvent(f"appointment.{kind}", appointment_id)


def test_a_new_booking_gets_its_confirmation_and_the_reminders_a_tick_would_have_made(setup):
    appointment = setup.appointment(SOON)
    report = handle_appointment_event(event("created", appointment), setup.fanout, now=NOW)
    assert report.created == 3 and report.appointments == 1
    kinds = sorted(spec.payload["type"] for spec in setup.queue.created)
    assert kinds == [REMINDER, REMINDER, CONFIRMATION]
    assert handle_appointment_event(event("created", appointment), setup.fanout, now=NOW).created == 0


def test_a_rescheduled_appointment_gets_reminders_for_its_new_start_and_no_confirmation(setup):
    appointment = setup.appointment(SOON)
    handle_appointment_event(event("rescheduled", appointment), setup.fanout, now=NOW)
    assert set(setup.queue.keys()) == setup.keys(appointment)


def test_a_cancellation_is_left_to_the_waitlist_and_an_inactive_appointment_gets_nothing(setup):
    appointment = setup.appointment(SOON, status="cancelled")
    report = handle_appointment_event(event("cancelled", appointment), setup.fanout, now=NOW)
    assert report.skipped["cancellation_handled_by_waitlist"] == 1
    inactive = handle_appointment_event(event("created", appointment), setup.fanout, now=NOW)
    assert inactive.skipped["status_cancelled"] == 1 and setup.queue.created == [] and setup.ledger() == {}


@pytest.mark.parametrize(("appointment_id", "code"), [("appt-gone", "appointment_missing"), (None, "unknown_clinic")])
def test_an_event_naming_nothing_is_rejected(setup, appointment_id, code):
    if appointment_id is None:
        appointment_id = setup.world.appointment(setup.world.patient(), start=SOON, clinic_id="clinic-gone")["id"]
    with pytest.raises(EventRejected) as caught:
        handle_appointment_event(event("created", appointment_id), setup.fanout, now=NOW)
    assert caught.value.code == code


def test_a_clinic_with_a_malformed_manager_address_still_gets_its_reminders(setup):
    setup.world.clinic(manager_emails=["boss@glow", "ok@glow.example.com"], inventory_emails="stock")
    soon = setup.appointment(SOON)
    report = setup.tick()
    assert report.problems.get("invalid_clinics", 0) == 0
    assert set(setup.queue.keys()) == setup.keys(soon)
