"""`python -m local.demo --quick` tells the whole story on the test stack, with numbers that add up."""

from __future__ import annotations

import re
import subprocess

import pytest

from local import seed

pytestmark = pytest.mark.integration

STEPS = ("Seeded", "Planned", "Dispatched", "Recorded", "Retried by the operator", "Waitlist", "Confirmed", "Reported")


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text, re.M)
    assert found, f"{pattern!r} not in the demo's output"
    return int(found.group(1))


def test_the_quick_demo_tells_every_step_and_its_numbers_add_up(quick_demo: subprocess.CompletedProcess[str]) -> None:
    out = quick_demo.stdout
    assert quick_demo.returncode == 0, out[-3000:] + quick_demo.stderr[-3000:]
    for index, step in enumerate(STEPS, 1):
        assert re.search(rf"^{index}\. {step}", out, re.M), step
    assert out.count("   console: http://") == len(STEPS)  # every step names its page
    assert "()" not in out and "clinic-" not in out  # clinic names, never ids; no empty counts
    assert all(spec.name in out for spec in seed.CLINIC_SPECS)
    assert not re.search(r"\+\d{8,}", out) and "@" not in out  # numbers masked, no address

    planned = number(r"planned (\d+) messages", out)
    not_sent = number(r"^ +total .* (\d+)$", out)
    to_send = number(r"to send: (\d+) \(by SMS", out)
    assert planned == not_sent + to_send
    delivered = number(r"delivered (\d+): \d+ SMS", out)
    by_channel = re.search(r"delivered \d+: (\d+) SMS .*?, (\d+) emails", out)
    assert by_channel, "the delivered line is not in the demo's output"
    sms, email = (int(n) for n in by_channel.groups())
    failed = number(r"\d+ to send: delivered \d+, failed (\d+)", out)
    assert delivered == sms + email and delivered + failed == to_send
    met = number(r"the outage met (\d+) SMS", out)
    recovered = number(r"(\d+) got through on a later attempt", out)
    gave_up = number(r"(\d+) gave up after", out)
    assert met == recovered + gave_up and gave_up == failed >= 1
    assert number(r"failed_tasks: (\d+) open", out) == failed
    assert number(r"their messages now: delivered (\d+)", out) == failed
    assert number(r"exactly once: (\d+) messages delivered", out) == to_send
    assert re.search(r"exactly once: \d+ messages delivered, 0 of them", out)
    assert re.search(r"slot filled: appointment wl-[0-9a-f]+ booked", out)
    assert "booked → confirmed (confirmed_via sms)" in out
    managers = sum(2 for _ in seed.CLINIC_SPECS)  # every demo clinic has a manager and a front desk
    assert f"emailed to {managers} managers: delivered {managers}" in out
    assert re.search(r"^== the story took .*: Seeded \d+ s", out, re.M)
