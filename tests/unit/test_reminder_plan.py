"""Reminder planning: send times (offsets, prep, follow-ups, confirmations) across DST and quiet hours,
what each tick owns, dedup keys, and task payloads that carry no PHI. Pure: no Firestore."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from shared.contract.clinic_time import in_quiet_hours, local_day_range
from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.appointment_tasks import CONFIRMATION, FOLLOWUP, PREP, REMINDER
from shared.messaging.channels import first_channel
from shared.messaging.keys import message_key
from shared.reminders.plan import (
    PlannedMessage,
    catch_up_window,
    event_horizon,
    plan_confirmation,
    plan_followup,
    plan_reminders,
    reminder_window,
)
from tests.builders import REMINDER_BODY

UTC = timezone.utc
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # a horizon that excludes nothing


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def clinic(
    zone: str = "America/New_York",
    offsets: list[int] | None = None,
    quiet: tuple[str, str] = ("21:00", "08:00"),
    clinic_id: str = "clinic-1",
) -> Clinic:
    return Clinic.from_doc(
        clinic_id,
        {
            "name": "Glow Aesthetics",
            "timezone": zone,
            "phone": "+12125550100",
            "sms_from": "+12125550199",
            "email_from": "reminders@glow.example.com",
            "reminder_offsets_hours": offsets or [24, 2],
            "quiet_hours": {"start": quiet[0], "end": quiet[1]},
        },
    )


def appointment(
    start: datetime,
    *,
    minutes: int = 60,
    status: str = "booked",
    prep: bool = False,
    appointment_id: str = "appt-1",
    clinic_id: str = "clinic-1",
) -> Appointment:
    return Appointment.from_doc(
        appointment_id,
        {
            "clinic_id": clinic_id,
            "patient_id": "pat-1",
            "provider_id": "prov-1",
            "provider_name": "Dr. Maya Chen",
            "service_name": "Lip filler",
            "requires_prep": prep,
            "prep_instructions": "Avoid alcohol for 24 hours." if prep else "",
            "start": start,
            "end": start + timedelta(minutes=minutes),
            "status": status,
            "price_cents": 70000,
        },
    )


def patient(**fields: object) -> Patient:
    return Patient.from_doc(
        "pat-1",
        {
            "clinic_id": "clinic-1",
            "first_name": "Olivia",
            "last_name": "Bennett",
            "phone": "+12125550101",
            "email": "olivia.bennett@example.com",
            "preferred_channel": "sms",
            **fields,
        },
    )


def planned(decisions: list) -> dict[tuple[str, int | None], datetime]:
    return {(d.task.type, d.task.offset_hours): d.task.send_at for d in decisions if not d.skipped}


def skipped(decisions: list) -> list[tuple[str, str]]:
    return [(d.task.type, d.skipped) for d in decisions if d.skipped]


def decided(decision: PlannedMessage | None) -> PlannedMessage:
    """The one message a planner was expected to plan (sent or skipped); fails when it planned none."""
    assert decision is not None
    return decision


# ------------------------------------------------------------------------------------------ reminders


def test_one_reminder_per_offset_at_start_minus_offset():
    start = utc(2026, 11, 26, 20, 0)  # 15:00 in New York
    decisions = plan_reminders(appointment(start), clinic(), now=utc(2026, 11, 24, 0, 0), horizon=FAR)
    assert planned(decisions) == {(REMINDER, 24): utc(2026, 11, 25, 20, 0), (REMINDER, 2): utc(2026, 11, 26, 18, 0)}
    assert skipped(decisions) == []


def test_spring_forward_day_new_york_reminders_leave_quiet_hours():
    # 2026-03-08 07:30 EDT = 11:30Z. 24 h earlier is 06:30 EST on the 7th (quiet) → 08:00 EST = 13:00Z.
    # 2 h earlier is 05:30 EDT (quiet); 08:00 EDT would be after start - 30 min, so it moves back to the
    # evening before: 21:00 EST - 15 min = 20:45 EST = 01:45Z on the 8th.
    decisions = plan_reminders(appointment(utc(2026, 3, 8, 11, 30)), clinic(), now=utc(2026, 3, 6), horizon=FAR)
    assert planned(decisions) == {(REMINDER, 24): utc(2026, 3, 7, 13, 0), (REMINDER, 2): utc(2026, 3, 8, 1, 45)}


def test_fall_back_day_new_york_reminders_use_real_hours():
    # 2026-11-01 09:00 EST = 14:00Z, on a 25-hour day. 24 real hours earlier is 10:00 EDT on the 31st;
    # 2 h earlier is 07:00 EST (quiet) → 08:00 EST = 13:00Z, still 30 min before the start.
    decisions = plan_reminders(appointment(utc(2026, 11, 1, 14, 0)), clinic(), now=utc(2026, 10, 30), horizon=FAR)
    assert planned(decisions) == {(REMINDER, 24): utc(2026, 10, 31, 14, 0), (REMINDER, 2): utc(2026, 11, 1, 13, 0)}


def test_kolkata_half_hour_offset_reminders():
    # 2026-11-27 09:00 IST = 03:30Z. 2 h earlier is 07:00 IST (quiet) → 08:00 IST = 02:30Z.
    decisions = plan_reminders(
        appointment(utc(2026, 11, 27, 3, 30)), clinic("Asia/Kolkata"), now=utc(2026, 11, 25), horizon=FAR
    )
    assert planned(decisions) == {(REMINDER, 24): utc(2026, 11, 26, 3, 30), (REMINDER, 2): utc(2026, 11, 27, 2, 30)}


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("America/New_York", date(2026, 3, 8)),
        ("America/New_York", date(2026, 11, 1)),
        ("Asia/Kolkata", date(2026, 11, 27)),
    ],
)
def test_no_planned_message_falls_in_quiet_hours_or_too_close_to_the_start(zone, day):
    c = clinic(zone, offsets=[48, 24, 2, 1])
    first, end = local_day_range(day, c.zone)
    checked = 0
    start = first
    while start < end:  # every quarter hour of the local day, DST gaps and repeats included
        for decision in plan_reminders(appointment(start, prep=True), c, now=first - timedelta(days=5), horizon=FAR):
            assert isinstance(decision, PlannedMessage) and not decision.skipped, decision
            send_at = decision.task.send_at
            assert not in_quiet_hours(send_at, c.zone, c.quiet_hours), (start, decision.task)
            assert send_at <= start - timedelta(minutes=30), (start, decision.task)
            checked += 1
        start += timedelta(minutes=15)
    assert checked >= 4 * 23 * 5


def test_prep_instructions_go_out_48_hours_before():
    start = utc(2026, 11, 28, 19, 0)  # 14:00 in New York
    decisions = plan_reminders(appointment(start, prep=True), clinic(), now=utc(2026, 11, 25), horizon=FAR)
    assert planned(decisions)[(PREP, 48)] == utc(2026, 11, 26, 19, 0)


def test_an_overdue_reminder_still_useful_is_sent_now():
    # The 24 h reminder (25th 20:00Z, 15:00 in New York) is an hour overdue when planned at 16:00; the
    # appointment is a day away and the 2 h reminder 21 hours later: the 24 h one goes out now.
    start = utc(2026, 11, 26, 20, 0)
    now = utc(2026, 11, 25, 21, 0)
    decisions = plan_reminders(appointment(start), clinic(), now=now, horizon=FAR)
    assert planned(decisions) == {(REMINDER, 24): now, (REMINDER, 2): utc(2026, 11, 26, 18, 0)}
    assert skipped(decisions) == []


def test_an_overdue_reminder_in_quiet_hours_goes_out_when_they_end():
    start = utc(2026, 11, 26, 20, 0)  # 15:00 New York; planned at 22:00 New York the evening before
    decisions = plan_reminders(appointment(start), clinic(), now=utc(2026, 11, 26, 3, 0), horizon=FAR)
    assert planned(decisions)[(REMINDER, 24)] == utc(2026, 11, 26, 13, 0)  # 08:00, still 7 h before


def test_an_overdue_reminder_within_an_hour_of_a_later_one_is_recorded_as_past():
    # Planned at 17:30 New York for a 20:00 start: the 24 h reminder is overdue and the 2 h one (18:00)
    # comes within the hour, so the overdue one is recorded as skipped ("past"), not sent.
    start = utc(2026, 11, 27, 1, 0)
    decisions = plan_reminders(appointment(start), clinic(), now=utc(2026, 11, 26, 22, 30), horizon=FAR)
    assert skipped(decisions) == [(REMINDER, "past")]
    assert list(planned(decisions)) == [(REMINDER, 2)]


def test_an_overdue_reminder_too_close_to_the_start_is_recorded_as_past():
    start = utc(2026, 11, 26, 20, 0)
    decisions = plan_reminders(appointment(start), clinic(), now=start - timedelta(minutes=20), horizon=FAR)
    assert skipped(decisions) == [(REMINDER, "past"), (REMINDER, "past")]


def test_a_tick_after_a_missed_one_covers_the_rest_of_today():
    c = clinic()
    now = utc(2026, 11, 25, 15, 0)  # 10:00 in New York on the 25th; the tick is for the 26th
    assert catch_up_window(c, date(2026, 11, 26), now) == (now, utc(2026, 11, 26, 5, 0))
    assert catch_up_window(c, date(2026, 11, 26), utc(2026, 11, 26, 6, 0)) is None


def test_cancelled_appointments_get_no_reminders():
    start = utc(2026, 11, 26, 20, 0)
    assert plan_reminders(appointment(start, status="cancelled"), clinic(), now=utc(2026, 11, 24), horizon=FAR) == []


def test_a_tick_plans_only_messages_sending_before_the_end_of_its_day():
    c = clinic()
    first, end, horizon = reminder_window(c, date(2026, 11, 26))
    assert first == utc(2026, 11, 26, 5, 0) and horizon == utc(2026, 11, 27, 5, 0)
    day_after = appointment(utc(2026, 11, 27, 19, 0), prep=True)  # 14:00 on the 27th
    decisions = plan_reminders(day_after, c, now=utc(2026, 11, 25, 12, 0), horizon=horizon)
    # The 24 h reminder (the 26th) and prep (the 25th, 14:00) belong to this tick; the 2 h one to the next.
    assert planned(decisions) == {(REMINDER, 24): utc(2026, 11, 26, 19, 0), (PREP, 48): utc(2026, 11, 25, 19, 0)}


@pytest.mark.parametrize("quiet", [("21:00", "08:00"), ("12:00", "11:30"), ("00:00", "23:45")])
def test_appointments_past_the_window_have_nothing_before_the_horizon(quiet):
    c = clinic(offsets=[48, 24, 2, 1], quiet=quiet)
    _, end, horizon = reminder_window(c, date(2026, 3, 7))
    for minutes in range(0, 24 * 60, 15):
        late = appointment(end + timedelta(minutes=minutes), prep=True)
        assert plan_reminders(late, c, now=horizon - timedelta(days=3), horizon=horizon) == []


def test_an_event_plans_up_to_the_end_of_the_clinics_local_tomorrow():
    now = utc(2026, 11, 25, 20, 0)  # 15:00 in New York, 01:30 on the 26th in Kolkata
    assert event_horizon(clinic(), now) == utc(2026, 11, 27, 5, 0)
    assert event_horizon(clinic("Asia/Kolkata"), now) == utc(2026, 11, 27, 18, 30)


# ---------------------------------------------------------------------------- follow-ups, confirmations


def test_followup_a_week_later_at_the_same_local_wall_time_across_dst():
    # Ended 2026-03-03 10:45 EST (15:45Z); a week later it is 10:45 EDT = 14:45Z, not 15:45Z.
    done = appointment(utc(2026, 3, 3, 15, 0), minutes=45, status="completed")
    decision = plan_followup(done, clinic(), now=utc(2026, 3, 9, 12, 0))
    assert isinstance(decision, PlannedMessage)
    assert decision.task.type == FOLLOWUP and decision.task.send_at == utc(2026, 3, 10, 14, 45)


def test_followup_ending_in_quiet_hours_moves_to_the_next_morning():
    done = appointment(utc(2026, 11, 18, 1, 0), minutes=45, status="completed")  # ends 20:45 EST on the 17th
    late = appointment(utc(2026, 11, 18, 2, 0), minutes=30, status="completed", appointment_id="appt-2")  # 21:30
    now = utc(2026, 11, 23, 12, 0)
    assert decided(plan_followup(done, clinic(), now=now)).task.send_at == utc(2026, 11, 25, 1, 45)
    assert decided(plan_followup(late, clinic(), now=now)).task.send_at == utc(2026, 11, 25, 13, 0)  # 08:00 EST


def test_followup_overdue_by_less_than_a_day_goes_out_now_and_older_is_skipped():
    done = appointment(utc(2026, 11, 18, 15, 0), status="completed")  # ends 11:00 EST on the 18th → due 25th 16:00Z
    soon = decided(plan_followup(done, clinic(), now=utc(2026, 11, 25, 20, 0)))  # 15:00 EST, 4 h late
    assert soon.task.send_at == utc(2026, 11, 25, 20, 0)
    at_night = decided(plan_followup(done, clinic(), now=utc(2026, 11, 26, 3, 0)))  # 22:00 EST, 11 h late → morning
    assert at_night.task.send_at == utc(2026, 11, 26, 13, 0)
    stale = decided(plan_followup(done, clinic(), now=utc(2026, 11, 26, 17, 0)))
    assert (stale.task.type, stale.skipped) == (FOLLOWUP, "past")


def test_only_completed_appointments_get_a_followup():
    for status in ("booked", "confirmed", "cancelled", "no_show"):
        assert plan_followup(appointment(utc(2026, 11, 18, 15), status=status), clinic(), now=utc(2026, 11, 24)) is None


def test_booking_confirmation_an_hour_later_out_of_quiet_hours():
    start = utc(2026, 11, 28, 19, 0)
    daytime = decided(plan_confirmation(appointment(start), clinic(), now=utc(2026, 11, 25, 17, 0)))
    assert daytime.task.type == CONFIRMATION and daytime.task.send_at == utc(2026, 11, 25, 18, 0)
    late_evening = decided(plan_confirmation(appointment(start), clinic(), now=utc(2026, 11, 26, 2, 30)))  # 21:30 EST
    assert late_evening.task.send_at == utc(2026, 11, 26, 13, 0)


def test_booking_confirmation_skipped_when_the_appointment_is_too_close():
    now = utc(2026, 11, 25, 17, 0)
    soon = decided(plan_confirmation(appointment(now + timedelta(minutes=80)), clinic(), now=now))
    assert (soon.task.type, soon.skipped) == (CONFIRMATION, "too_late")
    # Booked at 22:00 for 07:30 next morning: 08:00 is too late, the evening before is past.
    night = utc(2026, 11, 26, 3, 0)
    overnight = decided(plan_confirmation(appointment(utc(2026, 11, 26, 12, 30)), clinic(), now=night))
    assert (overnight.task.type, overnight.skipped) == (CONFIRMATION, "past")


# ------------------------------------------------------------------------------------ dedup, payload


def test_dedup_keys_are_stable_and_depend_on_kind_offset_and_start():
    start = utc(2026, 11, 26, 20, 0)
    key = message_key(REMINDER, "appt-1", start, 24)
    assert key == message_key(REMINDER, "appt-1", start.astimezone(ZoneInfo("America/New_York")), 24)
    assert (
        len(
            {
                key,
                message_key(REMINDER, "appt-1", start + timedelta(hours=1), 24),
                message_key(REMINDER, "appt-1", start, 2),
                message_key(PREP, "appt-1", start, 24),
                message_key(REMINDER, "appt-2", start, 24),
            }
        )
        == 5
    )


def test_a_rescheduled_appointment_gets_new_keys_and_carries_its_new_start():
    now = utc(2026, 11, 24)
    before = plan_reminders(appointment(utc(2026, 11, 26, 20, 0)), clinic(), now=now, horizon=FAR)
    after = plan_reminders(appointment(utc(2026, 11, 26, 22, 0)), clinic(), now=now, horizon=FAR)
    again = plan_reminders(appointment(utc(2026, 11, 26, 20, 0)), clinic(), now=now, horizon=FAR)
    assert {d.key for d in before} == {d.key for d in again}
    assert not {d.key for d in before} & {d.key for d in after}
    assert {d.task.appointment_start for d in after} == {utc(2026, 11, 26, 22, 0)}


def test_task_payload_holds_ids_and_instants_only():
    decisions = plan_reminders(
        appointment(utc(2026, 11, 28, 19, 0), prep=True), clinic(), now=utc(2026, 11, 25), horizon=FAR
    )
    decisions.append(decided(plan_confirmation(appointment(utc(2026, 11, 28, 19, 0)), clinic(), now=utc(2026, 11, 25))))
    for decision in decisions:
        body = decision.task.to_json()
        assert set(body) <= set(REMINDER_BODY)  # the fields of an appointment task's body, no other
        text = json.dumps(body)
        for phi in ("Olivia", "Bennett", "5550101", "olivia.bennett", "Lip filler", "Maya", "alcohol"):
            assert phi not in text


# ------------------------------------------------------------------------------------------ channel


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ("sms", "")),
        ({"preferred_channel": "email"}, ("email", "")),
        ({"sms_opt_out": True}, ("email", "")),
        ({"phone": None}, ("email", "")),
        ({"preferred_channel": "email", "email": None}, ("sms", "")),
        ({"sms_opt_out": True, "email_opt_out": True}, (None, "opted_out")),
        ({"phone": None, "email": None}, (None, "no_contact")),
    ],
)
def test_channel_is_the_preferred_usable_one(fields, expected):
    assert first_channel(patient(**fields), clinic()) == expected


@pytest.mark.parametrize(
    ("start", "now"),
    [
        # an ordinary day: 15:00 New York, first tick at 13:30, both reminders overdue
        (utc(2026, 11, 26, 20, 0), utc(2026, 11, 26, 18, 30)),
        # spring forward (23-hour day): 15:00 EDT, the 24 h reminder was 14:00 EST the day before
        (utc(2026, 3, 8, 19, 0), utc(2026, 3, 8, 17, 30)),
        # fall back (25-hour day): 09:00 EST; the 2 h one left quiet hours at 08:00 EST and is 10 min overdue
        (utc(2026, 11, 1, 14, 0), utc(2026, 11, 1, 13, 10)),
    ],
    ids=["ordinary", "spring_forward", "fall_back"],
)
def test_two_overdue_reminders_at_a_first_tick_send_only_the_later_one(start, now):
    # Both reminders are overdue when first planned: sending both now would send the same news twice,
    # minutes apart. The later one says it all: the earlier one is recorded as skipped ("past").
    decisions = plan_reminders(appointment(start), clinic(), now=now, horizon=FAR)
    assert planned(decisions) == {(REMINDER, 2): now}
    assert [(d.task.offset_hours, d.skipped) for d in decisions if d.skipped] == [(24, "past")]


def test_of_three_overdue_reminders_only_the_latest_goes_out():
    start = utc(2026, 11, 26, 20, 0)
    now = utc(2026, 11, 26, 18, 30)
    decisions = plan_reminders(appointment(start), clinic(offsets=[48, 24, 2]), now=now, horizon=FAR)
    assert planned(decisions) == {(REMINDER, 2): now}
    assert Counter(d.task.offset_hours for d in decisions if d.skipped == "past") == Counter([24, 48])


def test_an_overdue_reminder_caught_up_in_quiet_hours_yields_to_a_later_overdue_one():
    # Kolkata, first tick at 06:00 IST on the day of a 10:00 appointment: the 24 h and 5 h reminders are
    # both overdue and would both leave quiet hours at 08:00; only the 5 h one goes, at 08:00.
    start = datetime(2026, 11, 26, 10, 0, tzinfo=ZoneInfo("Asia/Kolkata")).astimezone(UTC)
    now = datetime(2026, 11, 26, 6, 0, tzinfo=ZoneInfo("Asia/Kolkata")).astimezone(UTC)
    decisions = plan_reminders(appointment(start), clinic("Asia/Kolkata", offsets=[24, 5]), now=now, horizon=FAR)
    eight = datetime(2026, 11, 26, 8, 0, tzinfo=ZoneInfo("Asia/Kolkata")).astimezone(UTC)
    assert planned(decisions) == {(REMINDER, 5): eight}
    assert [(d.task.offset_hours, d.skipped) for d in decisions if d.skipped] == [(24, "past")]


def test_only_the_latest_of_overdue_reminders_goes_and_a_reminder_on_time_still_does():
    # 16:00 New York the day before: the 26 h and 24 h reminders are both overdue and would go now
    # together; the 24 h one says it all. The 2 h one, 21 hours later, goes on time.
    start = utc(2026, 11, 26, 20, 0)
    now = utc(2026, 11, 25, 21, 0)  # 16:00 New York the day before: 26 h and 24 h both overdue
    decisions = plan_reminders(appointment(start), clinic(offsets=[26, 24, 2]), now=now, horizon=FAR)
    assert planned(decisions) == {(REMINDER, 24): now, (REMINDER, 2): utc(2026, 11, 26, 18, 0)}
    assert [(d.task.offset_hours, d.skipped) for d in decisions if d.skipped] == [(26, "past")]
