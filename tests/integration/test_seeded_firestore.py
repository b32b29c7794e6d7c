"""`python -m local.seed` against the local Firestore emulator, read back with the official client.

Uses the `stack` and `clean_firestore` fixtures of tests/conftest.py: the stack provides the emulator
(and its environment, see local/config.py `function_env()`), clean_firestore an empty database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from local import seed
from shared.platform import clients

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

NOW = "2026-10-31T15:00:00Z"  # the eve of New York's fall-back day
UTC = timezone.utc
NEEDED = ("GOOGLE_CLOUD_PROJECT", "FIRESTORE_EMULATOR_HOST", "CLOUD_TASKS_EMULATOR_HOST")


@pytest.fixture
def seed_env(stack, clean_firestore, monkeypatch):
    """The emulator environment in this process (for main() and the client) and for a CLI subprocess."""
    for holder in (stack, getattr(stack, "config", None)):
        function_env = getattr(holder, "function_env", None)
        if callable(function_env):
            for name, value in function_env().items():
                if name in NEEDED:
                    monkeypatch.setenv(name, value)
            break
    missing = [name for name in NEEDED if not os.environ.get(name)]
    assert not missing, f"the stack fixture left {', '.join(missing)} unset"
    clients.reset()
    yield dict(os.environ)
    clients.reset()


def counts(client) -> dict[str, int]:
    return {name: sum(1 for _ in client.collection(name).stream()) for name in seed.SEEDED_COLLECTIONS}


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "local.seed", "--now", NOW, "--seed", "7", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_seed_writes_the_contract_and_a_rerun_overwrites(seed_env, capsys):
    from shared.contract.models import Appointment, Clinic, Patient, WaitlistEntry

    expected = seed.build_demo_data(datetime(2026, 10, 31, 15, 0, tzinfo=UTC), seed=7)
    expected_counts = {name: len(docs) for name, docs in expected.items()}

    assert seed.main(["--reset", "--now", NOW, "--seed", "7"]) == 0
    client = clients.firestore()
    assert counts(client) == expected_counts

    # Every document reads back as written and still parses as the contract.
    parsers = {
        "clinics": Clinic.from_doc,
        "patients": Patient.from_doc,
        "appointments": Appointment.from_doc,
        "waitlist": WaitlistEntry.from_doc,
    }
    for name, parse in parsers.items():
        for snapshot in client.collection(name).stream():
            fields = snapshot.to_dict()
            assert fields is not None, snapshot.id
            parse(snapshot.id, fields)
            want = expected[name][snapshot.id]
            assert set(fields) == set(want), snapshot.id
            for key, value in want.items():
                if isinstance(value, datetime):  # comes back as DatetimeWithNanoseconds, UTC
                    assert fields[key] == value and fields[key].utcoffset().total_seconds() == 0, (snapshot.id, key)
                else:
                    assert fields[key] == value, (snapshot.id, key)

    printed = capsys.readouterr().out
    assert "clinic-nyc" in printed and "2026-11-01" in printed

    # A re-run (the CLI as a user runs it) overwrites: same counts, a stray doc survives without --reset.
    client.collection("appointments").document("appt-stray").set({"clinic_id": "clinic-nyc", "status": "booked"})
    out = run_cli(seed_env)
    assert counts(client) == {**expected_counts, "appointments": expected_counts["appointments"] + 1}
    for patient in expected["patients"].values():
        for key in ("first_name", "last_name", "phone", "email"):
            if patient[key]:
                assert patient[key] not in out, key

    # --reset removes everything in the seeded collections first.
    run_cli(seed_env, "--reset")
    assert counts(client) == expected_counts
    assert not client.collection("appointments").document("appt-stray").get().exists
