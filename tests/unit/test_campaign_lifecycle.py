"""A campaign's document and its one owner of status: parsing, the allowed transitions with their history,
and a stop (pause, cancel) acknowledged only once no send of the campaign is in flight."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.campaigns.model import TRANSITIONS, Campaign, Marketing, Status
from shared.campaigns.tasks import message_key
from shared.messaging.ledger import Claim, Ledger, Planned, State
from shared.platform.errors import InvalidDocument, PermanentError
from tests.builders import NOW
from tests.campaign_support import Scene, campaign_doc


@pytest.fixture
def scene() -> Scene:
    return Scene()


def test_a_campaign_doc_is_parsed_whole():
    doc = {**campaign_doc("clinic-t"), "status": "draft", "audience": {"tags": ["vip"], "services": ["Botox"]}}
    campaign = Campaign.from_doc("camp-1", doc)
    assert (campaign.status, campaign.audience.tags, campaign.audience.services) == (Status.DRAFT, ("vip",), ("Botox",))
    assert campaign.audience.last_visit_within_days is None and campaign.round == 0 and campaign.planned is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "sent"}, "status"),
        ({"window": {"start": NOW, "end": NOW}}, "window.end"),
        ({"window": {"start": NOW}}, "end"),
        ({"message": {"template": "", "link": None}}, "template"),
        ({"message": {"template": "Hi", "link": "javascript:alert(1)"}}, "message.link"),
        ({"message": {"template": "Hi {first_name.__class__}", "link": None}}, "message.template"),
        ({"message": {"template": "See {link}", "link": None}}, "message.template"),
        ({"audience": {"tags": "vip"}}, "tags"),
        ({"audience": {"last_visit_within_days": 0}}, "last_visit_within_days"),
        ({"history": [{"status": "draft"}]}, "history[0]"),
    ],
)
def test_a_broken_campaign_doc_is_invalid_naming_the_field(change, field):
    with pytest.raises(InvalidDocument) as caught:
        Campaign.from_doc("camp-1", {**campaign_doc("clinic-t"), "status": "draft", **change})
    assert caught.value.field == field


def test_a_clinics_marketing_settings_default_and_are_checked():
    assert Marketing.of_clinic("c", {}) == Marketing()
    settings = Marketing.of_clinic("c", {"marketing": {"daily_cap": 2, "hours": {"start": "10:00", "end": "18:30"}}})
    assert settings.daily_cap == 2 and str(settings.hours) == "(datetime.time(10, 0), datetime.time(18, 30))"
    with pytest.raises(InvalidDocument):
        Marketing.of_clinic("c", {"marketing": {"hours": {"start": "19:00", "end": "09:00"}}})


def test_the_transitions_table_is_the_documented_state_machine():
    edges = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    assert edges == {
        ("draft", "scheduled"),
        ("draft", "cancelled"),
        ("scheduled", "sending"),
        ("scheduled", "paused"),
        ("scheduled", "cancelled"),
        ("sending", "done"),
        ("sending", "paused"),
        ("sending", "cancelled"),
        ("paused", "sending"),
        ("paused", "cancelled"),
    }


def test_each_transition_appends_its_history_and_a_repeat_changes_nothing(scene):
    scene.campaign()
    lifecycle = scene.lifecycle()
    lifecycle.schedule("camp-1", by="ops")
    scene.clock.advance(minutes=1)
    lifecycle.start("camp-1", by="window")
    lifecycle.start("camp-1", by="window")  # a replayed plan task
    campaign = lifecycle.read("camp-1")
    assert [(h.status, h.by) for h in campaign.history] == [
        (Status.DRAFT, "test"),
        (Status.SCHEDULED, "ops"),
        (Status.SENDING, "window"),
    ]
    assert campaign.history[-1].at == NOW + timedelta(minutes=1)


@pytest.mark.parametrize(("path", "refused"), [((), "start"), (("cancel",), "schedule"), (("schedule",), "resume")])
def test_a_transition_the_table_does_not_allow_is_refused(scene, path, refused):
    scene.campaign()
    lifecycle = scene.lifecycle()
    for verb in path:
        getattr(lifecycle, verb)("camp-1", by="ops")
    with pytest.raises(PermanentError) as caught:
        getattr(lifecycle, refused)("camp-1", by="ops")
    assert caught.value.code == "campaign_transition"


def test_resume_starts_a_new_dispatch_round(scene):
    scene.campaign()
    lifecycle = scene.lifecycle()
    lifecycle.schedule("camp-1", by="ops")
    lifecycle.start("camp-1", by="ops")
    lifecycle.pause("camp-1", by="ops")
    assert lifecycle.resume("camp-1", by="ops").round == 1
    assert lifecycle.read("camp-1").status == Status.SENDING


def test_a_broken_campaign_is_refused_before_it_is_stored(scene):
    with pytest.raises(InvalidDocument):
        scene.lifecycle().create("camp-x", {**campaign_doc("clinic-t"), "window": {}}, by="ops")
    assert scene.store.doc("campaigns/camp-x") is None


def _sending(scene: Scene, patient_id: str) -> tuple[Ledger, Claim]:
    """A message of camp-1 claimed by a sender that has not called the provider yet."""
    key = message_key("camp-1", patient_id)
    ledger = Ledger(scene.store, scene.clock)
    ledger.schedule([Planned(key, {"kind": "campaign_message", "campaign_id": "camp-1"})])
    return ledger, ledger.claim(key, ledger.read(key), {})


def test_a_cancel_waits_for_the_send_in_flight_then_acknowledges(scene):
    scene.campaign()
    lifecycle = scene.lifecycle()
    lifecycle.schedule("camp-1", by="ops")
    lifecycle.start("camp-1", by="ops")
    ledger, claim = _sending(scene, "pat-1")
    looks = []

    def sender_finishes(seconds: float) -> None:
        looks.append(seconds)
        ledger.mark_sent(claim, channel="sms", provider_message_id="SM1")

    ack = scene.lifecycle(sleep=sender_finishes).cancel("camp-1", by="ops")
    assert (ack.in_flight, ack.settled, ack.acknowledged_at) == (1, True, NOW)
    entry = ledger.read(claim.key)
    assert len(looks) == 1 and entry is not None and entry.state == State.SENT
    assert scene.store.doc("campaigns/camp-1")["cancel_acknowledged_at"] == NOW


def test_a_cancel_whose_send_never_settles_is_not_acknowledged(scene):
    scene.campaign()
    lifecycle = scene.lifecycle(stop_wait_seconds=2.0, sleep=lambda seconds: None)
    lifecycle.schedule("camp-1", by="ops")
    lifecycle.start("camp-1", by="ops")
    _sending(scene, "pat-1")
    ack = lifecycle.cancel("camp-1", by="ops")
    assert (ack.in_flight, ack.settled, ack.acknowledged_at) == (1, False, None)
    assert lifecycle.read("camp-1").status == Status.CANCELLED
    assert "cancel_acknowledged_at" not in scene.store.doc("campaigns/camp-1")


def test_a_claim_whose_lease_ran_out_is_not_in_flight(scene):
    scene.campaign()
    _sending(scene, "pat-1")
    scene.clock.advance(minutes=3)
    assert scene.lifecycle().in_flight("camp-1") == 0
