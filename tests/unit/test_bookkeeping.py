"""The small owners: a patient's SMS opt-out, the fan-out's planned days and its run summary, and an event's age."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from shared.contract.events import Envelope
from shared.contract.freshness import too_old
from shared.messaging.opt_outs import OptOuts
from shared.platform.errors import RetryableError
from shared.platform.run_summary import MAX_LISTED
from shared.reminders.fanout_summary import FanoutSummary
from shared.reminders.planned_days import RETENTION, PlannedDays
from tests.builders import NOW
from tests.fakes import FixedClock, MemoryStore

DAY = date(2026, 11, 26)


def test_an_opt_out_changes_only_the_opt_out_fields_of_an_existing_patient():
    store = MemoryStore()
    store.seed("patients/p1", {"first_name": "Zelda", "sms_opt_out": False})
    opt_outs = OptOuts(store, FixedClock(NOW))
    assert opt_outs.set_sms_opt_out("p1", True, source="twilio_21610")
    assert store.doc("patients/p1") == {
        "first_name": "Zelda",
        "sms_opt_out": True,
        "sms_opt_out_source": "twilio_21610",
        "sms_opt_out_at": NOW,
    }
    assert opt_outs.set_sms_opt_out("p1", False, source="inbound_start")
    assert store.stored("patients/p1")["sms_opt_out"] is False


def test_an_opt_out_for_a_patient_who_does_not_exist_creates_nothing():
    store = MemoryStore()
    assert not OptOuts(store, FixedClock(NOW)).set_sms_opt_out("ghost", True, source="twilio_21610")
    assert store.docs("patients") == {}


def test_a_run_is_recorded_with_its_counts_and_read_back():
    store = MemoryStore()
    runs = PlannedDays(store, FixedClock(NOW))
    assert not runs.completed("clinic-t", DAY)
    runs.record("clinic-t", DAY, {"trigger": "clinic_day", "created": 3, "skipped": {"past": 1}, "failed": 0})
    assert runs.completed("clinic-t", DAY) and not runs.completed("clinic-t", DAY + timedelta(days=1))
    assert store.doc("fanout_runs/clinic-t_2026-11-26") == {
        "clinic_id": "clinic-t",
        "date": "2026-11-26",
        "completed_at": NOW,
        "expire_at": NOW + RETENTION,
        "created": 3,
        "failed": 0,
    }
    runs.record("clinic-t", DAY, {"created": 0})  # a re-run overwrites with its own figures
    assert store.stored("fanout_runs/clinic-t_2026-11-26")["created"] == 0


def test_reports_merge_counts_and_keep_a_bounded_list_of_failures():
    total = FanoutSummary(trigger="tick")
    for index in range(4):
        part = FanoutSummary(trigger="clinic_day", clinics=1, appointments=2, created=3, recovered=1)
        part.skipped["past"] += 1
        part.problems["invalid_patient"] += index
        part.fail(f"task k{index}: TimeoutError " + "x" * 500, count=2)
        total.merge(part)
    summary = total.summary()
    assert (summary["clinics"], summary["appointments"], summary["created"], summary["recovered"]) == (4, 8, 12, 4)
    assert summary["skipped"] == {"past": 4} and summary["problems"] == {"invalid_patient": 6}
    assert summary["failed"] == 8 and len(summary["failures"]) == 4 and all(len(f) <= 200 for f in summary["failures"])
    for index in range(10):
        total.fail(f"more {index}")
    assert len(total.failures) == MAX_LISTED and total.failed == 18
    with pytest.raises(RetryableError) as caught:
        total.raise_if_failed()
    assert caught.value.code == "fanout_incomplete" and "18" in str(caught.value)
    FanoutSummary(trigger="tick").raise_if_failed()  # nothing failed: nothing raised


def test_an_event_older_than_allowed_is_too_old_and_one_without_a_time_never_is():
    fresh = Envelope("e1", NOW - timedelta(minutes=5), b"")
    stale = Envelope("e2", NOW - timedelta(hours=7), b"")
    assert too_old(fresh, NOW, 6 * 3600) is None
    assert too_old(stale, NOW, 6 * 3600) == timedelta(hours=7)
    assert too_old(Envelope("e3", None, b""), NOW, 60) is None
    assert too_old(Envelope("e4", NOW + timedelta(hours=1), b""), NOW, 60) is None  # from the future: run it
