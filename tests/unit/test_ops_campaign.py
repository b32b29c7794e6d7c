"""python -m ops campaign on an in-memory store: create prints the audience, segments and cost; an unknown
merge field is refused before anything is stored; the verbs move the campaign and a cancel is acknowledged."""

from __future__ import annotations

import json

import pytest

from ops import campaign as campaign_cli
from ops.__main__ import main
from shared.platform.settings import Settings
from shared.wiring.services import Services
from tests.campaign_support import Scene

ENV = {
    "GOOGLE_CLOUD_PROJECT": "medspa-test",
    "TASKS_LOCATION": "us-central1",
    "TASK_HANDLER_URL": "https://handler.example.com",
    "TASKS_SERVICE_ACCOUNT": "tasks@medspa-test.iam.gserviceaccount.com",
}
CREATE = [
    "campaign",
    "create",
    "--clinic",
    "clinic-t",
    "--id",
    "camp-9",
    "--template",
    "Hi {first_name}, 20% off at {clinic_name}: {link}",
    "--link",
    "https://g.example/x",
    "--start",
    "2026-11-25T12:00:00+00:00",
    "--end",
    "2026-11-27T12:00:00+00:00",
]


@pytest.fixture
def scene(monkeypatch: pytest.MonkeyPatch) -> Scene:
    """ops wired to a Scene's in-memory store and recording queue, as if GOOGLE_CLOUD_PROJECT named a project."""
    scene = Scene()
    scene.clinic(marketing={"price_per_segment_cents": 0.79})
    wired = Services(Settings.from_env(ENV), scene.clock)
    wired.__dict__.update(store=scene.store, tasks=scene.queue)
    monkeypatch.setattr(campaign_cli, "_services", lambda: wired)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "medspa-test")
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    return scene


def test_create_prints_the_audience_the_segments_and_the_cost(scene, capsys):
    for n in range(3):
        scene.consenting(f"p-{n}")
    scene.patient("p-no-consent")
    assert main(CREATE) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["campaign"] == "camp-9" and out["status"] == "draft"
    estimate = out["estimate"]
    assert (estimate["recipients"], estimate["excluded"], estimate["encoding"]) == (
        3,
        {"no_marketing_consent": 1},
        "GSM-7",
    )
    assert (estimate["segments"], estimate["cost_cents"]) == (1, 3)  # 1 × 3 × 0.79, rounded up
    assert scene.store.doc("campaigns/camp-9")["estimate"]["recipients"] == 3


def test_an_unknown_merge_field_is_refused_and_nothing_is_stored(scene, capsys):
    args = [*CREATE]
    args[args.index("--template") + 1] = "Hi {name}"
    assert main(args) == 1
    assert "unknown merge field {name}" in capsys.readouterr().err
    assert scene.store.doc("campaigns/camp-9") is None


def test_schedule_enqueues_the_plan_at_the_window_and_cancel_is_acknowledged(scene, capsys):
    assert main(CREATE) == 0
    assert main(["campaign", "schedule", "camp-9"]) == 0
    (plan,) = scene.queue.created
    assert plan.payload["type"] == "campaign_plan" and plan.queue == "campaign-planning"
    capsys.readouterr()
    assert main(["campaign", "cancel", "camp-9"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["in_flight_at_stop"]) == ("cancelled", 0) and out["acknowledged_at"]
    assert main(["campaign", "resume", "camp-9"]) == 1  # a cancelled campaign stays cancelled


def test_show_prints_status_counts_and_history(scene, capsys):
    assert main(CREATE) == 0
    capsys.readouterr()
    assert main(["campaign", "show", "camp-9"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "draft" and out["pending"] == 0 and [h["status"] for h in out["history"]] == ["draft"]
