"""Follow-ups that act (docs/feedback.md) on the fakes: the check-in's and the survey's timing, the survey's
send (its doc opened, "Reply 1-5" by SMS, the signed page link by email), scores by text and on the page
(first wins, later ones a history, a replayed ref changes nothing, 7 and "five" answered), the routing of
a first score (low: front desk + managers' alert, never a review link; high: the review link once), and the
report's figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.contract.models import Clinic
from shared.feedback import figures
from shared.feedback.links import LINK_TOKENS, FeedbackLinks
from shared.feedback.messages import FeedbackMessages
from shared.feedback.scores import Recorded, Scores
from shared.feedback.surveys import Surveys, low_request_id
from shared.feedback.tasks import ALERT, REVIEW, AlertTask, ReviewTask, review_key
from shared.messaging.appointment_tasks import CHECKIN, FOLLOWUP
from shared.messaging.delivery import AppointmentMessages
from shared.messaging.ledger import Ledger
from shared.messaging.templates import sms_segments
from shared.reminders.plan import checkin_day, plan_checkin, plan_followup
from shared.reports.emails import StaffEmails
from shared.reports.journeys import PROVIDERS
from shared.reports.periods import period_of
from shared.waitlist.inbound import Conversations
from shared.waitlist.keywords import Intent, classify, score
from tests.builders import CLINIC, CLINIC_ID, FIRST_TRY, NOW, World
from tests.fakes import RecordingQueue
from tests.waitlist_support import Scene

KEY = b"feedback-link-key-for-unit-tests"
PAGE_URL = "https://feedback.example.test"
REVIEW_URL = "https://g.page/r/glow/review"
FEEDBACK = {"checkin_days": 2, "review_url": REVIEW_URL}


class Feedback:
    """A World (clinic, patients, providers) with the feedback's services wired as shared/wiring does."""

    def __init__(self, **settings: Any) -> None:
        self.world = World()
        self.world.clinic(feedback={**FEEDBACK, **settings}, manager_emails=["boss@glow.example.com"])
        self.queue = RecordingQueue()
        self.ledger = self.world.ledger()
        self.sender = self.world.sender(self.ledger)
        self.surveys = Surveys(
            store=self.world.store,
            clock=self.world.clock,
            ledger=self.ledger,
            tasks=lambda: self.queue,
            queues=lambda role: f"q-{role}",
            links=lambda: self.links,
        )
        self.links = FeedbackLinks(
            store=self.world.store, clock=self.world.clock, page_url=PAGE_URL, key=KEY, surveys=self.surveys
        )

    @property
    def clinic(self) -> Clinic:
        doc = self.world.store.get(f"clinics/{CLINIC_ID}")
        assert doc is not None
        return Clinic.from_doc(doc.id, doc.data)

    def messages(self) -> AppointmentMessages:
        return AppointmentMessages(
            store=self.world.store, ledger=self.ledger, sender=self.sender, clock=self.world.clock, surveys=self.surveys
        )

    def feedback_messages(self) -> FeedbackMessages:
        emails = StaffEmails(store=self.world.store, ledger=self.ledger, sender=self.sender, clock=self.world.clock)
        return FeedbackMessages(
            store=self.world.store, ledger=self.ledger, sender=self.sender, emails=emails, clock=self.world.clock
        )

    def surveyed(self, **patient: Any) -> dict[str, Any]:
        """A completed visit whose survey went out: the appointment (a dict with its id)."""
        visit = self.world.appointment(self.world.patient(**patient), start=NOW - timedelta(days=7), status="completed")
        outcome = self.messages().deliver(self.world.task(visit, FOLLOWUP), FIRST_TRY)
        assert outcome.status == "sent"
        return visit

    def doc(self, path: str) -> dict[str, Any]:
        return self.world.store.doc(path) or {}

    def specs(self, kind: str) -> list[dict[str, Any]]:
        return [spec.payload for spec in self.queue.created if spec.payload["type"] == kind]


@pytest.fixture
def fb() -> Feedback:
    return Feedback()


# --------------------------------------------------------------------------------------------- timing


def _clinic(**feedback: Any) -> Clinic:
    return Clinic.from_doc(CLINIC_ID, {**CLINIC, "feedback": feedback})


def _visit(end: datetime, status: str = "completed") -> Any:
    from shared.contract.models import Appointment
    from tests.builders import appointment_doc

    return Appointment.from_doc("appt-1", appointment_doc(CLINIC_ID, "pat-1", end - timedelta(hours=1), status=status))


def test_the_check_in_is_off_unless_the_clinic_sets_it_and_goes_at_the_visits_local_time_days_later():
    end = datetime(2026, 11, 20, 15, 30, tzinfo=NOW.tzinfo)  # 10:30 in New York
    assert plan_checkin(_visit(end), _clinic(), now=end) is None
    planned = plan_checkin(_visit(end), _clinic(checkin_days=2), now=end)
    assert planned is not None and planned.task.type == CHECKIN and planned.skipped is None
    assert planned.task.send_at == end + timedelta(days=2)
    assert plan_checkin(_visit(end, "no_show"), _clinic(checkin_days=2), now=end) is None
    assert plan_checkin(_visit(end, "booked"), _clinic(checkin_days=1), now=end) is None
    # a key of its own: the survey a week later is another message
    survey = plan_followup(_visit(end), _clinic(checkin_days=2), now=end)
    assert survey is not None and survey.key != planned.key and survey.task.send_at == end + timedelta(days=7)


def test_a_one_day_check_in_planned_after_its_time_goes_at_once_outside_quiet_hours_and_not_a_day_late():
    end = datetime(2026, 11, 20, 14, 0, tzinfo=NOW.tzinfo)  # 09:00 in New York
    late = end + timedelta(days=1, hours=5)  # the tick that plans it runs the day after
    planned = plan_checkin(_visit(end), _clinic(checkin_days=1), now=late)
    assert planned is not None and planned.skipped is None and planned.task.send_at == late
    too_late = plan_checkin(_visit(end), _clinic(checkin_days=1), now=end + timedelta(days=3))
    assert too_late is not None and too_late.skipped == "past"


def test_the_tick_for_a_day_plans_the_check_ins_of_two_days_before():
    from datetime import date

    assert checkin_day(date(2026, 11, 25)) == date(2026, 11, 23)


@pytest.mark.parametrize(
    ("feedback", "problem"),
    [
        ({"checkin_days": 3}, "feedback.checkin_days"),
        ({"review_url": "http://plain.example"}, "feedback.review_url"),
        ({"low_score_max": 4, "review_min_score": 3}, "feedback.review_min_score"),
        ({"low_score_max": "2"}, "feedback.low_score_max"),
        ("yes", "feedback"),
    ],
)
def test_a_bad_feedback_setting_is_noted_and_its_default_used(feedback, problem):
    clinic = Clinic.from_doc(CLINIC_ID, {**CLINIC, "feedback": feedback})
    assert problem in {p.field for p in clinic.problems}
    assert clinic.feedback.low_score_max == 2 and clinic.feedback.review_min_score == 4
    assert clinic.feedback.checkin_days is None or feedback == {}


# ------------------------------------------------------------------------------------- the send


def test_the_survey_by_sms_asks_for_a_reply_1_to_5_and_opens_the_survey(fb):
    visit = fb.surveyed()
    (sms,) = fb.world.sms.sent
    assert "Reply with a number from 1 to 5" in sms.body and "HydraFacial" not in sms.body
    assert "http" not in sms.body and sms_segments(sms.body) <= 2
    doc = fb.doc(f"feedback/{visit['id']}")
    assert doc["patient_id"] == visit["patient_id"] and doc["score"] is None and doc["asked_at"] == NOW


def test_the_survey_by_email_carries_the_signed_page_link_naming_the_appointment_only(fb):
    visit = fb.surveyed(preferred_channel="email", phone=None)
    (email,) = fb.world.email.sent
    link = next(word for word in email.text.split() if word.startswith(PAGE_URL))
    token = parse_qs(urlsplit(link).query)["t"][0]
    (appointment_id,), expires = LINK_TOKENS.verify(KEY, token, NOW)
    assert appointment_id == visit["id"] and expires > NOW + timedelta(days=29)
    assert visit["patient_id"] not in link and fb.doc(f"feedback/{visit['id']}")


def test_a_check_in_goes_only_after_a_completed_visit_and_opens_no_survey(fb):
    completed = fb.world.appointment(fb.world.patient(), start=NOW - timedelta(days=2), status="completed")
    assert (
        fb.messages()
        .deliver(
            fb.world.task(
                completed,
                CHECKIN,
            ),
            FIRST_TRY,
        )
        .status
        == "sent"
    )
    assert "checking in" in fb.world.sms.sent[0].body and fb.doc(f"feedback/{completed['id']}") == {}
    no_show = fb.world.appointment(fb.world.patient(), start=NOW - timedelta(days=2), status="no_show")
    outcome = fb.messages().deliver(
        fb.world.task(
            no_show,
            CHECKIN,
        ),
        FIRST_TRY,
    )
    assert (outcome.status, outcome.reason) == ("skipped", "status_no_show")


# ------------------------------------------------------------------------------------ the scores


@pytest.mark.parametrize(
    ("text", "intent", "value"),
    [
        ("5", Intent.SCORE, 5),
        (" 1! ", Intent.SCORE, 1),
        ("7", Intent.NOT_A_SCORE, None),
        ("0", Intent.NOT_A_SCORE, None),
        ("five", Intent.NOT_A_SCORE, None),
        ("Cinco", Intent.NOT_A_SCORE, None),
        ("loved it", Intent.OTHER, None),
        ("YES", Intent.CLAIM, None),
        ("STOP", Intent.OPT_OUT, None),
    ],
)
def test_what_a_text_is_as_a_score(text, intent, value):
    assert classify(text, "JOIN") == intent and score(text) == value


def test_the_first_score_wins_later_ones_are_a_history_and_a_replayed_ref_changes_nothing(fb):
    visit = fb.surveyed()
    scores, settings = Scores(fb.world.store, fb.world.clock), fb.clinic.feedback
    assert scores.record(visit["id"], 4, source="sms", ref="SM1", settings=settings).outcome == Recorded.SCORED
    assert scores.record(visit["id"], 2, source="sms", ref="SM2", settings=settings).outcome == Recorded.CHANGED
    assert scores.record(visit["id"], 1, source="sms", ref="SM1", settings=settings).outcome == Recorded.DUPLICATE
    assert scores.record(visit["id"], None, source="sms", ref="SM3", settings=settings).outcome == Recorded.INVALID
    doc = fb.doc(f"feedback/{visit['id']}")
    assert (doc["score"], doc["ref"], doc["high"], doc["low"], doc["invalid"]) == (4, "SM1", True, False, 1)
    assert [(c["score"], c["ref"]) for c in doc["changes"]] == [(2, "SM2")]
    assert scores.record("appt-none", 5, source="sms", ref="SM4", settings=settings).outcome == Recorded.NO_SURVEY


def test_a_high_first_score_gets_the_review_link_once_and_a_low_one_alerts_the_clinic_never_a_review(fb):
    high, low = fb.surveyed(), fb.surveyed()
    fb.surveys.answer(high["id"], fb.clinic, 5, source="sms", ref="SMh")
    fb.surveys.answer(high["id"], fb.clinic, 5, source="sms", ref="SMh")  # Twilio's retry
    fb.surveys.answer(high["id"], fb.clinic, 4, source="sms", ref="SMh2")  # a change: routes nothing
    assert fb.specs(REVIEW) == [ReviewTask(high["id"], CLINIC_ID).to_json()] and fb.specs(ALERT) == []
    assert fb.doc(f"notifications/{review_key(high['id'])}")["state"] == "scheduled"
    fb.surveys.answer(low["id"], fb.clinic, 2, source="link", ref="link-2")
    assert fb.specs(ALERT) == [AlertTask(low["id"], CLINIC_ID).to_json()] and len(fb.specs(REVIEW)) == 1
    request = fb.doc(f"patient_requests/{low_request_id(low['id'])}")
    assert (request["kind"], request["appointment_id"], request["source"]) == ("feedback_low_score", low["id"], "link")
    fb.surveys.answer(low["id"], fb.clinic, 5, source="link", ref="link-5")  # changed to 5: still no review
    assert len(fb.specs(REVIEW)) == 1


def test_a_high_score_without_a_review_url_sends_nothing_and_a_middle_one_routes_nowhere():
    fb = Feedback(review_url=None)
    fb.world.clinic(feedback={"checkin_days": 2}, manager_emails=["boss@glow.example.com"])
    fb.surveys.answer(fb.surveyed()["id"], fb.clinic, 5, source="sms", ref="SM5")
    fb.surveys.answer(fb.surveyed()["id"], fb.clinic, 3, source="sms", ref="SM3")
    assert fb.queue.created == []


def test_the_review_message_goes_once_with_the_clinics_link_and_is_counted(fb):
    visit = fb.surveyed()
    fb.surveys.answer(visit["id"], fb.clinic, 5, source="sms", ref="SMr")
    task = ReviewTask(visit["id"], CLINIC_ID)
    service = fb.feedback_messages()
    assert service.deliver_review(task, FIRST_TRY).status == "sent"
    assert service.deliver_review(task, FIRST_TRY).status == "duplicate"
    reviews = [m for m in fb.world.sms.sent if REVIEW_URL in m.body]
    assert len(reviews) == 1 and sms_segments(reviews[0].body) <= 2
    assert fb.doc(f"feedback/{visit['id']}")["review_sent_at"] == NOW


def test_the_review_is_skipped_when_the_clinic_removed_its_link_meanwhile(fb):
    visit = fb.surveyed()
    fb.surveys.answer(visit["id"], fb.clinic, 5, source="sms", ref="SMr")
    fb.world.clinic(feedback={"checkin_days": 2})
    outcome = fb.feedback_messages().deliver_review(ReviewTask(visit["id"], CLINIC_ID), FIRST_TRY)
    assert (outcome.status, outcome.reason) == ("skipped", "no_review_url")


def test_the_low_score_alert_emails_each_manager_once(fb):
    visit = fb.surveyed()
    fb.surveys.answer(visit["id"], fb.clinic, 1, source="sms", ref="SMl")
    service = fb.feedback_messages()
    assert service.deliver_alert(AlertTask(visit["id"], CLINIC_ID), FIRST_TRY).status == "sent"
    assert service.deliver_alert(AlertTask(visit["id"], CLINIC_ID), FIRST_TRY).status == "duplicate"
    (email,) = fb.world.email.sent
    assert email.to == "boss@glow.example.com" and "1/5" in email.subject
    # the patient as a hint only (initials and id): the name stays in Firestore
    assert "Zelda" not in email.text and "Z." in email.text and visit["patient_id"] in email.text


# ----------------------------------------------------------------------------------- inbound SMS


def _conversations(scene: Scene, surveys: Surveys | None) -> Conversations:
    return Conversations(store=scene.store, clock=scene.clock, claims=scene.claims(), surveys=surveys)


def _form(scene: Scene, patient_id: str, body: str, sid: str) -> dict[str, str]:
    phone = scene.doc(f"patients/{patient_id}")["phone"]
    return {"MessageSid": sid, "From": phone, "To": scene.sms_from, "Body": body}


def test_texts_answer_an_open_survey_and_are_plain_text_without_one():
    from tests.fakes import MemoryStore

    scene = Scene(MemoryStore())
    surveys = Surveys(
        store=scene.store,
        clock=scene.clock,
        ledger=Ledger(scene.store, scene.clock),
        tasks=lambda: scene.queue,
        queues=lambda role: role,
    )
    patient, stranger = scene.patient(), scene.patient()
    visit = scene.appointment(patient, start=scene.now - timedelta(days=7), status="completed")
    Scores(scene.store, scene.clock).open(
        appointment_id=visit, clinic_id=scene.clinic_id, patient_id=patient, survey_key="followup-" + "0" * 40
    )
    talk = _conversations(scene, surveys)
    sid = "SM" + "1" * 32
    assert talk.handle(_form(scene, patient, "7", "SM" + "7" * 32)).outcome == "score_invalid"
    assert talk.handle(_form(scene, patient, "five", "SM" + "5" * 32)).outcome == "score_invalid"
    reply = talk.handle(_form(scene, patient, "4", sid))
    assert reply.outcome == "score_recorded" and "Thank you" in (reply.text or "")
    assert talk.handle(_form(scene, patient, "4", sid)).text == reply.text  # replayed: the same answer
    assert scene.doc(f"feedback/{visit}")["refs"] == ["SM" + "7" * 32, "SM" + "5" * 32, sid]
    comment = talk.handle(_form(scene, patient, "the nurse was lovely", "SM" + "c" * 32))
    assert comment.outcome == "feedback_comment"
    assert scene.doc(f"patient_requests/sms-SM{'c' * 32}")["kind"] == "feedback_comment"
    assert talk.handle(_form(scene, stranger, "5", "SM" + "9" * 32)).outcome == "other"  # no survey open
    assert _conversations(scene, None).handle(_form(scene, patient, "5", "SM" + "8" * 32)).outcome == "other"
    assert talk.handle(_form(scene, patient, "C", "SM" + "a" * 32)).outcome == "no_appointment"  # C unchanged


# ---------------------------------------------------------------------------------- the page


def _token(appointment_id: str, expires: datetime) -> str:
    return LINK_TOKENS.sign(KEY, (appointment_id,), expires)


def test_the_page_shows_the_question_writes_nothing_on_get_and_records_a_post_once(fb):
    visit = fb.surveyed(preferred_channel="email", phone=None)
    token = _token(visit["id"], NOW + timedelta(days=1))
    page = fb.links.show(token)
    assert page.status == 200 and page.token == token and 'value="5"' in page.html()
    assert fb.doc(f"feedback/{visit['id']}")["score"] is None
    assert fb.links.submit(token, "1").outcome == "scored"
    assert fb.links.submit(token, "1").outcome == "scored"  # pressed twice: one answer
    assert fb.links.submit(token, "3").outcome == "changed"
    doc = fb.doc(f"feedback/{visit['id']}")
    assert (doc["score"], doc["source"], doc["refs"]) == (1, "link", ["link-1", "link-3"])
    assert len(fb.specs(ALERT)) == 1


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("v1.bm9wZQ.bm9wZQ", 403),
        (None, 403),
        (LINK_TOKENS.sign(b"another-key-of-16-bytes", ("appt-1",), NOW + timedelta(days=1)), 403),
        (LINK_TOKENS.sign(KEY, ("appt-1",), NOW - timedelta(seconds=1)), 410),
        (LINK_TOKENS.sign(KEY, ("appt-unknown",), NOW + timedelta(days=1)), 404),
    ],
)
def test_a_refused_link_answers_a_page_and_writes_nothing(fb, token, status):
    assert fb.links.submit(token, "5").status == status and fb.queue.created == []


def test_a_score_that_is_not_1_to_5_asks_again(fb):
    visit = fb.surveyed()
    page = fb.links.submit(_token(visit["id"], NOW + timedelta(days=1)), "7")
    assert (page.status, page.outcome) == (400, "invalid_score") and page.token
    assert fb.doc(f"feedback/{visit['id']}")["score"] is None


# --------------------------------------------------------------------------------- the report


def test_the_report_figures_count_the_periods_surveys_and_what_came_of_them(fb):
    scored = [fb.surveyed() for _ in range(4)]
    for visit, value in zip(scored[:3], (5, 1, 4), strict=True):
        fb.surveys.answer(visit["id"], fb.clinic, value, source="sms", ref=f"SM{value}")
    fb.feedback_messages().deliver_review(ReviewTask(scored[0]["id"], CLINIC_ID), FIRST_TRY)
    period = period_of("daily", NOW.astimezone(fb.clinic.zone).date(), fb.clinic.zone)
    section = figures.report_figures(fb.world.store, CLINIC_ID, period)
    assert "shared.feedback.figures.report_figures" in [p.__qualname__ for p in PROVIDERS]
    assert section.key == "feedback"
    assert section.as_doc() == {
        "surveys_sent": 4,
        "responses": 3,
        "response_rate": 0.75,
        "average_score": 3.33,
        "low_scores": 1,
        "review_links_sent": 1,
    }
    empty = figures.report_figures(fb.world.store, "clinic-other", period).as_doc()
    assert empty["response_rate"] is None and empty["average_score"] is None


def test_the_routing_follows_the_clinics_settings_as_they_stand_not_a_cached_copy(fb):
    cached = fb.clinic  # as the inbound webhook's minute-long cache holds it: with a review link
    fb.world.clinic(feedback={"review_url": None, "low_score_max": 3}, manager_emails=["boss@glow.example.com"])
    fb.surveys.answer(fb.surveyed()["id"], cached, 5, source="sms", ref="SM5")
    fb.surveys.answer(fb.surveyed()["id"], cached, 3, source="sms", ref="SM3")
    assert fb.specs(REVIEW) == [] and len(fb.specs(ALERT)) == 1
