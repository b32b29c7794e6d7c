"""Ports for a second local stack started by a test, derived from the running stack's MEDSPA_PORT_BASE.

Each developer's (and CI's) stack owns the hundred ports above its MEDSPA_PORT_BASE and uses +1…+45 of
them (at most +49: local/config.py), so a test's second stack at +50…+95 stays clear of it and of every other
stack on the machine: a fixed range would collide with whoever else runs a stack there.
"""

from __future__ import annotations

import socket

from local import config as stack_config
from local.components import stack_ports
from local.config import StackConfig
from local.standins import is_listening

OFFSETS = (50, 40, 60, 35, 65)


def spare_port_base(running: StackConfig) -> int:
    """A MEDSPA_PORT_BASE inside the running stack's block whose whole layout is free."""
    base = running.firestore_port - 1  # the layout: Firestore at +1
    used = set(stack_ports(running))
    span = max(used) - base
    for offset in OFFSETS:
        if offset <= span or offset + span >= 100:
            continue
        ports = stack_ports(stack_config.load({"MEDSPA_PORT_BASE": str(base + offset)}))
        if not used.intersection(ports) and not any(is_listening(running.host, port) for port in ports):
            return base + offset
    raise AssertionError(f"no free MEDSPA_PORT_BASE inside {base}…{base + 99} for a second stack")


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nothing listens on right now (the OS's choice; free until someone binds it)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
