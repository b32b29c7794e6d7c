"""Settings fail fast naming the variable; local-only switches need the emulator; the clock can move."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from shared.platform.clock import SystemClock
from shared.platform.emulator import set_local_clock
from shared.platform.errors import ConfigError
from shared.platform.settings import Settings

BASE = {
    "GOOGLE_CLOUD_PROJECT": "p",
    "TASKS_LOCATION": "us-central1",
    "TASK_HANDLER_URL": "https://handler.example.com/",
    "TASKS_SERVICE_ACCOUNT": "tasks@p.iam.gserviceaccount.com",
}
EMULATOR = {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:1", "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:2"}


@pytest.mark.parametrize("missing", sorted(BASE))
def test_a_missing_variable_is_named(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


def test_a_malformed_integer_is_named():
    with pytest.raises(ConfigError, match="QUEUE_MAX_ATTEMPTS"):
        Settings.from_env({**BASE, "QUEUE_MAX_ATTEMPTS": "eight"})


def test_audience_defaults_to_the_handler_url():
    assert Settings.from_env(BASE).task_audience == BASE["TASK_HANDLER_URL"]


def test_local_clock_file_moves_now_only_on_the_emulator(tmp_path, monkeypatch):
    clock_file = tmp_path / "clock.json"
    eve_of_dst = datetime(2026, 10, 31, 16, 0, tzinfo=timezone.utc)
    set_local_clock(clock_file, eve_of_dst)
    monkeypatch.setenv("MEDSPA_CLOCK_FILE", str(clock_file))
    for name in EMULATOR:
        monkeypatch.delenv(name, raising=False)
    assert abs(SystemClock().now() - datetime.now(timezone.utc)) < timedelta(seconds=5)
    for name, value in EMULATOR.items():
        monkeypatch.setenv(name, value)
    assert abs(SystemClock().now() - eve_of_dst) < timedelta(seconds=5)
    set_local_clock(clock_file, None)
    assert abs(SystemClock().now() - datetime.now(timezone.utc)) < timedelta(seconds=5)


def test_one_clock_follows_every_move_of_the_file_it_caches(tmp_path, monkeypatch):
    clock_file = tmp_path / "clock.json"
    monkeypatch.setenv("MEDSPA_CLOCK_FILE", str(clock_file))
    for name, value in EMULATOR.items():
        monkeypatch.setenv(name, value)
    clock = SystemClock()  # one instance, as a function instance has: it re-reads the file only when it changes
    assert abs(clock.now() - datetime.now(timezone.utc)) < timedelta(seconds=5)
    for instant in (
        datetime(2026, 3, 8, 6, 30, tzinfo=timezone.utc),
        datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc),
    ):
        set_local_clock(clock_file, instant)
        assert abs(clock.now() - instant) < timedelta(seconds=5)
        assert abs(clock.now() - instant) < timedelta(seconds=5)  # the cached offset, still right
    clock_file.write_text("not json")  # rewritten in place, unreadable: real time, not the stale offset
    assert abs(clock.now() - datetime.now(timezone.utc)) < timedelta(seconds=5)
    set_local_clock(clock_file, None)
    assert abs(clock.now() - datetime.now(timezone.utc)) < timedelta(seconds=5)
