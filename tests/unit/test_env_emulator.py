"""Environment parsing fails by name; local-only switches exist only on the emulators; the clock file is
re-read only when it changes (a stat per request, not a parse)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone

import pytest

from shared.platform import emulator
from shared.platform import env as envvars
from shared.platform.errors import ConfigError

EMULATORS = {"FIRESTORE_EMULATOR_HOST": "127.0.0.1:1", "CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:2"}


def test_text_and_required_strip_and_default():
    assert envvars.text({"A": "  x "}, "A") == "x" and envvars.text({"A": "  "}, "A", "d") == "d"
    assert envvars.required({"A": " v "}, "A") == "v"
    with pytest.raises(ConfigError, match="B.*from somewhere"):
        envvars.required({"B": " "}, "B", " (from somewhere)")
    assert envvars.environ() is os.environ and envvars.environ({"A": "1"}) == {"A": "1"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", 5),
        ("7", 7),
        (" 3 ", 3),
        ("0", "between"),
        ("11", "between"),
        ("eight", "must be an integer"),
        ("1.5", "integer"),
    ],
)
def test_integer_variables_are_bounded_and_named(raw, expected):
    if isinstance(expected, int):
        assert envvars.integer({"N": raw}, "N", 5, minimum=1, maximum=10) == expected
    else:
        with pytest.raises(ConfigError, match=f"N.*{expected}"):
            envvars.integer({"N": raw}, "N", 5, minimum=1, maximum=10)


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 2.5), ("0.1", 0.1), ("-1", "at least"), ("nan", "at least"), ("soon", "a number")]
)
def test_number_variables_refuse_nan_and_name_the_variable(raw, expected):
    if isinstance(expected, float):
        assert envvars.number({"T": raw}, "T", 2.5) == expected
    else:
        with pytest.raises(ConfigError, match=f"T.*{expected}"):
            envvars.number({"T": raw}, "T", 2.5)


def test_a_huge_malformed_value_is_quoted_short():
    with pytest.raises(ConfigError) as caught:
        envvars.integer({"N": "x" * 10_000}, "N", 1)
    assert len(str(caught.value)) < 120


def test_switches_need_every_emulator_variable():
    assert not emulator.on_emulator({}) and not emulator.on_emulator({"FIRESTORE_EMULATOR_HOST": "h:1"})
    assert emulator.on_emulator(EMULATORS)
    assert emulator.tasks_emulator_host(EMULATORS) == "127.0.0.1:2" and emulator.tasks_emulator_host({}) is None
    assert emulator.sandbox_url({**EMULATORS, "PROVIDER_SANDBOX_URL": "http://127.0.0.1:9/ "}) == "http://127.0.0.1:9"
    assert emulator.sandbox_url({}) is None
    with pytest.raises(ConfigError, match="refusing"):
        emulator.sandbox_url({"PROVIDER_SANDBOX_URL": "http://127.0.0.1:9"})


@pytest.fixture
def on_emulator(monkeypatch):
    for name, value in EMULATORS.items():
        monkeypatch.setenv(name, value)


def test_the_clock_file_is_read_again_only_when_it_changes(tmp_path, monkeypatch, on_emulator):
    path = tmp_path / "clock.json"
    monkeypatch.setenv("MEDSPA_CLOCK_FILE", str(path))
    clock = emulator.ClockFile()
    assert clock.offset() == timedelta(0)  # no file yet
    ahead = datetime.now(timezone.utc) + timedelta(hours=22, minutes=30)
    emulator.set_local_clock(path, ahead)
    first = clock.offset()
    assert abs(first - timedelta(hours=22, minutes=30)) < timedelta(seconds=5)
    # Rewritten in place with its old stamp (same inode, mtime and size): the cached offset stands, no parse.
    stat = path.stat()
    other = json.dumps({"base": (ahead - timedelta(days=3)).isoformat(), "set_at": int(time.time())})
    assert len(other) <= stat.st_size
    path.write_text(other.ljust(stat.st_size))  # JSON allows the trailing blanks
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and clock.offset() == first
    # set_local_clock replaces the file (a new inode): read again.
    behind = datetime.now(timezone.utc) - timedelta(hours=13)
    emulator.set_local_clock(path, behind)
    assert abs(clock.offset() + timedelta(hours=13)) < timedelta(seconds=5)
    emulator.set_local_clock(path, None)
    assert clock.offset() == timedelta(0) and not path.exists()


def test_the_clock_file_is_ignored_off_the_emulator(tmp_path, monkeypatch):
    path = tmp_path / "clock.json"
    emulator.set_local_clock(path, datetime.now(timezone.utc) + timedelta(days=3))
    monkeypatch.setenv("MEDSPA_CLOCK_FILE", str(path))
    for name in EMULATORS:
        monkeypatch.delenv(name, raising=False)
    assert emulator.ClockFile().offset() == timedelta(0)


@pytest.mark.parametrize(
    "content", ["", "{", "[]", '{"base": "soon", "set_at": 1}', '{"base": "2026-01-01T00:00:00+00:00"}']
)
def test_an_unreadable_clock_file_means_real_time(tmp_path, content):
    path = tmp_path / "clock.json"
    path.write_text(content)
    assert emulator.read_clock_offset(path) == timedelta(0)
    assert emulator.read_clock_offset(tmp_path / "missing.json") == timedelta(0)


def test_the_local_clock_needs_an_aware_instant(tmp_path):
    with pytest.raises(ValueError, match="aware"):
        emulator.set_local_clock(tmp_path / "clock.json", datetime(2026, 1, 1))
