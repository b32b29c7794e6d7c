"""A campaign through the real local stack: documents on the Firestore emulator, its plan, batches and
messages as Cloud Tasks run by the task handler, every SMS through the Twilio sandbox (tests/campaign_live.py).

The stack's clock is set to a weekday evening ahead (tests/campaign_live.py stack_instant) and the recipients'
numbers are in five states: New York, Florida, Texas and California are open then, so their messages are due at
once and the local campaigns queue runs them at its rate; Rhode Island closed at 18:00 and stays closed past the
campaign's six hours, so its recipients get nothing (skipped "window_ended"), checked against a table of the
states' hours written in the test, not read from the code. Each test has its own clinic and sender number;
bench/campaign_run.py runs the same at 10,000.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from local.config import StackConfig
from local.processes import wait_until
from shared.campaigns.model import Status
from shared.campaigns.tasks import message_key
from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.emulator import set_local_clock
from shared.platform.settings import settings
from shared.wiring.services import Services
from tests.campaign_live import STOP_LINE, LiveCampaign, stack_instant

pytestmark = pytest.mark.integration

RECIPIENTS = 300
WAIT = 90.0


@pytest.fixture
def live(stack: StackConfig, firestore_client) -> Iterator[LiveCampaign]:
    """A scheduled campaign of RECIPIENTS, on the stack's clock moved to a weekday evening; afterwards the
    clock is real again and the campaign queues are empty (no finish check runs against a later test)."""
    clock = stack.state_dir / "clock.json"
    start = stack_instant()
    set_local_clock(clock, start)
    campaign = LiveCampaign(firestore_client, Services(settings(), system_clock), RECIPIENTS, start)
    campaign.schedule()
    yield campaign
    set_local_clock(clock, None)
    for queue in (settings().queue_campaigns, settings().queue_campaign_planning):
        clients.tasks().purge_queue(name=stack.queue_path(queue))


def test_each_consenting_recipient_is_messaged_once_inside_their_window_and_the_campaign_ends_done(live, sandbox):
    lifecycle = live.services.campaign_lifecycle
    assert wait_until(lambda: lifecycle.read(live.campaign_id).status == Status.DONE, WAIT), len(live.sent(sandbox))
    sent = live.sent(sandbox)
    assert live.closed and sorted(m["to"] for m in sent) == live.reachable()  # each reachable one exactly once
    assert not {m["to"] for m in sent} & (live.excluded | live.closed)
    assert live.outside_window(sent) == []
    closed_keys = {message_key(live.campaign_id, p) for p, phone in live.consenting.items() if phone in live.closed}
    assert {e.reason for e in live.ledger() if e.key in closed_keys} == {"window_ended"}
    assert all(m["body"].endswith(STOP_LINE) for m in sent)
    assert live.sent_by_ledger() == {m["id"] for m in sent}
    campaign = lifecycle.read(live.campaign_id)
    assert campaign.planned == RECIPIENTS and campaign.estimate is not None
    assert campaign.estimate.recipients == RECIPIENTS


def test_a_cancel_half_way_stops_the_campaign_and_nothing_is_sent_after_its_acknowledgement(live, sandbox):
    assert wait_until(lambda: len(live.sent(sandbox)) >= RECIPIENTS // 3, WAIT)
    lifecycle = live.services.campaign_lifecycle
    ack = lifecycle.cancel(live.campaign_id, by="test")
    assert ack.settled and ack.acknowledged_at is not None
    # every message task still queued runs, finds the campaign cancelled and skips: nothing is left pending
    assert wait_until(lambda: lifecycle.pending(live.campaign_id) == 0, WAIT), lifecycle.pending(live.campaign_id)
    sent = live.sent(sandbox)
    assert RECIPIENTS // 3 <= len(sent) < len(live.reachable())  # it stopped half-way
    assert live.outside_window(sent) == []
    assert all(datetime.fromisoformat(m["created_at"]) <= ack.acknowledged_at for m in sent)
    assert live.sent_by_ledger() == {m["id"] for m in sent}  # the sandbox's messages are exactly the ledger's
    skipped = [e for e in live.ledger() if e.state == "skipped"]
    assert skipped and {e.reason for e in skipped} == {"campaign_cancelled", "window_ended"}
    assert len(sent) + len(skipped) == RECIPIENTS
