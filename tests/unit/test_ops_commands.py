"""python -m ops on an in-memory store: whole ids, ids by their beginning, real JSON types, one true
sentence per retry, and the way to the environment wherever the stack keeps it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ops.__main__ import main
from shared.platform import clients
from tests.builders import NOW
from tests.fakes import MemoryStore

KEY = "appointment_reminder-" + "ab" * 20  # 61 characters, as the ledger's keys are
OTHER = "appointment_reminder-" + "ac" * 20


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    """ops pointed at an in-memory store, as if GOOGLE_CLOUD_PROJECT named a real project."""
    memory = MemoryStore()
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "medspa-test")
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.setattr(clients, "store", lambda: memory)
    return memory


def failure(store: MemoryStore, doc_id: str = KEY, **fields) -> None:
    store.seed(
        f"failed_tasks/{doc_id}",
        {
            "task_type": "appointment_reminder",
            "error_code": "twilio_unavailable",
            "error": "twilio 503 (20503) for +15551234567",
            "http_status": 503,
            "attempts": 8,
            "clinic_id": "clinic-t",
            "status": "open",
            "note": None,
            "payload": {"appointment_id": "appt-1", "offset_hours": 24},
            "first_failed_at": NOW,
            "last_failed_at": NOW + timedelta(minutes=5),
            **fields,
        },
    )


def test_list_prints_whole_ids_that_show_accepts(store, capsys):
    failure(store)
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()[1].split()[0]
    assert listed == KEY
    assert main(["show", listed]) == 0


def test_show_accepts_the_unique_beginning_of_an_id(store, capsys):
    failure(store)
    failure(store, OTHER)
    assert main(["show", KEY[:24]]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == KEY


def test_an_ambiguous_beginning_is_refused_listing_the_ids_it_begins(store, capsys):
    failure(store)
    failure(store, OTHER)
    assert main(["show", "appointment_reminder-a"]) == 1
    err = capsys.readouterr().err
    assert KEY in err and OTHER in err and "more than one" in err


def test_retry_by_a_unique_beginning_marks_that_failure(store, capsys):
    failure(store)
    assert main(["retry", KEY[:30]]) == 0
    assert store.doc(f"failed_tasks/{KEY}")["status"] == "retry"
    assert capsys.readouterr().out.strip() == f"failed task {KEY} marked retry: the next sweep re-enqueues it"


def test_show_prints_numbers_booleans_and_timestamps_as_json_types(store, capsys):
    failure(store, smoke_test=True)
    assert main(["show", KEY]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["attempts"] == 8 and shown["http_status"] == 503 and shown["smoke_test"] is True
    assert shown["note"] is None and shown["payload"] == {"appointment_id": "appt-1", "offset_hours": 24}
    assert shown["last_failed_at"] == (NOW + timedelta(minutes=5)).isoformat()
    assert "+15551234567" not in shown["error"] and "4567" in shown["error"]


def test_retry_of_a_failure_already_retried_says_so_in_one_sentence(store, capsys):
    failure(store, status="retried")
    assert main(["retry", KEY]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"failed task {KEY} is retried, not marked retry: the sweep already re-enqueued it"
    ]
    assert store.doc(f"failed_tasks/{KEY}")["status"] == "retried"


def test_retry_of_an_unknown_id_says_only_that(store, capsys):
    assert main(["retry", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().splitlines() == [
        "no failed task nope (by id or the beginning of one)"
    ]


def test_retry_all_open_counts_what_it_marked(store, capsys):
    failure(store)
    failure(store, OTHER, error_code="invalid_number")
    assert main(["retry", "--all-open", "--error-code", "twilio_unavailable"]) == 0
    assert capsys.readouterr().out.strip() == "1 of 1 open failed task(s) marked retry"
    assert store.doc(f"failed_tasks/{OTHER}")["status"] == "open"


def test_without_a_project_ops_names_the_env_file_of_the_state_dir_in_use(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.setenv("MEDSPA_STATE_DIR", str(tmp_path / "stack-b"))
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert f". {tmp_path / 'stack-b' / 'env.sh'}" in err and ".local/env.sh" not in err


def test_without_a_project_or_state_dir_ops_names_the_default_env_file(monkeypatch, capsys):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("MEDSPA_STATE_DIR", raising=False)
    assert main(["list"]) == 2
    assert "`. .local/env.sh`" in capsys.readouterr().err


def test_help_describes_ops_in_whole_sentences(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    description = " ".join(capsys.readouterr().out.split("\n\n")[1].split())
    assert description.endswith("without messaging any patient.")


# --------------------------------------------------------------------------------- campaign report

CAMPAIGN_SENT = datetime(2026, 3, 2, 15, tzinfo=timezone.utc)


def campaign(store: MemoryStore) -> None:
    store.seed("campaigns/camp-1", {"clinic_id": "c1", "name": "Spring", "status": "done"})
    store.seed(
        "notifications/campaign_message-" + "a" * 40,
        {
            "kind": "campaign_message",
            "campaign_id": "camp-1",
            "patient_id": "p1",
            "state": "delivered",
            "sent_at": CAMPAIGN_SENT,
        },
    )


def test_campaign_report_before_a_build_says_how_to_build_it(store, capsys):
    campaign(store)
    assert main(["campaign", "report", "camp-1"]) == 1
    assert "--rebuild" in capsys.readouterr().err


def test_campaign_report_rebuild_stores_the_report_and_prints_its_figures(store, capsys):
    campaign(store)
    assert main(["campaign", "report", "camp-1", "--rebuild"]) == 0
    printed = json.loads(capsys.readouterr().out)["report"]
    assert (printed["campaign_id"], printed["sent"], printed["delivered"]) == ("camp-1", 1, 1)
    assert store.docs("campaign_reports")["camp-1"]["delivered"] == 1
    assert main(["campaign", "report", "camp-1"]) == 0
    assert json.loads(capsys.readouterr().out)["report"]["delivered"] == 1


def test_campaign_report_of_an_unknown_campaign_is_an_error_naming_its_code(store, capsys):
    assert main(["campaign", "report", "camp-none", "--rebuild"]) == 1
    assert "campaign_missing" in capsys.readouterr().err
