"""`python -m local.demo --quick` tells the whole story on the test stack, with numbers that add up: read from
the structured summary it prints last (`DEMO_SUMMARY {...}`), never from its prose."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from local import seed
from local.demo import SUMMARY_PREFIX

pytestmark = pytest.mark.integration

STEPS = (
    "Seeded",
    "Planned",
    "Dispatched",
    "Recorded",
    "Retried by the operator",
    "Waitlist",
    "Confirmed by text",
    "Reported",
    "Campaign",
    "Follow-ups",
    "Group booking",
    "Rebooking",
    "Recovered",
)


def summary(out: str) -> dict[str, Any]:
    """The demo's last line, parsed."""
    last = out.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith(SUMMARY_PREFIX), f"the demo's last line is not its summary: {last!r}"
    parsed: dict[str, Any] = json.loads(last[len(SUMMARY_PREFIX) :])
    return parsed


def test_the_quick_demo_tells_every_step_and_its_numbers_add_up(quick_demo: subprocess.CompletedProcess[str]) -> None:
    out = quick_demo.stdout
    assert quick_demo.returncode == 0, out[-3000:] + quick_demo.stderr[-3000:]
    figures = summary(out)

    assert [step["name"] for step in figures["steps"]] == list(STEPS)
    assert all(step["page"].startswith("/") for step in figures["steps"])  # every step names its console page
    assert figures["clinics"] == len(seed.CLINIC_SPECS)
    assert figures["patients"] == seed.PATIENTS_PER_CLINIC * len(seed.CLINIC_SPECS)
    assert figures["planned"] == figures["not_sent"] + figures["to_send"]
    assert figures["delivered"] == figures["delivered_sms"] + figures["delivered_email"]
    assert figures["delivered"] + figures["failed"] == figures["to_send"]
    assert figures["outage_met"] == figures["recovered"] + figures["gave_up"]
    assert figures["gave_up"] == figures["failed"] >= 1
    assert figures["failed_tasks_open"] == figures["ledger_failed"] == figures["failed"]
    assert figures["retried"] == figures["retried_delivered"] == figures["failed"]
    assert figures["delivered_in_the_end"] == figures["to_send"] and figures["duplicates"] == 0
    assert re.fullmatch(r"wl-[0-9a-f]+", figures["waitlist_booked_appointment"])
    assert figures["waitlist_offered"] >= 1
    assert (figures["confirmed_status"], figures["confirmed_via"]) == ("confirmed", "sms")
    assert figures["reports"] == figures["clinics"]
    assert figures["managers"] == figures["report_emails_delivered"] == 2 * len(seed.CLINIC_SPECS)  # manager, desk
    # one JOIN and four booking-form consents, one of them revoked by text: four recipients, each messaged once
    assert figures["campaign_recipients"] == figures["campaign_sent"] == figures["campaign_messages_seen"] == 4
    assert figures["campaign_delivered"] == 4 and figures["campaign_excluded"] >= 1 and figures["campaign_clicks"] == 1
    # a party of three: two "starting soon" texts, the seat cancelled before it was due skipped
    assert (figures["group_seats"], figures["group_sent"], figures["group_seat_cancelled"]) == (3, 2, 1)
    # 90 days on: one nudge (consent), one skipped (booked again since), one "we missed you"
    assert (figures["rebook_nudges_sent"], figures["rebook_skipped_rebooked"], figures["no_show_messages_sent"]) == (
        1,
        1,
        1,
    )
    # an abandoned booking: one nudge at once, its restore link followed, then completed (docs/booking-recovery.md)
    assert figures["booking_nudged"] == figures["booking_recovered"] == 1
    # two surveys and a check-in planned by one tick; a 5 gets the review link once, a 1 emails both managers
    assert figures["feedback_surveys"] == 2 and figures["feedback_review_links"] == 1
    assert figures["feedback_low_alerts"] == 2


def test_the_quick_demo_names_clinics_and_never_a_patient(quick_demo: subprocess.CompletedProcess[str]) -> None:
    out = quick_demo.stdout
    assert quick_demo.returncode == 0, out[-3000:] + quick_demo.stderr[-3000:]
    assert "()" not in out and "clinic-" not in out  # clinic names, never ids; no empty counts
    assert all(spec.name in out for spec in seed.CLINIC_SPECS)
    assert not re.search(r"\+\d{8,}", out) and "@" not in out  # numbers masked, no address
