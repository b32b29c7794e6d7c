"""deploy.sh on a project that has never seen it: what a first run needs from Google that a re-run does not.

Run against the same fake `gcloud` as tests/unit/test_deploy.py (whose helpers this reuses): an optional secret
without a version, Eventarc's service agent still being provisioned, indexes still building, an organisation
that refuses allUsers, the alert channel, and --verify.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TypedDict

import pytest

from tests.unit.test_deploy import (
    PROJECT,
    SECRETS,
    SETTINGS,
    Deployment,
    deploys,
    fake_url,
    flags,
    make_deployment,
    matching,
    words,
)

PUBLIC = (
    "twilio-status",
    "sendgrid-events",
    "waitlist-inbound-sms",
    "waitlist-claim",
    "campaign-click",
    "feedback-page",
)


class Waits(TypedDict):
    """deploy.sh's pauses between retries and polls, in seconds (a test waits for none)."""

    DEPLOY_EVENTARC_RETRY_SECONDS: str
    DEPLOY_INDEX_POLL_SECONDS: str
    DEPLOY_IAM_RETRY_SECONDS: str


FAST = Waits(DEPLOY_EVENTARC_RETRY_SECONDS="0", DEPLOY_INDEX_POLL_SECONDS="0", DEPLOY_IAM_RETRY_SECONDS="0")


@pytest.fixture
def fresh(tmp_path: Path) -> Deployment:
    """A project where every secret but SendGrid's verification key has a version."""
    deployment = make_deployment(tmp_path)
    deployment.seed_secret_versions(*(name for env, name in SECRETS.items() if env != "SENDGRID_WEBHOOK_PUBLIC_KEY"))
    return deployment


def secrets_of(calls: list[list[str]], name: str) -> set[str]:
    return {flags(call).get("set-secrets", "") for call in matching(calls, "functions", "deploy", name)}


def test_without_the_sendgrid_key_the_first_run_deploys_and_says_what_to_do(fresh: Deployment) -> None:
    result = fresh.run(**FAST)
    assert result.returncode == 0, result.stderr
    calls = fresh.calls()
    assert secrets_of(calls, "sendgrid-events") == {""}  # not mapped: a missing version would fail the deploy
    assert all("SENDGRID_WEBHOOK_PUBLIC_KEY" not in refs for refs in secrets_of(calls, "task-handler"))
    assert "gcloud secrets versions add sendgrid-webhook-public-key --data-file=-" in result.stdout
    assert f"HTTP POST URL {fake_url('sendgrid-events')}" in result.stdout
    assert "no endpoint is deployed yet" not in result.stdout
    # the operator adds the key; the next run maps it
    fresh.seed_secret_versions("sendgrid-webhook-public-key")
    again = fresh.run(**FAST)
    assert again.returncode == 0, again.stderr
    assert secrets_of(fresh.calls(), "sendgrid-events") == {
        "SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid-webhook-public-key:latest"
    }
    assert "gcloud secrets versions add" not in again.stdout


def test_a_required_secret_without_a_version_still_stops_the_run(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path)
    deployment.seed_secret_versions("sendgrid-webhook-public-key")
    result = deployment.run(**FAST)
    assert result.returncode != 0
    assert "twilio-auth-token (TWILIO_AUTH_TOKEN)" in result.stderr
    assert "sendgrid-webhook-public-key" not in result.stderr


def test_an_event_deploy_refused_while_eventarcs_agent_is_provisioned_is_retried(fresh: Deployment) -> None:
    result = fresh.run(FAKE_GCLOUD_EVENTARC_DENIALS="2", **FAST)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Eventarc's service agent is still being provisioned") == 2
    first_event = "reminder-fanout"  # the registry's first event function
    assert len(deploys(fresh.calls(), first_event)) == 3


def test_the_eventarc_retry_gives_up_after_about_five_minutes_of_attempts(fresh: Deployment) -> None:
    result = fresh.run(FAKE_GCLOUD_EVENTARC_DENIALS="50", **FAST)
    assert result.returncode != 0
    assert "FAILED" in result.stderr and "Permission denied while using the Eventarc Service Agent" in result.stderr
    assert len(deploys(fresh.calls(), "reminder-fanout")) == 7
    assert matching(fresh.calls(), "scheduler") == []


def test_another_deploy_error_is_not_retried(fresh: Deployment) -> None:
    result = fresh.run(FAKE_GCLOUD_FAIL="functions deploy reminder-fanout --gen2", **FAST)
    assert result.returncode != 0
    assert len(deploys(fresh.calls(), "reminder-fanout")) == 1


def test_indexes_still_building_after_the_wait_are_named_and_the_run_goes_on(fresh: Deployment) -> None:
    result = fresh.run(FAKE_GCLOUD_INDEXES_STAY_CREATING="1", INDEX_WAIT_SECONDS="0", **FAST)
    assert result.returncode == 0, result.stderr
    assert "not READY after 0 s" in result.stdout
    assert "appointments (clinic_id, start): CREATING" in result.stdout
    assert matching(fresh.calls(), "scheduler", "jobs", "create")  # the jobs are made all the same


def test_the_wait_ends_as_soon_as_every_index_is_ready(fresh: Deployment) -> None:
    result = fresh.run(**FAST)
    assert result.returncode == 0, result.stderr
    assert "every composite index is READY" in result.stdout
    assert "Firestore indexes still building" not in result.stdout


def test_iam_check_off_makes_the_webhooks_public_without_binding_all_users(fresh: Deployment) -> None:
    result = fresh.run(settings={**SETTINGS, "PUBLIC_INVOKER": "iam-check-off"}, **FAST)
    assert result.returncode == 0, result.stderr
    calls = fresh.calls()
    assert not [c for c in calls if "--allow-unauthenticated" in c or "allUsers" in " ".join(c)]
    updated = [(words(c)[3], flags(c)) for c in matching(calls, "run", "services", "update")]
    assert {name for name, _ in updated} == set(PUBLIC)
    assert all("no-invoker-iam-check" in f and f["region"] == SETTINGS["REGION"] for _, f in updated)
    for name in PUBLIC:  # each deploy of a webhook is followed by turning the check off again
        for deploy in deploys(calls, name):
            assert deploy["ingress-settings"] == "all" and "no-allow-unauthenticated" in deploy
    for name in ("task-handler", "reminder-fanout-unit"):
        assert not matching(calls, "run", "services", "update", name)


def test_an_unknown_public_invoker_mode_is_refused_before_any_gcloud_call(fresh: Deployment) -> None:
    result = fresh.run(settings={**SETTINGS, "PUBLIC_INVOKER": "everyone"})
    assert result.returncode == 2 and fresh.calls() == []
    assert "PUBLIC_INVOKER must be allusers" in result.stderr


def test_alerts_notify_the_alert_email_and_a_rerun_finds_everything_again(fresh: Deployment) -> None:
    settings = {**SETTINGS, "ALERT_EMAIL": "oncall@clinic.example"}
    result = fresh.run(settings=settings, **FAST)
    assert result.returncode == 0, result.stderr
    calls = fresh.calls()
    (channel,) = matching(calls, "beta", "monitoring", "channels", "create")
    assert flags(channel)["channel-labels"] == "email_address=oncall@clinic.example"
    created = matching(calls, "alpha", "monitoring", "policies", "create")
    assert len(created) == len(list((fresh.repo / "deploy" / "monitoring" / "policies").glob("*.json")))
    assert {flags(c)["notification-channels"] for c in created} == {f"projects/{PROJECT}/notificationChannels/1"}
    again = fresh.run(settings=settings, **FAST)
    assert again.returncode == 0, again.stderr
    calls = fresh.calls()
    assert matching(calls, "beta", "monitoring", "channels", "create") == []
    updated = matching(calls, "alpha", "monitoring", "policies", "update")
    assert len(updated) == len(created)
    assert {flags(c)["set-notification-channels"] for c in updated} == {f"projects/{PROJECT}/notificationChannels/1"}
    assert len(matching(calls, "monitoring", "dashboards", "update")) == 1
    assert {words(c)[3] for c in matching(calls, "logging", "metrics", "update")} == {
        path.stem for path in (fresh.repo / "deploy" / "monitoring" / "metrics").glob("*.json")
    }


def test_without_alert_email_the_policies_have_no_channel_and_the_summary_says_so(fresh: Deployment) -> None:
    result = fresh.run(**FAST)
    assert result.returncode == 0, result.stderr
    calls = fresh.calls()
    assert matching(calls, "beta", "monitoring", "channels") == []
    assert all("notification-channels" not in flags(c) for c in matching(calls, "alpha", "monitoring", "policies"))
    assert "made without a notification channel (set ALERT_EMAIL" in result.stdout


def test_dry_run_verify_prints_the_smoke_command_and_runs_nothing(fresh: Deployment) -> None:
    result = fresh.run("--dry-run", "--verify")
    assert result.returncode == 0, result.stderr
    assert fresh.calls() == []
    commands = [shlex.split(line) for line in result.stdout.splitlines() if line and not line.startswith("#")]
    smoke = commands[-1]
    assert smoke[:2] == ["env", f"GOOGLE_CLOUD_PROJECT={PROJECT}"]
    assert smoke[-3:] == ["-m", "ops", "smoke"] and smoke[-4].endswith("/.venv/bin/python")
    assert not [c for c in commands if c and c[0] == "gcloud"]


def test_verify_runs_the_smoke_test_against_the_project_in_the_repos_venv(fresh: Deployment) -> None:
    venv = fresh.repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    # a stand-in for the venv's python that reports what it was asked to run
    (venv / "python").write_text('#!/bin/sh\nprintf "smoke %s %s\\n" "$GOOGLE_CLOUD_PROJECT" "$*"\n')
    (venv / "python").chmod(0o755)
    result = fresh.run("--verify")
    assert result.returncode == 0, result.stderr
    assert f"smoke {PROJECT} -m ops smoke" in result.stdout
    assert fresh.calls() == []  # nothing is deployed by --verify


def test_usage_names_the_new_flag() -> None:
    import subprocess

    result = subprocess.run(
        ["bash", "deploy.sh", "--help"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert "--verify" in result.stdout and "--dry-run" in result.stdout
