"""A campaign end to end on the fakes: its audience, its plan and batches (named, restartable), and each
message decided, timed into its recipient's window, capped, sent once, and never sent after a stop."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.campaigns.audience import Audiences, Excluded
from shared.campaigns.lifecycle import Acknowledgement
from shared.campaigns.model import Audience, Status
from shared.campaigns.tasks import MessageTask, message_key
from shared.campaigns.wording import STOP_LINE, segments
from shared.consent.consents import Consents, ConsentStatus
from shared.messaging.ledger import Ledger
from shared.platform.errors import PermanentError
from shared.tasks.queue import MAX_SCHEDULE_AHEAD
from tests.builders import NOW, appointment_doc
from tests.campaign_support import ATTEMPT, CLICK_URL, WINDOW, CapsAt, Scene

NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture
def scene() -> Scene:
    return Scene()


def in_window(moment) -> bool:
    """Independently of the code under test: 08:00-21:00 in New York, the federal window (a +1 212 number is in
    New York, which adds no rule of its own)."""
    local = moment.astimezone(NEW_YORK)
    return 8 <= local.hour < 21


def visit(scene: Scene, patient_id: str, days_ago: int, service: str = "Botox", status: str = "completed") -> None:
    start = NOW - timedelta(days=days_ago)
    doc = appointment_doc("clinic-t", patient_id, start, service_name=service, status=status)
    scene.store.seed(f"appointments/a-{patient_id}-{days_ago}-{service}", doc)


# ------------------------------------------------------------------------------------------- audience


def test_the_audience_needs_consent_a_number_and_no_opt_out_and_counts_the_rest_by_reason(scene):
    for n in range(5):
        scene.consenting(f"p-ok-{n}")
    scene.consenting("p-out", sms_opt_out=True)
    scene.consenting("p-nophone", phone=None)
    scene.patient("p-never")
    scene.consenting("p-revoked")
    scene.grant("p-revoked", ConsentStatus.REVOKED)
    scene.store.seed("patients/p-broken", {"clinic_id": "clinic-t"})
    scene.consenting("p-other-clinic", clinic_id="clinic-other")
    total, excluded = Audiences(scene.store, Consents(scene.store, scene.clock)).count("clinic-t", Audience(), NOW)
    assert total == 5
    assert excluded == Counter(
        {
            Excluded.SMS_OPT_OUT: 1,
            Excluded.NO_PHONE: 1,
            Excluded.NO_MARKETING_CONSENT: 2,
            Excluded.INVALID_PATIENT: 1,
        }
    )


def test_the_filter_takes_tags_services_and_a_recent_completed_visit(scene):
    scene.consenting("p-vip", tags=["vip"])
    scene.consenting("p-plain")
    scene.consenting("p-botox")
    visit(scene, "p-botox", days_ago=10)
    scene.consenting("p-old-botox")
    visit(scene, "p-old-botox", days_ago=200)
    scene.consenting("p-booked-botox")
    visit(scene, "p-booked-botox", days_ago=3, status="cancelled")
    audiences = Audiences(scene.store, Consents(scene.store, scene.clock))

    def ids(audience: Audience) -> set[str]:
        page = audiences.page("clinic-t", audience, NOW, limit=100)
        return {r.patient_id for r in page.recipients}

    assert ids(Audience(tags=("vip",))) == {"p-vip"}
    assert ids(Audience(services=("Botox",))) == {"p-botox", "p-old-botox"}
    assert ids(Audience(services=("Botox",), last_visit_within_days=30)) == {"p-botox"}
    assert ids(Audience(last_visit_within_days=365)) == {"p-botox", "p-old-botox"}


def test_pages_follow_patient_ids_and_the_last_says_so(scene):
    for n in range(7):
        scene.consenting(f"p-{n}")
    audiences = Audiences(scene.store, Consents(scene.store, scene.clock))
    first = audiences.page("clinic-t", Audience(), NOW, limit=3)
    second = audiences.page("clinic-t", Audience(), NOW, after=first.after, limit=3)
    third = audiences.page("clinic-t", Audience(), NOW, after=second.after, limit=3)
    assert [r.patient_id for r in first.recipients + second.recipients + third.recipients] == [
        f"p-{n}" for n in range(7)
    ]
    assert (first.last, second.last, third.last) == (False, False, True)


# ---------------------------------------------------------------------------------------- a whole run


def test_each_consenting_recipient_gets_exactly_one_message_inside_their_window_then_the_campaign_is_done(scene):
    consenting = {scene.consenting(f"p-{n:03d}", first_name=f"Ana{n}", phone=f"+1212555{n:04d}") for n in range(450)}
    scene.consenting("p-out", sms_opt_out=True)
    scene.patient("p-no-consent")
    scene.campaign()
    scene.planner().schedule("camp-1", by="ops")
    scene.run_all()
    sent_to = Counter(message.to for message in scene.sms.sent)
    assert len(scene.sms.sent) == 450 and set(sent_to.values()) == {1}
    assert all(message.body.endswith(f"\n{STOP_LINE}") for message in scene.sms.sent)
    assert {m.body.split(",")[0] for m in scene.sms.sent} == {f"Hi Ana{n}" for n in range(450)}
    assert all(in_window(m.sent_at) for m in scene.sms.listed)
    ledger = Ledger(scene.store, scene.clock)
    entries = ledger.read_many([message_key("camp-1", p) for p in consenting])
    assert {e.state for e in entries.values()} == {"sent"}
    assert {e.data["basis"] for e in entries.values()} == {f"consent:ev-{p}-granted" for p in consenting}
    assert all(e.data["purpose"] == "marketing" and e.data["campaign_id"] == "camp-1" for e in entries.values())
    campaign = scene.lifecycle().read("camp-1")
    assert (campaign.status, campaign.planned, campaign.batched) == (Status.DONE, 450, True)
    # its report is emailed to the managers a minute after it is done, and again once the 14 days of bookings are in
    editions = scene.report_editions()
    assert [spec.payload["type"] for spec in editions] == ["campaign_report", "campaign_report"]
    first, final = (spec.schedule_time for spec in editions)
    assert first is not None and final == first + timedelta(days=14)  # the last recipient's 14 days, from the finish
    assert campaign.estimate is not None and campaign.estimate.recipients == 450
    planning = scene.store.get("campaigns/camp-1").data["planning"]  # what the report reads
    assert planning == {"audience": 452, "excluded": {"sms_opt_out": 1, "no_marketing_consent": 1}}


def test_a_long_window_still_gets_its_final_report_within_what_cloud_tasks_schedules(scene):
    scene.consenting("p-1")
    scene.campaign(window={"start": NOW, "end": NOW + timedelta(days=25)})
    scene.planner().schedule("camp-1", by="ops")
    scene.run_all()
    assert scene.lifecycle().read("camp-1").status == Status.DONE
    final = scene.report_editions()[1].schedule_time
    assert final is not None and final - scene.clock.now() <= MAX_SCHEDULE_AHEAD  # window end + 14 d was 39 days


def test_a_window_opening_beyond_what_cloud_tasks_schedules_is_refused_before_anything_changes(scene):
    scene.consenting("p-1")
    scene.campaign(window={"start": NOW + timedelta(days=40), "end": NOW + timedelta(days=41)})
    with pytest.raises(PermanentError) as refused:
        scene.planner().schedule("camp-1", by="ops")
    assert refused.value.code == "window_too_far"
    assert scene.lifecycle().read("camp-1").status == Status.DRAFT and scene.queue.created == []


def test_each_message_carries_its_recipients_tracked_link_and_the_estimate_counts_it_at_full_length(scene):
    for n in range(3):
        scene.consenting(f"p-{n}", first_name=f"Ana{n}", phone=f"+1212555000{n}")
    scene.campaign()
    scene.planner().schedule("camp-1", by="ops")
    scene.run_all()
    bodies = {message.to: message.body for message in scene.sms.sent}
    assert len(bodies) == 3 and not any("g.example" in body for body in bodies.values())  # never the raw link
    links = scene.links()
    for n in range(3):
        (url,) = [word for word in bodies[f"+1212555000{n}"].split() if word.startswith(CLICK_URL)]
        answer = links.follow(url.rsplit("/", 1)[1])
        assert (answer.status, answer.location) == (302, "https://g.example/x")
        clicks = scene.store.get(f"campaign_clicks/camp-1~{message_key('camp-1', f'p-{n}')}")
        assert clicks is not None and clicks.data["patient_id"] == f"p-{n}"
    campaign = scene.lifecycle().read("camp-1")
    longest = max(segments(body).count for body in bodies.values())
    assert campaign.estimate is not None and campaign.estimate.segments == longest == 2


def test_the_plan_waits_for_the_window_and_messages_wait_for_the_recipients_morning(scene):
    scene.consenting("p-1")
    scene.campaign(window={"start": NOW + timedelta(hours=1), "end": NOW + timedelta(days=1)})
    scene.planner().schedule("camp-1", by="ops")
    (plan,) = scene.queue.created
    assert plan.schedule_time == NOW + timedelta(hours=1) and plan.queue == "campaign-planning"
    scene.run_next()  # plan
    scene.run_next()  # the one batch
    (message,) = [spec for spec in scene.queue.created if spec.queue == "campaigns"]
    assert message.schedule_time is not None and message.schedule_time.astimezone(NEW_YORK).hour == 8


def test_a_replayed_batch_creates_nothing_twice(scene):
    for n in range(5):
        scene.consenting(f"p-{n}")
    scene.campaign()
    planner = scene.planner()
    planner.schedule("camp-1", by="ops")
    scene.run_next()  # plan
    batch = next(spec for spec in scene.queue.created if spec.payload["type"] == "campaign_batch")
    scene.run_next()
    created = len(scene.queue.created)
    scene.ran.remove(batch.business_key)
    scene.run_next()  # the same batch again (a redelivery)
    assert len(scene.queue.created) == created
    assert len(list(scene.store.query("notifications", where=[("campaign_id", "==", "camp-1")]))) == 5


def test_a_recipient_window_that_never_opens_before_the_end_is_skipped_never_sent_outside(scene):
    scene.consenting("p-1")
    scene.campaign(window={"start": NOW, "end": NOW + timedelta(hours=1)})  # 07:00-08:00 in New York
    scene.planner().schedule("camp-1", by="ops")
    scene.run_all()
    assert scene.sms.sent == []
    assert scene.entry(message_key("camp-1", "p-1"))["reason"] == "window_ended"


# ------------------------------------------------------------------------------------ one message


def message_task(scene: Scene, patient_id: str, at=None) -> MessageTask:
    key = message_key("camp-1", patient_id)
    return MessageTask("camp-1", "clinic-t", patient_id, key, at or scene.clock.now())


def sending_campaign(scene: Scene) -> None:
    scene.campaign()
    lifecycle = scene.lifecycle()
    lifecycle.schedule("camp-1", by="ops")
    lifecycle.start("camp-1", by="ops")
    scene.clock.instant = NOW + timedelta(hours=6)  # 13:00 in New York


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda s: s.grant("p-1", ConsentStatus.REVOKED), "no_marketing_consent"),
        (lambda s: s.store.update("patients/p-1", {"sms_opt_out": True}), "sms_opt_out"),
        (lambda s: s.lifecycle(sleep=lambda _: None).cancel("camp-1", by="ops"), "campaign_cancelled"),
        (lambda s: setattr(s.clock, "instant", WINDOW[1]), "window_ended"),
    ],
)
def test_a_message_no_longer_allowed_is_skipped_with_its_reason(scene, setup, reason):
    scene.consenting("p-1")
    sending_campaign(scene)
    setup(scene)
    outcome = scene.campaign_messages().deliver(message_task(scene, "p-1"), ATTEMPT)
    assert (outcome.status, outcome.reason) == ("skipped", reason)
    assert scene.sms.sent == [] and scene.entry(message_key("camp-1", "p-1"))["state"] == "skipped"


def test_a_paused_campaign_sends_nothing_and_leaves_the_message_for_the_resume(scene):
    scene.consenting("p-1")
    sending_campaign(scene)
    scene.lifecycle(sleep=lambda _: None).pause("camp-1", by="ops")
    outcome = scene.campaign_messages().deliver(message_task(scene, "p-1"), ATTEMPT)
    assert (outcome.status, outcome.reason) == ("done", "campaign_paused") and scene.sms.sent == []
    scene.planner().resume("camp-1", by="ops")
    scene.run_all()
    assert len(scene.sms.sent) == 1 and scene.lifecycle().read("camp-1").status == Status.DONE


def test_a_message_due_outside_its_recipients_window_is_moved_to_its_next_opening(scene):
    scene.consenting("p-1")
    sending_campaign(scene)
    scene.clock.instant = NOW + timedelta(hours=14)  # 21:00 in New York
    outcome = scene.campaign_messages().deliver(message_task(scene, "p-1"), ATTEMPT)
    assert (outcome.status, outcome.reason) == ("done", "moved") and scene.sms.sent == []
    (moved,) = scene.queue.created
    assert moved.schedule_time is not None and moved.schedule_time.astimezone(NEW_YORK).hour == 8
    assert moved.payload["send_at"] == moved.schedule_time.isoformat()


def test_a_recipient_at_the_cap_is_moved_a_day_or_skipped_when_the_window_ends_first(scene):
    scene.caps = CapsAt({"p-1", "p-2"})
    scene.consenting("p-1")
    sending_campaign(scene)
    outcome = scene.campaign_messages().deliver(message_task(scene, "p-1"), ATTEMPT)
    assert outcome.reason == "moved"
    assert scene.queue.created[0].schedule_time >= scene.clock.now() + timedelta(hours=24)
    scene.clock.instant = WINDOW[1] - timedelta(hours=20)
    scene.consenting("p-2")
    outcome = scene.campaign_messages().deliver(message_task(scene, "p-2"), ATTEMPT)
    assert (outcome.status, outcome.reason) == ("skipped", "daily_cap") and scene.sms.sent == []


def test_a_message_is_sent_once_however_often_its_task_runs(scene):
    scene.consenting("p-1")
    sending_campaign(scene)
    messages = scene.campaign_messages()
    first = messages.deliver(message_task(scene, "p-1"), ATTEMPT)
    again = messages.deliver(message_task(scene, "p-1"), ATTEMPT)
    assert (first.status, again.status) == ("sent", "duplicate") and len(scene.sms.sent) == 1


# ------------------------------------------------------------------------ stop versus a send in flight


class ClaimThenWait(Ledger):
    """A ledger whose claims pause the sender right after claiming, until the test lets it go on."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.claimed, self.go_on = threading.Event(), threading.Event()

    def claim(self, key, current, fields):
        claim = super().claim(key, current, fields)
        self.claimed.set()
        assert self.go_on.wait(10)
        return claim


def test_a_cancel_written_after_the_claim_is_seen_before_the_provider_call_so_nothing_is_sent(scene):
    scene.consenting("p-1")
    sending_campaign(scene)
    messages = scene.campaign_messages()
    ledger = ClaimThenWait(scene.store, scene.clock)
    messages.ledger = messages.sender.ledger = ledger
    outcome = []
    sender = threading.Thread(target=lambda: outcome.append(messages.deliver(message_task(scene, "p-1"), ATTEMPT)))
    sender.start()
    assert ledger.claimed.wait(10)
    looks = []

    def let_the_sender_go_on(seconds: float) -> None:
        looks.append(seconds)
        ledger.go_on.set()
        sender.join(10)

    ack = scene.lifecycle(sleep=let_the_sender_go_on).cancel("camp-1", by="ops")
    assert (ack.in_flight, ack.settled) == (1, True) and looks
    assert scene.sms.sent == []
    assert (outcome[0].status, outcome[0].reason) == ("skipped", "campaign_cancelled")
    assert scene.entry(message_key("camp-1", "p-1"))["state"] == "skipped"


def test_a_send_that_read_the_status_before_the_cancel_is_waited_for_and_is_before_the_acknowledgement(scene):
    scene.consenting("p-1")
    sending_campaign(scene)
    order: list[object] = []
    scene.sms.on_send = lambda message, sid: order.append("sent")
    messages = scene.campaign_messages()
    real_get = scene.store.get

    def cancel_once_the_status_was_read(path):
        doc = real_get(path)
        if path == "campaigns/camp-1" and not order:
            order.append("status read")
            # the sender holds its claim and read "sending": the cancel must wait for it
            threading.Thread(target=lambda: order.append(scene.lifecycle().cancel("camp-1", by="ops"))).start()
            while scene.store.doc("campaigns/camp-1")["status"] != "cancelled":
                pass
        return doc

    scene.store.get = cancel_once_the_status_was_read
    messages.deliver(message_task(scene, "p-1"), ATTEMPT)
    scene.store.get = real_get
    for _ in range(1000):
        if len(order) == 3:
            break
        threading.Event().wait(0.01)
    assert order[:2] == ["status read", "sent"]
    ack = order[2]
    assert isinstance(ack, Acknowledgement) and ack.in_flight == 1 and ack.settled and len(scene.sms.sent) == 1
