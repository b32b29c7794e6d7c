"""The chaos run and the HTTP fuzz campaign in a reduced size, so every CI run keeps them honest
(`make chaos` and `make fuzz` run them full size)."""

from __future__ import annotations

import math

import pytest

from local import config as stack_config
from local import stack as local_stack
from local.components import stack_ports
from local.config import StackConfig
from local.processes import ProcessDir
from local.standins import is_listening
from tests import chaos, fuzz
from tests.spare_ports import spare_port_base

pytestmark = pytest.mark.integration


def test_generated_hostile_requests_never_get_a_5xx_a_hang_or_a_traceback(stack: StackConfig) -> None:
    # No timed verdict (a busy CI machine is slow at random): a hang still fails, as a request that gets no
    # answer within the campaign's request timeout.
    assert fuzz.run(bodies=800, callbacks=200, events=60, seed=11, config=stack, slow_seconds=math.inf) == 0


SMALL_FUZZ = ["--bodies", "30", "--callbacks", "10", "--events", "3", "--slow-seconds", "inf"]


def test_fuzz_leaves_running_the_stack_it_found_running(stack: StackConfig) -> None:
    assert fuzz.main(["--start-stack", *SMALL_FUZZ]) == 0
    assert local_stack.healthy(stack)


def test_fuzz_stops_the_stack_it_started(stack: StackConfig, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MEDSPA_PORT_BASE", str(spare_port_base(stack)))
    monkeypatch.setenv("MEDSPA_STATE_DIR", str(tmp_path / "fuzz-stack"))
    assert fuzz.main(["--start-stack", *SMALL_FUZZ]) == 0
    started = stack_config.load()
    assert ProcessDir(started.state_dir).names() == []
    assert not [port for port in stack_ports(started) if is_listening(started.host, port)]


def test_a_small_chaos_run_loses_nothing_sends_nothing_twice_and_leaks_no_phi(stack: StackConfig, tmp_path) -> None:
    # A stack of its own (functions are killed and restarted), inside the suite's block of ports.
    code = chaos.main(
        [
            "--clinics",
            "2",
            "--appointments",
            "15",
            "--handler-kills",
            "2",
            "--timeout",
            "240",
            "--port-base",
            str(spare_port_base(stack)),
            "--state-dir",
            str(tmp_path / "chaos"),
        ]
    )
    assert code == 0
