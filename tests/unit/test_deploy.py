"""deploy.sh, run against a fake `gcloud` on PATH (tests/fixtures/fake_gcloud) that records each call.

deploy.sh runs from a copy of the repo's deploy-relevant files in a temporary folder, so the tests
never see (or leave) a deploy.env or staging folder in the working tree. Function folders whose
entry point is listed in deploy/registry.py but not written yet get a small stub there, so the whole
list is deployed; the skip path has its own test.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy.registry import FUNCTIONS

REPO = Path(__file__).resolve().parents[2]
FAKE_GCLOUD_DIR = REPO / "tests" / "fixtures" / "fake_gcloud"
PROJECT = "medspa-prod-1"
REGION = "us-central1"
SETTINGS = {"PROJECT_ID": PROJECT, "REGION": REGION, "TWILIO_MPS": "7", "FIRESTORE_LOCATION": "nam5"}
SECRETS = {"TWILIO_ACCOUNT_SID": "twilio-account-sid", "TWILIO_AUTH_TOKEN": "twilio-auth-token",
           "SENDGRID_API_KEY": "sendgrid-api-key"}
ENTRY_POINTS = FUNCTIONS
HTTP = [entry for entry in ENTRY_POINTS if entry.signature == "http"]
EVENTS = [entry for entry in ENTRY_POINTS if entry.signature != "http"]
FOLDERS = sorted({entry.folder for entry in ENTRY_POINTS})
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def sa(account_id: str) -> str:
    return f"{account_id}@{PROJECT}.iam.gserviceaccount.com"


def folder_sa(folder: str) -> str:
    return sa("fn-" + folder.replace("_", "-"))


def fake_url(name: str) -> str:
    return f"https://{name.replace('_', '-')}-fakehash-uc.a.run.app"


# --- running deploy.sh ---------------------------------------------------------------------------


@dataclass
class Deployment:
    repo: Path
    state: Path
    log: Path

    def run(self, *args: str, settings: dict[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess:
        self.log.unlink(missing_ok=True)
        env = {"PATH": f"{FAKE_GCLOUD_DIR}{os.pathsep}{os.environ['PATH']}", "HOME": str(self.repo.parent),
               "TMPDIR": str(self.repo.parent), "PYTHON": sys.executable, "FAKE_GCLOUD_LOG": str(self.log),
               "FAKE_GCLOUD_STATE": str(self.state), **(SETTINGS if settings is None else settings), **extra}
        return subprocess.run(["bash", str(self.repo / "deploy.sh"), *args], cwd=self.repo, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def seed_secret_versions(self, *names: str) -> None:
        (self.state / "secret-versions").mkdir(parents=True, exist_ok=True)
        for name in names:
            (self.state / "secret-versions" / name).touch()


def make_deployment(root: Path) -> Deployment:
    """A copy of what deploy.sh reads, with a stub for any entry point not written yet."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in ("deploy.sh", "firestore.indexes.json"):
        shutil.copy2(REPO / name, repo / name)
    shutil.copytree(REPO / "deploy", repo / "deploy", ignore=_IGNORE)
    shutil.copytree(REPO / "shared", repo / "shared", ignore=_IGNORE)
    shutil.copytree(REPO / "functions", repo / "functions", ignore=_IGNORE)
    for entry in ENTRY_POINTS:
        folder = repo / "functions" / entry.folder
        folder.mkdir(exist_ok=True)
        main = folder / "main.py"
        text = main.read_text() if main.exists() else "import functions_framework\n"
        if f"def {entry.target}(" not in text:
            decorator = "http" if entry.signature == "http" else "cloud_event"
            text += f"\n\n@functions_framework.{decorator}\ndef {entry.target}(request):\n    return 'stub'\n"
            main.write_text(text)
        if not (folder / "requirements.txt").exists():
            (folder / "requirements.txt").write_text("functions-framework==3.10.2\n")
    state = root / "state"
    state.mkdir()
    return Deployment(repo=repo, state=state, log=root / "gcloud.log")


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    deployment = make_deployment(tmp_path)
    deployment.seed_secret_versions(*SECRETS.values())
    return deployment


@dataclass
class TwoRuns:
    deployment: Deployment
    staging: Path
    first: subprocess.CompletedProcess
    first_calls: list[list[str]]
    second: subprocess.CompletedProcess
    second_calls: list[list[str]]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRuns]:
    """deploy.sh on a fresh (fake) project, then once more on the project it deployed."""
    deployment = make_deployment(tmp_path_factory.mktemp("deploy"))
    deployment.seed_secret_versions(*SECRETS.values())
    staging = deployment.repo.parent / "staged"
    first = deployment.run(DEPLOY_KEEP_STAGING=str(staging))
    first_calls = deployment.calls()
    second = deployment.run()
    yield TwoRuns(deployment, staging, first, first_calls, second, deployment.calls())


# --- reading the recorded calls --------------------------------------------------------------------


def words(call: list[str]) -> list[str]:
    return [arg for arg in call if not arg.startswith("--")]


def flags(call: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) if "=" in arg else (arg[2:], "") for arg in call if arg.startswith("--"))


def matching(calls: list[list[str]], *prefix: str) -> list[list[str]]:
    return [call for call in calls if words(call)[: len(prefix)] == list(prefix)]


def first_index(calls: list[list[str]], *prefix: str) -> int:
    return next(i for i, call in enumerate(calls) if words(call)[: len(prefix)] == list(prefix))


def deploys(calls: list[list[str]], name: str) -> list[dict[str, str]]:
    return [flags(call) for call in matching(calls, "functions", "deploy", name)]


def env_vars(deploy_flags: dict[str, str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in deploy_flags["set-env-vars"].split(","))


# --- a first deploy ------------------------------------------------------------------------------------


def test_first_deploy_succeeds(two_runs: TwoRuns) -> None:
    assert two_runs.first.returncode == 0, two_runs.first.stderr
    assert two_runs.first_calls, "no gcloud call was recorded"


def test_steps_run_in_the_documented_order(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    order = [first_index(calls, "services", "enable"), first_index(calls, "iam", "service-accounts", "create"),
             first_index(calls, "secrets", "create"), first_index(calls, "tasks", "queues", "create"),
             first_index(calls, "pubsub", "topics", "create"), first_index(calls, "scheduler", "jobs", "create"),
             first_index(calls, "firestore", "indexes", "composite", "create"),
             first_index(calls, "functions", "deploy")]
    assert order == sorted(order)


def test_every_required_api_is_enabled_first(two_runs: TwoRuns) -> None:
    enable = two_runs.first_calls[0]
    assert words(enable)[:2] == ["services", "enable"]
    apis = {api.split(".")[0] for api in words(enable)[2:]}
    assert apis == {"cloudfunctions", "run", "cloudbuild", "artifactregistry", "cloudtasks", "pubsub",
                    "cloudscheduler", "firestore", "secretmanager", "eventarc", "iam", "logging"}


def test_one_service_account_per_function_folder_plus_tasks_and_events_invokers(two_runs: TwoRuns) -> None:
    created = {words(call)[3] for call in matching(two_runs.first_calls, "iam", "service-accounts", "create")}
    assert created == {"tasks-invoker", "events-invoker", *("fn-" + f.replace("_", "-") for f in FOLDERS)}


def test_project_level_roles_are_only_datastore_user_for_function_accounts(two_runs: TwoRuns) -> None:
    bindings = {(flags(call)["member"], flags(call)["role"])
                for call in matching(two_runs.first_calls, "projects", "add-iam-policy-binding", PROJECT)}
    assert bindings == {(f"serviceAccount:{folder_sa(folder)}", "roles/datastore.user") for folder in FOLDERS}


def test_only_the_task_creators_may_act_as_the_tasks_invoker(two_runs: TwoRuns) -> None:
    bindings = matching(two_runs.first_calls, "iam", "service-accounts", "add-iam-policy-binding")
    assert {(words(c)[3], flags(c)["member"], flags(c)["role"]) for c in bindings} == {
        (sa("tasks-invoker"), f"serviceAccount:{folder_sa(folder)}", "roles/iam.serviceAccountUser")
        for folder in ("reminder_fanout", "task-handler")}  # the fan-out, and the handler's retry sweep


def test_secrets_are_created_empty_and_readable_only_by_the_task_handler(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    assert {words(c)[2] for c in matching(calls, "secrets", "create")} == set(SECRETS.values())
    assert not [c for c in matching(calls, "secrets", "create") if "data-file" in flags(c)]
    access = {(words(c)[2], flags(c)["member"], flags(c)["role"]) for c in matching(calls, "secrets",
                                                                                     "add-iam-policy-binding")}
    assert access == {(name, f"serviceAccount:{folder_sa('task_handler')}", "roles/secretmanager.secretAccessor")
                      for name in SECRETS.values()}


def test_queues_have_their_rates_and_retry_config(two_runs: TwoRuns) -> None:
    created = {words(c)[3]: flags(c) for c in matching(two_runs.first_calls, "tasks", "queues", "create")}
    assert set(created) == {"reminders-sms", "reminders-email", "waitlist", "reports"}
    assert created["reminders-sms"]["max-dispatches-per-second"] == SETTINGS["TWILIO_MPS"]
    assert created["reminders-sms"]["max-concurrent-dispatches"] == "14"
    assert created["waitlist"]["max-dispatches-per-second"] == "1"
    for queue in created.values():
        assert queue["location"] == REGION
        assert queue["max-attempts"] == "8"
        assert {"min-backoff", "max-backoff"} <= set(queue)


def test_enqueue_rights_per_queue_fanout_reminders_only_sweep_every_queue(two_runs: TwoRuns) -> None:
    bindings = matching(two_runs.first_calls, "tasks", "queues", "add-iam-policy-binding")
    assert {(words(c)[3], flags(c)["member"], flags(c)["role"]) for c in bindings} == {
        (queue, f"serviceAccount:{folder_sa('reminder_fanout')}", "roles/cloudtasks.enqueuer")
        for queue in ("reminders-sms", "reminders-email")} | {
        (queue, f"serviceAccount:{folder_sa('task_handler')}", "roles/cloudtasks.enqueuer")
        for queue in ("reminders-sms", "reminders-email", "waitlist", "reports")}


def test_topics_and_scheduler_jobs_with_pubsub_targets(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    assert {words(c)[3] for c in matching(calls, "pubsub", "topics", "create")} == {
        "reminders-tick", "appointment-events", "reports-tick", "failed-tasks-sweep"}
    jobs = {words(c)[4]: flags(c) for c in matching(calls, "scheduler", "jobs", "create", "pubsub")}
    assert {name: (job["topic"], json.loads(job["message-body"])) for name, job in jobs.items()} == {
        "reminders-tick": ("reminders-tick", {}),
        "reports-daily": ("reports-tick", {"period": "daily"}),
        "reports-weekly": ("reports-tick", {"period": "weekly"}),
        "failed-tasks-sweep": ("failed-tasks-sweep", {}),
    }
    assert jobs["reminders-tick"]["schedule"] == "0 10 * * *"
    assert jobs["failed-tasks-sweep"]["schedule"] == "*/5 * * * *"
    for job in jobs.values():
        assert job["time-zone"] == "Etc/UTC"
        assert job["max-retry-attempts"] == "3"


def test_firestore_indexes_from_the_file_and_ttl_on_the_ledger(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    created = [(flags(c)["collection-group"], [a for a in c if a.startswith("--field-config=")])
               for c in matching(calls, "firestore", "indexes", "composite", "create")]
    assert created == [(index["collectionGroup"],
                        [f"--field-config=field-path={f['fieldPath']},order={f['order'].lower()}"
                         for f in index["fields"]]) for index in spec["indexes"]]
    assert ("appointments", ["--field-config=field-path=clinic_id,order=ascending",
                             "--field-config=field-path=start,order=ascending"]) in created
    ttl_updates = matching(calls, "firestore", "fields", "ttls", "update")
    ttls = {(words(c)[4], flags(c)["collection-group"]) for c in ttl_updates}
    assert ttls == {("expire_at", "notifications"), ("expire_at", "claims")}


def test_every_function_is_gen2_python312_with_its_own_service_account(two_runs: TwoRuns) -> None:
    for entry in ENTRY_POINTS:
        for deploy in deploys(two_runs.first_calls, entry.name):
            assert "gen2" in deploy
            assert deploy["runtime"] == "python312"
            assert deploy["region"] == REGION
            assert deploy["entry-point"] == entry.target
            assert deploy["service-account"] == folder_sa(entry.folder)
            assert Path(deploy["source"]).name == entry.folder


def test_task_handler_is_private_and_gets_its_secrets_from_secret_manager(two_runs: TwoRuns) -> None:
    for deploy in deploys(two_runs.first_calls, "task-handler"):
        assert "trigger-http" in deploy
        assert "no-allow-unauthenticated" in deploy and "allow-unauthenticated" not in deploy
        secrets = dict(pair.split("=", 1) for pair in deploy["set-secrets"].split(","))
        assert secrets == {env: f"{name}:latest" for env, name in SECRETS.items()}


def test_no_secret_is_ever_a_plain_environment_variable(two_runs: TwoRuns) -> None:
    for call in matching(two_runs.first_calls, "functions", "deploy"):
        assert not set(env_vars(flags(call))) & set(SECRETS)


def test_twilio_status_is_public_and_reads_only_the_auth_token(two_runs: TwoRuns) -> None:
    for deploy in deploys(two_runs.first_calls, "twilio-status"):
        assert "allow-unauthenticated" in deploy and "no-allow-unauthenticated" not in deploy
        assert deploy["set-secrets"] == "TWILIO_AUTH_TOKEN=twilio-auth-token:latest"


def test_event_functions_are_triggered_by_their_topic_as_the_events_invoker(two_runs: TwoRuns) -> None:
    assert EVENTS
    for entry in EVENTS:
        (deploy,) = deploys(two_runs.first_calls, entry.name)
        assert deploy["trigger-topic"] == entry.topic
        assert deploy["trigger-service-account"] == sa("events-invoker")
        assert "retry" in deploy


def test_http_functions_are_created_first_then_everyone_gets_their_urls(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    deployed = [words(call)[2] for call in matching(calls, "functions", "deploy")]
    assert deployed[0] == "task-handler"
    final_env = {name: env_vars(deploys(calls, name)[-1]) for name in (entry.name for entry in ENTRY_POINTS)}
    for name, env in final_env.items():
        assert env["TASK_HANDLER_URL"] == fake_url("task-handler"), name
        assert env["TASK_AUDIENCE"] == fake_url("task-handler"), name
        assert env["STATUS_CALLBACK_URL"] == fake_url("twilio-status"), name
        assert env["TASKS_SERVICE_ACCOUNT"] == sa("tasks-invoker")
        assert env["GOOGLE_CLOUD_PROJECT"] == PROJECT
        assert env["TASKS_LOCATION"] == REGION
        assert env["QUEUE_SMS"] == "reminders-sms"
        assert env["QUEUE_MAX_ATTEMPTS"] == "8"
    assert {name: len(deploys(calls, name)) for name in final_env} == {
        entry.name: 2 if entry.signature == "http" else 1 for entry in ENTRY_POINTS}


def test_invokers_are_the_tasks_account_for_the_handler_and_the_events_account_for_events(two_runs: TwoRuns) -> None:
    bindings = {(words(c)[2], flags(c)["member"])
                for c in matching(two_runs.first_calls, "functions", "add-invoker-policy-binding")}
    assert bindings == {("task-handler", f"serviceAccount:{sa('tasks-invoker')}"),
                        *((entry.name, f"serviceAccount:{sa('events-invoker')}") for entry in EVENTS)}


def test_the_urls_for_twilio_are_printed(two_runs: TwoRuns) -> None:
    assert fake_url("twilio-status") in two_runs.first.stdout
    assert "SendGrid" in two_runs.first.stdout


def test_each_staged_source_has_main_requirements_and_an_importable_shared(two_runs: TwoRuns) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for folder in FOLDERS:
        staged = two_runs.staging / folder
        source = two_runs.deployment.repo / "functions" / folder
        assert (staged / "main.py").read_text() == (source / "main.py").read_text()
        assert (staged / "requirements.txt").read_text() == (source / "requirements.txt").read_text()
        probe = ("import main, shared, shared.platform.settings; from pathlib import Path; "
                 "print(Path(shared.__file__).resolve().parent.parent)")
        result = subprocess.run([sys.executable, "-c", probe], cwd=staged, env=env, capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert Path(result.stdout.strip()) == staged.resolve()


# --- a second deploy on the deployed project ---------------------------------------------------------


def test_second_run_updates_in_place(two_runs: TwoRuns) -> None:
    calls = two_runs.second_calls
    assert two_runs.second.returncode == 0, two_runs.second.stderr
    creates = [call for call in calls if "create" in words(call)]
    assert creates == []
    assert {words(c)[3] for c in matching(calls, "tasks", "queues", "update")} == {
        "reminders-sms", "reminders-email", "waitlist", "reports"}
    assert {words(c)[4] for c in matching(calls, "scheduler", "jobs", "update", "pubsub")} == {
        "reminders-tick", "reports-daily", "reports-weekly", "failed-tasks-sweep"}
    assert matching(calls, "firestore", "fields", "ttls", "update") == []
    assert {entry.name: len(deploys(calls, entry.name)) for entry in ENTRY_POINTS} == {
        entry.name: 1 for entry in ENTRY_POINTS}
    assert env_vars(deploys(calls, "reminder-fanout")[0])["TASK_HANDLER_URL"] == fake_url("task-handler")


# --- dry run, validation, failures ------------------------------------------------------------------


def test_dry_run_runs_nothing_and_prints_runnable_commands(deployment: Deployment) -> None:
    result = deployment.run("--dry-run")
    assert result.returncode == 0, result.stderr
    assert deployment.calls() == []
    assert list(deployment.state.iterdir()) == [deployment.state / "secret-versions"]
    commands = [shlex.split(line) for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert {command[0] for command in commands} <= {"gcloud", "export", sys.executable}
    sms = next(c for c in commands if c[:5] == ["gcloud", "tasks", "queues", "create", "reminders-sms"])
    assert flags(sms)["max-dispatches-per-second"] == SETTINGS["TWILIO_MPS"]
    assert any(c[:4] == ["gcloud", "functions", "deploy", "task-handler"] for c in commands)
    assert "'--schedule=0 10 * * *'" in result.stdout


@pytest.mark.parametrize(("change", "named"), [
    ({"PROJECT_ID": ""}, "PROJECT_ID"),
    ({"PROJECT_ID": "My_Project"}, "PROJECT_ID"),
    ({"REGION": "central"}, "REGION"),
    ({"TWILIO_MPS": ""}, "TWILIO_MPS"),
    ({"TWILIO_MPS": "fast"}, "TWILIO_MPS"),
    ({"TWILIO_MPS": "0"}, "TWILIO_MPS"),
    ({"QUEUE_MAX_ATTEMPTS": "many"}, "QUEUE_MAX_ATTEMPTS"),
    ({"REMINDER_SCHEDULE": "0 10 * *"}, "REMINDER_SCHEDULE"),
    ({"REPORT_SCHEDULE_WEEKLY": "every monday"}, "REPORT_SCHEDULE_WEEKLY"),
    ({"SCHEDULER_TIME_ZONE": "EST5"}, "SCHEDULER_TIME_ZONE"),
    ({"SCHEDULER_TIME_ZONE": "Mars/Olympus_Mons"}, "SCHEDULER_TIME_ZONE"),
    ({"TWILIO_AUTH_TOKEN_SECRET": "bad name!"}, "TWILIO_AUTH_TOKEN_SECRET"),
])
def test_bad_or_missing_settings_fail_before_any_gcloud_call(deployment: Deployment, change: dict[str, str],
                                                             named: str) -> None:
    result = deployment.run(settings={**SETTINGS, **change})
    assert result.returncode != 0
    assert deployment.calls() == []
    assert named in result.stderr


def test_every_problem_is_reported_at_once(deployment: Deployment) -> None:
    result = deployment.run(settings={"TWILIO_MPS": "fast"})
    assert deployment.calls() == []
    assert all(name in result.stderr for name in ("PROJECT_ID", "REGION", "TWILIO_MPS"))


def test_settings_come_from_the_env_file_and_the_environment_wins(deployment: Deployment) -> None:
    env_file = deployment.repo / "prod.env"
    env_file.write_text(f'PROJECT_ID={PROJECT}\nREGION=europe-west1\nTWILIO_MPS=3\n'
                        'REMINDER_SCHEDULE="30 9 * * *"\n# a comment\n')
    result = deployment.run("--env-file", str(env_file), "--dry-run", settings={"REGION": REGION})
    assert result.returncode == 0, result.stderr
    assert "--max-dispatches-per-second=3 " in result.stdout
    assert "'--schedule=30 9 * * *'" in result.stdout
    assert f"--region={REGION} " in result.stdout and "europe-west1" not in result.stdout


def test_an_env_file_may_not_hold_secret_values_nor_unknown_settings(deployment: Deployment) -> None:
    (deployment.repo / "deploy.env").write_text("TWILIO_AUTH_TOKEN=s3cr3t-value\nREMINDERS_SCHEDULE=0 9 * * *\n")
    result = deployment.run()
    assert result.returncode != 0
    assert deployment.calls() == []
    assert "TWILIO_AUTH_TOKEN is a secret value" in result.stderr
    assert "unknown setting REMINDERS_SCHEDULE" in result.stderr
    assert "s3cr3t-value" not in result.stderr + result.stdout


def test_a_failing_call_stops_the_deploy_and_names_the_command(deployment: Deployment) -> None:
    result = deployment.run(FAKE_GCLOUD_FAIL="pubsub topics create appointment-events")
    calls = deployment.calls()
    assert result.returncode != 0
    assert words(calls[-1])[:4] == ["pubsub", "topics", "create", "appointment-events"]
    assert "FAILED" in result.stderr
    assert f"gcloud pubsub topics create appointment-events --project={PROJECT}" in result.stderr
    assert matching(calls, "scheduler") == [] and matching(calls, "functions") == []


def test_a_look_up_failing_for_another_reason_than_not_found_stops_instead_of_creating(
        deployment: Deployment) -> None:
    result = deployment.run(FAKE_GCLOUD_FAIL="tasks queues describe reminders-sms")
    assert result.returncode != 0
    assert "PERMISSION_DENIED" in result.stderr
    assert "gcloud tasks queues describe reminders-sms" in result.stderr
    assert matching(deployment.calls(), "tasks", "queues", "create") == []


def test_a_secret_without_a_version_stops_the_deploy_with_how_to_add_it(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path)
    deployment.seed_secret_versions("twilio-account-sid", "sendgrid-api-key")
    result = deployment.run()
    assert result.returncode != 0
    assert "twilio-auth-token (TWILIO_AUTH_TOKEN)" in result.stderr
    assert "gcloud secrets versions add NAME --data-file=-" in result.stderr
    assert matching(deployment.calls(), "tasks") == []


def test_an_entry_point_not_written_yet_is_skipped_with_a_note(deployment: Deployment) -> None:
    shutil.rmtree(deployment.repo / "functions" / "reminder_fanout")
    result = deployment.run()
    assert result.returncode == 0, result.stderr
    calls = deployment.calls()
    assert "skipping reminder-fanout" in result.stdout and "skipping appointment-events" in result.stdout
    assert deploys(calls, "reminder-fanout") == [] and deploys(calls, "appointment-events") == []
    created = {words(c)[3] for c in matching(calls, "iam", "service-accounts", "create")}
    assert "fn-reminder-fanout" not in created
    assert deploys(calls, "task-handler")


def test_deploy_sh_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shellcheck is not installed (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed")
    result = subprocess.run([shellcheck, "deploy.sh", "tests/fixtures/fake_gcloud/gcloud"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout
