"""python -m ops consent record|show on an in-memory store: the platform event's checks and owner."""

from __future__ import annotations

import json

import pytest

from ops.__main__ import main
from shared.consent.consents import Consents, Purpose
from shared.platform import clients
from tests.builders import NOW
from tests.fakes import FixedClock, MemoryStore


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    memory = MemoryStore()
    memory.seed("patients/p1", {"clinic_id": "c1", "first_name": "Zelda"})
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "medspa-test")
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(clients, "store", lambda: memory)
    return memory


GRANT = ["consent", "record", "--patient", "p1", "--clinic", "c1", "--purpose", "marketing"]
IMPORTED = [*GRANT, "--source", "import", "--wording-version", "paper-2024", "--at", "2025-03-01T10:00:00-05:00"]


def test_an_import_run_twice_records_once(store, capsys):
    assert main(IMPORTED) == 0
    assert main(IMPORTED) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (first["consent"], second["consent"]) == ("recorded", "replayed")
    assert first["event_id"] == second["event_id"] and first["event_id"].startswith("import-")
    assert Consents(store, FixedClock(NOW)).current("p1").allows_marketing()


def test_a_grant_without_its_wording_is_refused_with_its_code(store, capsys):
    assert main(GRANT) == 1
    assert "bad_wording" in capsys.readouterr().err
    assert store.docs("consents") == {}


def test_another_clinics_patient_is_refused(store, capsys):
    assert main([*IMPORTED[:5], "c2", *IMPORTED[6:]]) == 1
    assert "clinic_mismatch" in capsys.readouterr().err


def test_show_prints_the_current_state_and_the_history(store, capsys):
    main(IMPORTED)
    main(["consent", "record", "--patient", "p1", "--clinic", "c1", "--purpose", "marketing", "--status", "revoked"])
    capsys.readouterr()
    assert main(["consent", "show", "--patient", "p1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["current"]["sms_marketing"]["status"] == "revoked"
    assert [event["status"] for event in shown["history"]] == ["granted", "revoked"]
    assert [event["source"] for event in shown["history"]] == ["import", "front_desk"]
    assert Consents(store, FixedClock(NOW)).current("p1").revoked(Purpose.MARKETING, "sms")


def test_show_of_a_patient_never_recorded_says_so_by_its_exit_code(store, capsys):
    assert main(["consent", "show", "--patient", "p9"]) == 1
    assert json.loads(capsys.readouterr().out)["history"] == []
