"""The pure pieces of the scale model (bench/limits.py): the 500/50/5 ramp and the queues that pace sends."""

from __future__ import annotations

import math

import pytest

from bench import limits


def test_the_ramp_starts_at_500_and_grows_by_half_every_five_minutes() -> None:
    assert limits.ramp_allowance(0) == 500
    assert limits.ramp_allowance(299) == 500
    assert limits.ramp_allowance(300) == 750
    assert limits.ramp_allowance(600) == 1125


def test_creating_on_a_cold_queue_takes_the_ramp_s_time() -> None:
    assert limits.seconds_to_create(500) == pytest.approx(1.0)
    # 150,000 in the first five minutes at 500/s, the rest at 750/s
    assert limits.seconds_to_create(180_000) == pytest.approx(300 + 30_000 / 750)
    assert limits.seconds_to_create(1_000, cap=100) == pytest.approx(10.0)


def test_a_burst_above_500_breaks_the_guidance_and_a_held_ramp_keeps_it() -> None:
    assert not limits.within_guidance([0, 501])
    held = [500.0] * 300 + [750.0] * 300 + [1125.0]
    assert limits.within_guidance(held)
    assert not limits.within_guidance([500.0] * 299 + [750.0])  # grown before five minutes at 500


def test_one_sender_sends_at_its_pace_and_counts_what_would_overflow() -> None:
    run = limits.pace_sender([0.0, 0.0, 0.0, 10.0], mps=1.0)
    assert run.sent == [0.0, 1.0, 2.0, 10.0]
    assert run.overflowed == 0
    burst = limits.pace_sender([0.0] * 3, mps=1 / (limits.TWILIO_QUEUE_LIMIT_S + 1))
    assert burst.overflowed == 2


def test_a_queue_dispatches_at_most_its_rate() -> None:
    assert limits.dispatch([0.0, 0.0, 5.0], rate=2.0) == [0.0, 0.5, 5.0]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert limits.percentile(values, 0.5) == 50
    assert limits.percentile(values, 0.99) == 99
    assert limits.percentile([], 0.99) == 0


def test_a_log_normal_latency_has_the_median_and_tail_it_was_given() -> None:
    sigma = limits.lognormal_sigma(0.035, 0.250)
    assert 0.035 * math.exp(2.3263478740408408 * sigma) == pytest.approx(0.250)
    assert limits.lognormal_mean(0.035, 0.250) > 0.035
