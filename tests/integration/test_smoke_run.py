"""`python -m ops smoke` against the running local stack, as deploy.sh --verify runs it against a project: every
check passes, the exit code says so, and nothing of the smoke clinic is left in Firestore afterwards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.config import StackConfig

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHECK_LINE = re.compile(r"^(PASS|FAIL)  (\S.*?)  ")


def leftovers(db: Any, clinic_id: str) -> list[str]:
    """Every document, in any collection (and a slot offer's answers), that belongs to the clinic."""
    found = []
    for collection in db.collections():
        for snapshot in collection.stream():
            data = snapshot.to_dict() or {}
            if snapshot.id.startswith(clinic_id) or data.get("clinic_id") == clinic_id:
                found.append(snapshot.reference.path)
            for sub in snapshot.reference.collections():
                found += [f"{sub.id}/{answer.id}" for answer in sub.stream() if answer.id.startswith(clinic_id)]
    return found


def test_the_smoke_test_passes_every_check_and_leaves_nothing_behind(stack: StackConfig, sandbox, firestore_client):
    assert "TWILIO_TEST_ACCOUNT_SID" in stack.function_env(), (
        "the local stack gives its functions no Twilio test credentials: local/config.py function_env() needs "
        "TWILIO_TEST_ACCOUNT_SID / TWILIO_TEST_AUTH_TOKEN (local/sandbox/settings.py DEFAULT_TEST_*)"
    )
    done = subprocess.run(
        [sys.executable, "-m", "ops", "smoke", "--timeout", "120"],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    lines = [CHECK_LINE.match(line) for line in out.splitlines()]
    checks = {match.group(2).strip(): match.group(1) for match in lines if match}
    assert done.returncode == 0, out + done.stderr
    assert len(checks) >= 15 and set(checks.values()) == {"PASS"}, out
    assert {"seed", "retry sweep", "cleanup", "webhook twilio-status"} <= set(checks)
    clinic_id = re.search(r"^smoke test (smoke-[0-9a-f]+) on ", out, re.MULTILINE)
    assert clinic_id is not None, out
    assert leftovers(firestore_client, clinic_id.group(1)) == []
    assert "+15005550001" not in out and "+15005550006" not in out  # masked: +1******0001
