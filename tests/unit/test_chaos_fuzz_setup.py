"""make chaos and make fuzz find their stacks where the developer's environment says: chaos in a free block
of MEDSPA_PORT_BASE's ports with its state under MEDSPA_STATE_DIR, fuzz only against a healthy stack."""

from __future__ import annotations

import pytest

from local import config as stack_config
from local.components import stack_ports
from local.processes import ProcessDir
from tests import chaos, fuzz

BASE = 9700  # no stack of this suite runs in this block; nothing here starts one


def test_chaos_puts_its_stack_in_a_free_block_of_your_port_base_and_its_state_under_yours(tmp_path):
    port_base, state_dir = chaos.default_stack({"MEDSPA_PORT_BASE": str(BASE), "MEDSPA_STATE_DIR": str(tmp_path)})
    yours = set(stack_ports(stack_config.load({"MEDSPA_PORT_BASE": str(BASE)})))
    its = set(stack_ports(stack_config.load({"MEDSPA_PORT_BASE": str(port_base)})))
    assert BASE < port_base and max(its) < BASE + 100 and not yours & its
    assert state_dir == tmp_path / "chaos-stack"


def test_chaos_takes_the_port_base_it_is_given(tmp_path):
    env = {"MEDSPA_PORT_BASE": str(BASE), "MEDSPA_STATE_DIR": str(tmp_path), "MEDSPA_CHAOS_PORT_BASE": "9850"}
    assert chaos.default_stack(env)[0] == 9850


def test_fuzz_refuses_in_one_line_when_the_stack_is_down_and_starts_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MEDSPA_PORT_BASE", str(BASE))
    monkeypatch.setenv("MEDSPA_STATE_DIR", str(tmp_path))
    assert fuzz.main(["--bodies", "3", "--callbacks", "0", "--events", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert "not up" in line and str(BASE + 1) in line and "--start-stack" in line
    assert ProcessDir(tmp_path).names() == []


@pytest.mark.parametrize("bad", ["94OO", "-"])
def test_chaos_names_a_malformed_port_base(monkeypatch, tmp_path, capsys, bad):
    monkeypatch.setenv("MEDSPA_CHAOS_PORT_BASE", bad)
    monkeypatch.setenv("MEDSPA_STATE_DIR", str(tmp_path))
    assert chaos.main([]) == 2
    assert "MEDSPA_CHAOS_PORT_BASE" in capsys.readouterr().err
