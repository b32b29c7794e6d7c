"""Abandoned-booking recovery on the fakes (docs/booking-recovery.md): the events and settings as parsed, the
nudges' times, the events planning them once, the send-time checks, the discount only as marketing, the
restore link and the report's figures. The same flow on the emulators: tests/integration/test_booking_recovery.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.booking_recovery.figures import report_figures
from shared.booking_recovery.intake import handle_booking_event
from shared.booking_recovery.links import RESTORE_TOKENS, RestoreLinks
from shared.booking_recovery.nudges import BookingNudges
from shared.booking_recovery.plan import plan_nudges
from shared.booking_recovery.sessions import BookingSession
from shared.booking_recovery.tasks import DECLARATIONS, NUDGE, NudgeTask, nudge_key
from shared.booking_recovery.wording import Nudge
from shared.campaigns.wording import STOP_LINE
from shared.consent.caps import MarketingCaps
from shared.consent.consents import ConsentEvent, Consents, ConsentStatus, Purpose
from shared.consent.evidence import SendRecords
from shared.contract.events import BookingEvent, EventRejected, parse_platform_event
from shared.contract.models import Clinic, Patient
from shared.messaging.templates import sms_segments
from shared.platform.errors import PermanentError
from shared.platform.store import Delete
from shared.reminders.fanout import Fanout
from shared.reminders.scheduler import Queues
from shared.reports.periods import period_of
from shared.tasks.declaration import Reopen
from shared.tasks.router import Status
from tests.builders import CLINIC, CLINIC_ID, FIRST_TRY, World
from tests.fakes import FixedClock, RecordingQueue

UTC = timezone.utc
STARTED = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # 10:00 in New York
SLOT = STARTED + timedelta(days=2)
RESTORE_URL, LINK_KEY = "https://restore.example/r", b"booking-test-link-key"
PATTERN = "https://book.example.com/resume?s={session_id}"
RECOVERY = {"enabled": True, "restore_url": PATTERN}


def clinic(**recovery: Any) -> Clinic:
    return Clinic.from_doc(CLINIC_ID, {**CLINIC, "booking_recovery": {**RECOVERY, **recovery}})


@dataclass
class Scene(World):
    queue: RecordingQueue = field(default_factory=RecordingQueue)

    def __post_init__(self) -> None:
        self.clock = FixedClock(STARTED)
        super().__post_init__()
        self.clinic(booking_recovery=dict(RECOVERY))

    def session(self, patient_id: str, session_id: str = "sess-1", **fields: Any) -> str:
        doc = {
            "clinic_id": CLINIC_ID,
            "patient_id": patient_id,
            "service_name": "HydraFacial",
            "slot_start": SLOT,
            "started_at": STARTED,
            "status": "started",
            **fields,
        }
        self.store.seed(f"booking_sessions/{session_id}", {k: v for k, v in doc.items() if v is not None})
        return session_id

    def fanout(self) -> Fanout:
        return Fanout(
            store=self.store, tasks=self.queue, queues=Queues("reminders-sms", "reminders-email"), clock=self.clock
        )

    def event(self, kind: str, session_id: str = "sess-1") -> Any:
        return handle_booking_event(BookingEvent(kind, session_id), self.fanout(), now=self.clock.now())

    def links(self) -> RestoreLinks:
        return RestoreLinks(store=self.store, clock=self.clock, restore_url=RESTORE_URL, key=LINK_KEY)

    def nudges(self, caps: Any = None) -> BookingNudges:
        ledger = self.ledger()
        records = SendRecords(self.store, self.clock)
        return BookingNudges(
            store=self.store,
            ledger=ledger,
            sender=self.sender(ledger),
            clock=self.clock,
            consents=Consents(self.store, self.clock),
            caps=caps or MarketingCaps(records),
            links=self.links,
        )

    def tasks(self) -> list[NudgeTask]:
        return [NudgeTask.from_json(spec.payload, NUDGE) for spec in self.queue.created]

    def grant(self, patient_id: str) -> None:
        event = ConsentEvent(
            patient_id,
            CLINIC_ID,
            Purpose.MARKETING,
            "sms",
            ConsentStatus.GRANTED,
            STARTED,
            "booking_form",
            "v1",
            f"form-{patient_id}",
        )
        Consents(self.store, self.clock).record(event)

    def deliver(self, task: NudgeTask, caps: Any = None) -> Any:
        self.clock.instant = task.send_at
        return self.nudges(caps).deliver(task, FIRST_TRY)


@pytest.fixture
def scene() -> Scene:
    return Scene()


def session(**fields: Any) -> BookingSession:
    doc = {
        "clinic_id": CLINIC_ID,
        "patient_id": "pat-1",
        "service_name": "HydraFacial",
        "slot_start": SLOT,
        "started_at": STARTED,
        "status": "started",
        **fields,
    }
    return BookingSession.from_doc("sess-1", doc)


# --------------------------------------------------------------------------------------------- events


@pytest.mark.parametrize("kind", ["booking.started", "booking.completed", "booking.abandoned"])
def test_each_booking_event_names_its_session(kind):
    event = parse_platform_event(json.dumps({"event": kind, "session_id": "sess-9"}).encode())
    assert isinstance(event, BookingEvent) and event == BookingEvent(kind, "sess-9") and not event.is_cancellation
    assert event.is_completion == (kind == "booking.completed")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"event": "booking.started"}, "bad_session_id"),
        ({"event": "booking.started", "session_id": "a/b"}, "bad_session_id"),
        ({"event": "booking.started", "session_id": "s" * 65}, "bad_session_id"),
        ({"event": "booking.started", "session_id": 7}, "bad_session_id"),
        ({"event": "booking.started", "session_id": "s1", "patient_id": "p1"}, "unknown_field"),
        ({"event": "booking.finished", "session_id": "s1"}, "unknown_event"),
    ],
)
def test_a_malformed_booking_event_is_rejected_with_its_code(body, code):
    with pytest.raises(EventRejected) as refused:
        parse_platform_event(json.dumps(body).encode())
    assert refused.value.code == code


# ------------------------------------------------------------------------------------------- settings


def test_recovery_is_off_unless_the_clinic_turns_it_on_with_a_booking_page():
    plain = Clinic.from_doc(CLINIC_ID, CLINIC)
    assert not plain.booking_recovery.enabled and plain.problems == ()
    on = clinic(delays_minutes=[45, 1200], discount_code="COMEBACK10")
    settings = on.booking_recovery
    assert settings.enabled and settings.delays_minutes == (45, 1200) and settings.discount_code == "COMEBACK10"
    assert settings.restore_link("sess-1") == "https://book.example.com/resume?s=sess-1"


@pytest.mark.parametrize(
    ("recovery", "field"),
    [
        ({"enabled": True, "restore_url": None}, "booking_recovery.restore_url"),
        ({"restore_url": "https://book.example.com/resume"}, "booking_recovery.restore_url"),
        ({"restore_url": "https://b.example/{session_id}/{session_id}"}, "booking_recovery.restore_url"),
        ({"restore_url": "javascript:alert(1)//{session_id}"}, "booking_recovery.restore_url"),
        ({"restore_url": "https://b.example/{session_id} x"}, "booking_recovery.restore_url"),
        ({"delays_minutes": [1440, 60]}, "booking_recovery.delays_minutes"),
        ({"delays_minutes": [5]}, "booking_recovery.delays_minutes"),
        ({"delays_minutes": [60, 120, 180]}, "booking_recovery.delays_minutes"),
        ({"discount_code": "10% OFF"}, "booking_recovery.discount_code"),
        ({"enabled": "yes"}, "booking_recovery.enabled"),
    ],
)
def test_a_broken_setting_is_noted_and_leaves_recovery_off_without_touching_the_reminders(recovery, field):
    broken = Clinic.from_doc(CLINIC_ID, {**CLINIC, "booking_recovery": {**RECOVERY, **recovery}})
    assert not broken.booking_recovery.enabled
    assert [p.field for p in broken.problems] == [field]
    assert broken.reminder_offsets_hours == (24, 2)


# ------------------------------------------------------------------------------------------------ plan


def test_the_nudges_go_an_hour_and_a_day_after_the_start_out_of_quiet_hours():
    first, second = plan_nudges(session(), clinic(), now=STARTED)
    assert (first.task.nudge, first.task.send_at, first.skipped) == (1, STARTED + timedelta(hours=1), None)
    assert (second.task.nudge, second.task.send_at, second.skipped) == (2, STARTED + timedelta(days=1), None)
    evening = STARTED.replace(hour=1, minute=30)  # 20:30 in New York: +1 h falls in the quiet hours
    late = plan_nudges(session(started_at=evening, slot_start=evening + timedelta(days=3)), clinic(), now=evening)
    assert late[0].task.send_at == datetime(2026, 11, 25, 13, 0, tzinfo=UTC)  # 08:00 the next morning
    assert late[0].key == nudge_key("sess-1", 1) and late[0].task.ledger_fields()["kind"] == NUDGE


def test_a_nudge_after_the_slot_is_skipped_too_late_and_none_are_planned_when_recovery_is_off():
    soon = session(slot_start=STARTED + timedelta(hours=3))
    assert [(n.task.nudge, n.skipped) for n in plan_nudges(soon, clinic(), now=STARTED)] == [(1, None), (2, "too_late")]
    assert plan_nudges(session(), clinic(enabled=False), now=STARTED) == []


def test_a_late_event_sends_only_the_latest_nudge_due_at_once():
    now = STARTED + timedelta(days=1, hours=2)
    first, second = plan_nudges(session(), clinic(), now=now)
    assert (first.skipped, second.skipped, second.task.send_at) == ("past", None, now)
    between = STARTED + timedelta(hours=2)
    first, second = plan_nudges(session(), clinic(), now=between)
    assert (first.skipped, first.task.send_at, second.skipped) == (None, between, None)


# ---------------------------------------------------------------------------------------------- intake


def test_started_plans_two_nudges_once_and_a_redelivery_or_an_abandoned_adds_nothing(scene):
    scene.session(scene.patient("pat-1"))
    report = scene.event("booking.started")
    assert report.created == 2 and [t.nudge for t in scene.tasks()] == [1, 2]
    assert all(spec.queue == "reminders-sms" for spec in scene.queue.created)
    again, abandoned = scene.event("booking.started"), scene.event("booking.abandoned")
    assert again.created == abandoned.created == 0 and abandoned.already_present == 2
    assert len(scene.queue.created) == 2
    record = scene.store.doc("booking_recoveries/sess-1")
    assert record["status"] == "abandoned" and record["started_at"] == STARTED
    assert all(json.dumps(spec.payload).count("Zelda") == 0 for spec in scene.queue.created)  # ids only


def test_completed_marks_the_record_once_and_a_completed_session_plans_nothing(scene):
    scene.session(scene.patient("pat-1"), status="completed")
    assert scene.event("booking.started").counts["completed"] == 1
    assert scene.event("booking.completed").counts["already_completed"] == 1
    assert scene.queue.created == [] and scene.store.doc("booking_recoveries/sess-1")["status"] == "completed"


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda s: None, "session_missing"),
        (lambda s: s.session(s.patient("pat-1"), slot_start=STARTED - timedelta(hours=1)), "invalid_session"),
        (lambda s: s.session(s.patient("pat-1"), status="paused"), "invalid_session"),
        (lambda s: s.session(s.patient("pat-1"), clinic_id="clinic-nowhere"), "unknown_clinic"),
        (lambda s: s.session("pat-ghost"), "patient_missing"),
        (lambda s: s.session(s.patient("pat-2", clinic_id="clinic-other")), "clinic_mismatch"),
        (
            lambda s: s.session(s.patient("pat-1"), started_at=STARTED + timedelta(hours=1), slot_start=SLOT),
            "started_in_future",
        ),
    ],
)
def test_a_session_that_cannot_be_planned_is_rejected_with_its_code_and_nothing_written(scene, setup, code):
    setup(scene)
    with pytest.raises(EventRejected) as refused:
        scene.event("booking.started")
    assert refused.value.code == code
    assert scene.queue.created == [] and scene.store.doc("booking_recoveries/sess-1") is None


# ----------------------------------------------------------------------------------------- send time


def started(scene: Scene, **patient: Any) -> list[NudgeTask]:
    scene.session(scene.patient("pat-1", **patient))
    scene.event("booking.started")
    return scene.tasks()


def test_the_first_nudge_carries_a_working_restore_link_and_is_counted(scene):
    first, _ = started(scene)
    outcome = scene.deliver(first)
    assert outcome.status == Status.SENT
    (sms,) = scene.sms.sent
    assert "Zelda" in sms.body and "HydraFacial" not in sms.body and STOP_LINE not in sms.body
    assert sms_segments(sms.body) <= 2
    link = next(word for word in sms.body.split() if word.startswith(RESTORE_URL))
    answer = scene.links().follow(urlsplit(link).path.rsplit("/", 1)[1])
    assert (answer.status, answer.location) == (302, "https://book.example.com/resume?s=sess-1")
    record = scene.store.doc("booking_recoveries/sess-1")
    assert record["nudges_sent"] == 1 and record["first_nudged_at"] == first.send_at and record["clicks"] == 1
    assert scene.store.stored(f"send_records/{first.dedup_key}")["purpose"] == "transactional"
    assert scene.deliver(first).status == Status.DUPLICATE and len(scene.sms.sent) == 1


def test_completion_stops_the_second_nudge(scene):
    first, second = started(scene)
    scene.deliver(first)
    scene.event("booking.completed")
    assert scene.deliver(second).status == Status.SKIPPED
    assert scene.entry(second.dedup_key)["reason"] == "completed" and len(scene.sms.sent) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s.appointment("pat-1", start=SLOT), "booked_since"),
        (lambda s: s.appointment("pat-1", start=SLOT + timedelta(days=5), updated_at=STARTED), "booked_since"),
        (lambda s: s.appointment("pat-1", start=SLOT + timedelta(days=5), created_at=STARTED), "booked_since"),
        (lambda s: s.appointment(s.patient("pat-9"), start=SLOT, updated_at=STARTED), "slot_taken"),
        (lambda s: s.store.commit([Delete("booking_sessions/sess-1")]), "session_missing"),
        (lambda s: s.clinic(booking_recovery={**RECOVERY, "enabled": False}), "recovery_off"),
        (lambda s: s.store.commit([Delete("patients/pat-1")]), "patient_missing"),
    ],
)
def test_each_send_time_check_skips_with_its_reason(scene, change, reason):
    first, _ = started(scene)
    change(scene)
    assert scene.deliver(first).status == Status.SKIPPED
    assert scene.entry(first.dedup_key)["reason"] == reason and scene.sms.sent == []


def test_an_older_visit_or_a_cancelled_booking_or_another_providers_slot_does_not_stop_the_nudge(scene):
    first, _ = started(scene)
    scene.appointment("pat-1", start=SLOT + timedelta(days=9))  # written before the session started
    scene.appointment("pat-1", start=SLOT, status="cancelled", updated_at=STARTED)
    scene.store.seed("booking_sessions/sess-1", {**scene.store.doc("booking_sessions/sess-1"), "provider_id": "dr-b"})
    scene.appointment(scene.patient("pat-9"), start=SLOT)  # Dr. A's, not the session's Dr. B
    assert scene.deliver(first).status == Status.SENT


def test_a_confirmed_or_completed_earlier_booking_is_not_a_new_one(scene):
    """A "C" confirming a booking made before the session, or the front desk completing an earlier visit,
    writes the appointment after the session started: neither is a booking made since."""
    first, _ = started(scene)
    before = STARTED - timedelta(days=3)
    scene.appointment(
        "pat-1", start=SLOT + timedelta(days=9), status="confirmed", created_at=before, updated_at=STARTED
    )
    scene.appointment("pat-1", start=STARTED - timedelta(days=1), status="completed", updated_at=STARTED)
    assert scene.deliver(first).status == Status.SENT


def test_an_opt_out_before_planning_or_before_sending_or_a_past_slot_skips(scene):
    assert started(scene, sms_opt_out=True, email_opt_out=True) == []  # planned as skipped: no task
    assert scene.entry(nudge_key("sess-1", 1))["reason"] == scene.entry(nudge_key("sess-1", 2))["reason"] == "opted_out"
    scene = Scene()
    first, second = started(scene)
    scene.patient("pat-1", sms_opt_out=True, email_opt_out=True)
    assert scene.deliver(first).status == Status.SKIPPED and scene.entry(first.dedup_key)["reason"] == "opted_out"
    scene.clock.instant = SLOT
    assert scene.nudges().deliver(second, FIRST_TRY).status == Status.SKIPPED
    assert scene.entry(second.dedup_key)["reason"] == "slot_past"


def test_a_task_for_another_patient_is_refused():
    scene = Scene()
    first, _ = started(scene)
    forged = NudgeTask(first.session_id, CLINIC_ID, "pat-other", first.dedup_key, first.send_at, 1)
    with pytest.raises(PermanentError) as refused:
        scene.deliver(forged)
    assert refused.value.code == "payload_mismatch"
    with pytest.raises(PermanentError):
        NudgeTask.from_json({**first.to_json(), "nudge": 2}, NUDGE)  # the key is the first nudge's


@dataclass
class CapsAt:
    full: bool = False

    def at_cap(self, patient_id: str, place: Any, clinic_cap: int, now: datetime) -> bool:
        return self.full


def discounted(scene: Scene) -> None:
    scene.clinic(booking_recovery={**RECOVERY, "discount_code": "COMEBACK10"})


def test_with_marketing_consent_the_nudge_offers_the_code_as_marketing(scene):
    discounted(scene)
    first, _ = started(scene)
    scene.grant("pat-1")
    assert scene.deliver(first).status == Status.SENT
    (sms,) = scene.sms.sent
    assert "COMEBACK10" in sms.body and sms.body.endswith(STOP_LINE) and sms_segments(sms.body) <= 2
    record = scene.store.stored(f"send_records/{first.dedup_key}")
    assert record["purpose"] == "marketing" and record["basis"].startswith("consent:")


@pytest.mark.parametrize("why", ["no_consent", "at_cap", "outside_window", "email"])
def test_without_consent_window_or_room_under_the_cap_the_nudge_goes_without_the_code(scene, why):
    discounted(scene)
    first, _ = started(scene, **({"preferred_channel": "email"} if why == "email" else {}))
    if why != "no_consent":
        scene.grant("pat-1")
    task = first
    if why == "outside_window":  # 07:00 in New York: the clinic's quiet hours let it out at 08:00, not 07:00
        task = NudgeTask(first.session_id, CLINIC_ID, "pat-1", first.dedup_key, STARTED.replace(hour=12), 1)
    assert scene.deliver(task, CapsAt(full=why == "at_cap")).status == Status.SENT
    sent = scene.email.sent[0].text if why == "email" else scene.sms.sent[0].body
    assert "COMEBACK10" not in sent and STOP_LINE not in sent
    assert scene.store.stored(f"send_records/{first.dedup_key}")["purpose"] == "transactional"


def test_a_retry_after_a_lost_answer_keeps_the_first_attempts_choice(scene):
    discounted(scene)
    first, _ = started(scene)
    scene.sms.accepted_then_lost = 1
    with pytest.raises(Exception):  # noqa: B017,PT011 - the lost answer: retried by Cloud Tasks
        scene.deliver(first)
    scene.grant("pat-1")  # consent arrives between the attempts: the text stays the transactional one
    scene.clock.advance(minutes=5)
    outcome = scene.nudges().deliver(first, FIRST_TRY)
    assert outcome.status == Status.SENT and outcome.reason == "found_at_provider" and len(scene.sms.sent) == 1


# ------------------------------------------------------------------------------------------- wording


def test_the_sms_keeps_the_link_and_code_whole_for_long_names_and_in_spanish():
    long = Clinic.from_doc(CLINIC_ID, {**CLINIC, "name": "Glow " * 30, "locale": "es"})
    patient = Patient.from_doc("pat-1", {"clinic_id": CLINIC_ID, "first_name": "Maximiliana " * 10})
    link = f"{RESTORE_URL}/" + RESTORE_TOKENS.sign(LINK_KEY, ("s" * 64, "2"), SLOT)
    for number in (1, 2):
        body = Nudge(long, patient, session(), number, link, "COMEBACK-2026").sms()
        assert link in body and "COMEBACK-2026" in body and body.endswith(STOP_LINE) and sms_segments(body) <= 2
    email = Nudge(clinic(), patient, session(), 1, link).email()
    assert link in email.text and "COMEBACK" not in email.text and "HydraFacial" not in email.text
    spanish = Nudge(Clinic.from_doc(CLINIC_ID, {**CLINIC, "locale": "es"}), patient, session(), 2, link).sms()
    assert spanish.startswith("Hola") and spanish.endswith("Responda HELP para ayuda.") and link in spanish


# ------------------------------------------------------------------------------------------ the link


def test_a_forged_expired_or_orphan_link_answers_a_page_never_an_error(scene):
    scene.session(scene.patient("pat-1"))
    links = scene.links()
    good = RESTORE_TOKENS.sign(LINK_KEY, ("sess-1", "1"), SLOT)
    assert links.follow(good, record=False).status == 302
    assert scene.store.doc("booking_recoveries/sess-1") is None  # HEAD: not counted
    assert links.follow(good[:-2] + "xx").outcome == "forged_token"
    assert links.follow("garbage").status == 404
    assert links.follow(RESTORE_TOKENS.sign(LINK_KEY, ("sess-1", "7"), SLOT)).outcome == "malformed_token"
    assert links.follow(RESTORE_TOKENS.sign(LINK_KEY, ("sess-gone", "1"), SLOT)).outcome == "no_session"
    scene.clinic(booking_recovery={**RECOVERY, "enabled": False})
    assert links.follow(good).outcome == "no_link"
    scene.clock.instant = SLOT
    expired = links.follow(good)
    body, status, headers = expired.response()
    assert (status, expired.outcome) == (410, "expired_token") and "expired" in body and "Location" not in headers


# ------------------------------------------------------------------------------------------- figures


def test_the_figures_count_sessions_nudged_and_recovered_after_a_nudge(scene):
    for n, (nudged, completed) in enumerate([(True, True), (True, False), (False, True), (False, False)]):
        scene.session(scene.patient(f"pat-{n}"), session_id=f"sess-{n}")
        scene.event("booking.started", f"sess-{n}")
        if nudged:
            scene.deliver(scene.tasks()[-2])
        if completed:
            scene.clock.advance(minutes=10)
            scene.event("booking.completed", f"sess-{n}")
    scene.store.seed("booking_recoveries/sess-other", {"clinic_id": "clinic-other", "started_at": STARTED})
    period = period_of("daily", STARTED.date(), Clinic.from_doc(CLINIC_ID, CLINIC).zone)
    figures = report_figures(scene.store, CLINIC_ID, period)
    assert figures.key == "booking_recovery"
    assert figures.as_doc() == {"sessions": 4, "nudged": 2, "recovered": 1, "conversion": 0.5}
    empty = report_figures(scene.store, CLINIC_ID, period.previous())
    assert empty.as_doc() == {"sessions": 0, "nudged": 0, "recovered": 0, "conversion": None}


# --------------------------------------------------------------------------- the task type and the sweep


def test_a_nudges_task_is_rebuilt_from_its_ledger_doc_and_runs_through_its_declaration(scene):
    first, _ = started(scene)
    entry = scene.entry(first.dedup_key)
    assert NudgeTask.from_ledger(first.dedup_key, entry) == first and first.failure_key == first.dedup_key
    assert NudgeTask.from_ledger(first.dedup_key, {**entry, "kind": "followup"}) is None
    assert NudgeTask.from_ledger(first.dedup_key, {**entry, "nudge": 9}) is None
    (declaration,) = DECLARATIONS
    nudges = scene.nudges()
    scene.clock.instant = first.send_at
    assert declaration.handle(nudges, first, FIRST_TRY).status == Status.SENT
    assert declaration.reopen is not None and declaration.reopen(nudges, first) == Reopen.ALREADY_DONE


def test_a_clinic_with_recovery_off_records_the_session_and_plans_nothing(scene):
    scene.clinic(booking_recovery={"enabled": False})
    scene.session(scene.patient("pat-1"))
    assert scene.event("booking.started").skipped["recovery_off"] == 1
    assert scene.queue.created == [] and scene.store.stored("booking_recoveries/sess-1")["status"] == "started"
