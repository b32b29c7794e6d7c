"""The Cloud Tasks wrapper's queue rates: a queue's dispatches start at most N a second, as max_dispatches_per_second
holds them in the cloud; a queue without a rate is not held back."""

from __future__ import annotations

import pytest

from local import config as stack_config
from local.tasks_emulator import Pacer, command, parse_rates


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_rated_queue_spaces_its_dispatch_starts() -> None:
    clock = FakeClock()
    pacer = Pacer({"campaigns": 4.0}, clock)
    starts = []
    for _ in range(5):
        wait = pacer.wait("campaigns")
        clock.now += wait  # the queue's thread sleeps, then dispatches
        starts.append(clock.now)
    gaps = [round(b - a, 6) for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps == [0.25, 0.25, 0.25, 0.25]


def test_an_idle_queue_does_not_bank_a_burst() -> None:
    clock = FakeClock()
    pacer = Pacer({"campaigns": 2.0}, clock)
    assert pacer.wait("campaigns") == 0.0
    clock.now += 10.0  # idle for ten seconds
    assert pacer.wait("campaigns") == 0.0
    assert pacer.wait("campaigns") == pytest.approx(0.5)


def test_a_queue_without_a_rate_never_waits() -> None:
    pacer = Pacer({"campaigns": 1.0}, FakeClock())
    assert [pacer.wait("reminders-sms") for _ in range(3)] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("value", ["campaigns", "campaigns=0", "=3", "campaigns=-1"])
def test_a_malformed_rate_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="QUEUE=N"):
        parse_rates([value])


def test_the_stacks_rates_reach_the_emulators_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("local.tasks_emulator.ensure_venv", lambda: "python")
    config = stack_config.load({"MEDSPA_QUEUE_RATES": "campaigns=2.5, waitlist=1"})
    argv = command(config, ("campaigns",), 8)
    rates = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--rate"]
    assert rates == ["campaigns=2.5", "waitlist=1"]
    assert parse_rates(rates) == {"campaigns": 2.5, "waitlist": 1.0}


def test_a_bad_rate_setting_stops_the_stack_with_its_name() -> None:
    with pytest.raises(SystemExit, match="MEDSPA_QUEUE_RATES"):
        stack_config.load({"MEDSPA_QUEUE_RATES": "campaigns=fast"})
