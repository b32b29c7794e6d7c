"""deploy.sh, run against a fake `gcloud` on PATH (tests/fixtures/fake_gcloud) that records each call.

deploy.sh runs from a copy of the repo's deploy-relevant files in a temporary folder, so the tests
never see (or leave) a deploy.env or staging folder in the working tree. Function folders whose
entry point is listed in deploy/registry.py but not written yet get a small stub there, so the whole
list is deployed; the skip path has its own test. Tests that need another registry append rows to
the copy's deploy/registry.py. deploy/plan.py's checks are also tested directly.
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

from deploy import plan, registry
from deploy.registry import FUNCTIONS, Function
from shared.platform import resources

REPO = Path(__file__).resolve().parents[2]
FAKE_GCLOUD_DIR = REPO / "tests" / "fixtures" / "fake_gcloud"
PROJECT = "medspa-prod-1"
PROJECT_NUMBER = "123456789012"  # what the fake's `projects describe` reports
REGION = "us-central1"
SETTINGS = {"PROJECT_ID": PROJECT, "REGION": REGION, "TWILIO_MPS": "7", "FIRESTORE_LOCATION": "nam5"}
SECRETS = {
    "TWILIO_ACCOUNT_SID": "twilio-account-sid",
    "TWILIO_AUTH_TOKEN": "twilio-auth-token",
    "SENDGRID_API_KEY": "sendgrid-api-key",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "sendgrid-webhook-public-key",
    "WAITLIST_TOKEN_KEY": "waitlist-token-key",
    "CAMPAIGN_LINK_KEY": "campaign-link-key",
    "BOOKING_LINK_KEY": "booking-link-key",
    "FEEDBACK_LINK_KEY": "feedback-link-key",
    "TWILIO_TEST_ACCOUNT_SID": "twilio-test-account-sid",
    "TWILIO_TEST_AUTH_TOKEN": "twilio-test-auth-token",
}
TASK_HANDLER_SECRETS = (
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "SENDGRID_API_KEY",
    "WAITLIST_TOKEN_KEY",
    "CAMPAIGN_LINK_KEY",
    "BOOKING_LINK_KEY",
    "FEEDBACK_LINK_KEY",
    "TWILIO_TEST_ACCOUNT_SID",
    "TWILIO_TEST_AUTH_TOKEN",
)
# The webhooks providers call (they verify signatures themselves), the waitlist's claim link and a campaign's
# tracked link (each checks its signed token).
PUBLIC = {
    "twilio-status",
    "sendgrid-events",
    "waitlist-inbound-sms",
    "waitlist-claim",
    "campaign-click",
    "booking-restore",
    "feedback-page",
}
ENTRY_POINTS = FUNCTIONS
HTTP = [entry for entry in ENTRY_POINTS if entry.signature == "http"]
EVENTS = [entry for entry in ENTRY_POINTS if entry.signature != "http"]
FOLDERS = sorted({entry.folder for entry in ENTRY_POINTS})
PUBSUB_AGENT = f"serviceAccount:service-{PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
BUILD_SA = f"functions-build@{PROJECT}.iam.gserviceaccount.com"  # Cloud Build builds the functions as this account
BUILD_ROLES = ("roles/logging.logWriter", "roles/artifactregistry.writer", "roles/storage.objectAdmin")
REMINDER_QUEUES = {resources.QUEUE_SMS, resources.QUEUE_EMAIL}
# The task handler's queues some function enqueues into (what the retry sweep may put tasks back into).
CAMPAIGN_QUEUES = {resources.QUEUE_CAMPAIGNS, resources.QUEUE_CAMPAIGN_PLANNING}  # the task handler feeds both
HANDLER_QUEUES = {*REMINDER_QUEUES, resources.QUEUE_WAITLIST, resources.QUEUE_REPORTS, *CAMPAIGN_QUEUES}
FED_QUEUES = {*HANDLER_QUEUES, resources.QUEUE_FANOUT}  # what some function enqueues into
WAITLIST_ENQUEUERS = ("task-handler", "waitlist-cancellations", "waitlist-inbound-sms", "waitlist-claim")
# A first feedback score's review link (the SMS queue) or managers' alert (email), from a text or the page.
FEEDBACK_ROUTERS = ("waitlist-inbound-sms", "feedback-page")
TASK_CREATORS = (
    "reminder-fanout",
    "reminder-fanout-unit",
    "appointment-events",
    "report-builder",
    "inventory-check",
    "retry-sweep",
    *WAITLIST_ENQUEUERS,
    "feedback-page",
)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def sa(account_id: str) -> str:
    return f"{account_id}@{PROJECT}.iam.gserviceaccount.com"


def fn_sa(name: str) -> str:
    return sa(f"fn-{name}")


def fake_url(name: str) -> str:
    return f"https://{name.replace('_', '-')}-fakehash-uc.a.run.app"


def fake_trigger_subscription(name: str) -> str:
    """The push subscription the fake's Eventarc trigger for function `name` has."""
    return f"projects/{PROJECT}/subscriptions/eventarc-{REGION}-{name}-731295-sub-042"


# --- running deploy.sh ---------------------------------------------------------------------------


@dataclass
class Deployment:
    repo: Path
    state: Path
    log: Path

    def run(self, *args: str, settings: dict[str, str] | None = None, **extra: str) -> subprocess.CompletedProcess:
        self.log.unlink(missing_ok=True)
        env = {
            "PATH": f"{FAKE_GCLOUD_DIR}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(self.repo.parent),
            "TMPDIR": str(self.repo.parent),
            "PYTHON": sys.executable,
            "FAKE_GCLOUD_LOG": str(self.log),
            "FAKE_GCLOUD_STATE": str(self.state),
            **(SETTINGS if settings is None else settings),
            **extra,
        }
        return subprocess.run(
            ["bash", str(self.repo / "deploy.sh"), *args],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def seed_secret_versions(self, *names: str) -> None:
        (self.state / "secret-versions").mkdir(parents=True, exist_ok=True)
        for name in names:
            (self.state / "secret-versions" / name).touch()

    def add_functions(self, *rows: str) -> None:
        """Append registry rows (Python source, `Function(...)`) to the copy's deploy/registry.py."""
        path = self.repo / "deploy" / "registry.py"
        path.write_text(path.read_text() + f"\nFUNCTIONS = (*FUNCTIONS, {', '.join(rows)})\n")

    def write_stub(self, folder: str, target: str, decorator: str) -> None:
        """A functions/<folder>/main.py entry point, created or appended to."""
        source = self.repo / "functions" / folder
        source.mkdir(exist_ok=True)
        main = source / "main.py"
        text = main.read_text() if main.exists() else "import functions_framework\n"
        if f"def {target}(" not in text:
            main.write_text(text + f"\n\n@functions_framework.{decorator}\ndef {target}(request):\n    return 'stub'\n")
        if not (source / "requirements.txt").exists():
            (source / "requirements.txt").write_text("functions-framework==3.10.2\n")


def make_deployment(root: Path) -> Deployment:
    """A copy of what deploy.sh reads, with a stub for any entry point not written yet."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in ("deploy.sh", "firestore.indexes.json"):
        shutil.copy2(REPO / name, repo / name)
    shutil.copytree(REPO / "deploy", repo / "deploy", ignore=_IGNORE)
    shutil.copytree(REPO / "shared", repo / "shared", ignore=_IGNORE)
    shutil.copytree(REPO / "functions", repo / "functions", ignore=_IGNORE)
    state = root / "state"
    state.mkdir()
    deployment = Deployment(repo=repo, state=state, log=root / "gcloud.log")
    for entry in ENTRY_POINTS:
        deployment.write_stub(entry.folder, entry.target, "http" if entry.signature == "http" else "cloud_event")
    return deployment


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
    return {name: value for name, _, value in (arg[2:].partition("=") for arg in call if arg.startswith("--"))}


def matching(calls: list[list[str]], *prefix: str) -> list[list[str]]:
    return [call for call in calls if words(call)[: len(prefix)] == list(prefix)]


def first_index(calls: list[list[str]], *prefix: str) -> int:
    return next(i for i, call in enumerate(calls) if words(call)[: len(prefix)] == list(prefix))


def deploys(calls: list[list[str]], name: str) -> list[dict[str, str]]:
    return [flags(call) for call in matching(calls, "functions", "deploy", name)]


def env_vars(deploy_flags: dict[str, str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in deploy_flags["set-env-vars"].split(","))


_BINDING_KINDS = {
    ("projects",): "project",
    ("secrets",): "secret",
    ("tasks", "queues"): "queue",
    ("iam", "service-accounts"): "service-account",
    ("pubsub", "topics"): "topic",
    ("pubsub", "subscriptions"): "subscription",
}


def bindings(calls: list[list[str]]) -> set[tuple[str, str, str, str]]:
    """Every IAM binding granted: (member, kind of resource, resource, role)."""
    out = set()
    for call in calls:
        w = words(call)
        if "add-iam-policy-binding" not in w:
            continue
        at = w.index("add-iam-policy-binding")
        out.add((flags(call)["member"], _BINDING_KINDS[tuple(w[:at])], w[at + 1], flags(call)["role"]))
    return out


def held_by(calls: list[list[str]], member: str) -> set[tuple[str, str, str]]:
    return {(kind, resource, role) for who, kind, resource, role in bindings(calls) if who == member}


def expected_roles(fn: Function, enqueues: tuple[str, ...] | None = None) -> set[tuple[str, str, str]]:
    """Exactly what a function's own account may use, from its registry row."""
    queues = fn.enqueues if enqueues is None else enqueues
    roles = {("project", PROJECT, "roles/datastore.user")}
    roles |= {("secret", SECRETS[s], "roles/secretmanager.secretAccessor") for s in fn.secrets}
    roles |= {("queue", q, "roles/cloudtasks.enqueuer") for q in queues}
    if queues:
        roles.add(("service-account", sa("tasks-invoker"), "roles/iam.serviceAccountUser"))
    roles |= {("topic", t, "roles/pubsub.publisher") for t in fn.publishes}
    return roles


# --- a first deploy ------------------------------------------------------------------------------------


def test_first_deploy_succeeds(two_runs: TwoRuns) -> None:
    assert two_runs.first.returncode == 0, two_runs.first.stderr
    assert two_runs.first_calls, "no gcloud call was recorded"


def last_index(calls: list[list[str]], *prefix: str) -> int:
    return max(i for i, call in enumerate(calls) if words(call)[: len(prefix)] == list(prefix))


def test_steps_run_in_the_documented_order(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    order = [
        first_index(calls, "services", "enable"),
        first_index(calls, "iam", "service-accounts", "create"),
        first_index(calls, "projects", "describe"),  # the Pub/Sub agent's number, for its token-creator role
        first_index(calls, "secrets", "create"),
        first_index(calls, "tasks", "queues", "create"),
        first_index(calls, "pubsub", "topics", "create"),
        first_index(calls, "pubsub", "subscriptions", "create"),
        first_index(calls, "firestore", "indexes", "composite", "create"),
        first_index(calls, "functions", "deploy"),
        first_index(calls, "functions", "add-invoker-policy-binding"),
        first_index(calls, "pubsub", "subscriptions", "update"),
        first_index(calls, "logging", "metrics", "create"),
        first_index(calls, "alpha", "monitoring", "policies", "create"),
        first_index(calls, "monitoring", "dashboards", "create"),
        last_index(calls, "firestore", "indexes", "composite", "list"),
        first_index(calls, "scheduler", "jobs", "create"),
    ]
    assert order == sorted(order)


def test_scheduler_jobs_come_last_after_every_function_trigger_and_index(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    first_job = first_index(calls, "scheduler", "jobs", "create")
    # a tick published before its function's trigger subscription exists would be dropped
    assert last_index(calls, "functions", "deploy") < first_job
    assert last_index(calls, "pubsub", "subscriptions", "update") < first_job
    assert last_index(calls, "functions", "add-invoker-policy-binding") < first_job
    assert last_index(calls, "firestore", "indexes", "composite", "list") < first_job
    assert all(words(c)[0] == "scheduler" for c in calls[first_job:])


def test_every_required_api_is_enabled_first(two_runs: TwoRuns) -> None:
    enable = two_runs.first_calls[0]
    assert words(enable)[:2] == ["services", "enable"]
    apis = {api.split(".")[0] for api in words(enable)[2:]}
    assert apis == {
        "cloudfunctions",
        "run",
        "cloudbuild",
        "artifactregistry",
        "cloudtasks",
        "pubsub",
        "cloudscheduler",
        "firestore",
        "secretmanager",
        "eventarc",
        "iam",
        "logging",
        "monitoring",
    }


def test_one_service_account_per_function_plus_tasks_and_events_invokers(two_runs: TwoRuns) -> None:
    created = {words(call)[3] for call in matching(two_runs.first_calls, "iam", "service-accounts", "create")}
    assert created == {
        "tasks-invoker",
        "events-invoker",
        "functions-build",
        *(f"fn-{entry.name}" for entry in ENTRY_POINTS),
    }
    assert {
        "fn-task-handler",
        "fn-twilio-status",
        "fn-retry-sweep",
        "fn-reminder-fanout",
        "fn-appointment-events",
    } <= created
    assert all(len(account) <= 30 for account in created)


def test_each_function_account_holds_exactly_the_roles_its_registry_row_names(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    for entry in ENTRY_POINTS:
        queues = tuple(sorted(HANDLER_QUEUES)) if entry.requeues else None
        assert held_by(calls, f"serviceAccount:{fn_sa(entry.name)}") == expected_roles(entry, queues), entry.name


def test_the_functions_hold_these_roles_and_no_others(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    datastore = ("project", PROJECT, "roles/datastore.user")
    enqueue = {("queue", q, "roles/cloudtasks.enqueuer") for q in REMINDER_QUEUES}
    reports = ("queue", resources.QUEUE_REPORTS, "roles/cloudtasks.enqueuer")
    act_as = ("service-account", sa("tasks-invoker"), "roles/iam.serviceAccountUser")
    accessor = "roles/secretmanager.secretAccessor"
    waitlist = ("queue", resources.QUEUE_WAITLIST, "roles/cloudtasks.enqueuer")
    publish = ("topic", "appointment-events", "roles/pubsub.publisher")
    campaigns = {("queue", q, "roles/cloudtasks.enqueuer") for q in CAMPAIGN_QUEUES}
    assert held_by(calls, f"serviceAccount:{fn_sa('task-handler')}") == {
        datastore,
        *(("secret", SECRETS[env], accessor) for env in TASK_HANDLER_SECRETS),
        waitlist,
        *campaigns,
        ("queue", resources.QUEUE_SMS, "roles/cloudtasks.enqueuer"),  # a rebooking nudge moved to its window
        act_as,
        publish,
    }
    assert held_by(calls, f"serviceAccount:{fn_sa('sendgrid-events')}") == {
        datastore,
        ("secret", "sendgrid-webhook-public-key", accessor),
    }
    assert held_by(calls, f"serviceAccount:{fn_sa('twilio-status')}") == {
        datastore,
        ("secret", "twilio-auth-token", accessor),
    }
    fanout = ("queue", resources.QUEUE_FANOUT, "roles/cloudtasks.enqueuer")
    # The coordinator only enqueues units; the units enqueue messages (and a split's shards).
    assert held_by(calls, f"serviceAccount:{fn_sa('reminder-fanout')}") == {datastore, fanout, act_as}
    assert held_by(calls, f"serviceAccount:{fn_sa('reminder-fanout-unit')}") == {datastore, *enqueue, fanout, act_as}
    assert held_by(calls, f"serviceAccount:{fn_sa('appointment-events')}") == {datastore, *enqueue, act_as}
    for name in ("report-builder", "inventory-check"):
        assert held_by(calls, f"serviceAccount:{fn_sa(name)}") == {datastore, reports, act_as}, name
    assert held_by(calls, f"serviceAccount:{fn_sa('retry-sweep')}") == {
        datastore,
        *enqueue,
        reports,
        waitlist,
        *campaigns,
        act_as,
    }
    assert held_by(calls, f"serviceAccount:{fn_sa('waitlist-cancellations')}") == {datastore, waitlist, act_as}
    feedback_routing = enqueue  # a first score's review link (SMS queue) or managers' alert (email queue)
    assert held_by(calls, f"serviceAccount:{fn_sa('waitlist-inbound-sms')}") == {
        datastore,
        ("secret", "twilio-auth-token", accessor),
        waitlist,
        *feedback_routing,
        act_as,
        publish,
    }
    assert held_by(calls, f"serviceAccount:{fn_sa('feedback-page')}") == {
        datastore,
        ("secret", "feedback-link-key", accessor),
        *feedback_routing,
        act_as,
    }
    assert held_by(calls, f"serviceAccount:{fn_sa('waitlist-claim')}") == {
        datastore,
        ("secret", "waitlist-token-key", accessor),
        waitlist,
        act_as,
        publish,
    }


def test_project_level_roles_are_only_datastore_user_for_function_accounts(two_runs: TwoRuns) -> None:
    project = {
        (flags(call)["member"], flags(call)["role"])
        for call in matching(two_runs.first_calls, "projects", "add-iam-policy-binding", PROJECT)
    }
    assert project == {
        *((f"serviceAccount:{fn_sa(entry.name)}", "roles/datastore.user") for entry in ENTRY_POINTS),
        *((f"serviceAccount:{BUILD_SA}", role) for role in BUILD_ROLES),
    }


def test_functions_are_built_as_the_build_account_unless_one_is_named(
    two_runs: TwoRuns, deployment: Deployment
) -> None:
    for call in matching(two_runs.first_calls, "functions", "deploy"):
        assert flags(call)["build-service-account"] == f"projects/{PROJECT}/serviceAccounts/{BUILD_SA}"
    named = f"ci-builder@{PROJECT}.iam.gserviceaccount.com"
    result = deployment.run(settings={**SETTINGS, "BUILD_SERVICE_ACCOUNT": named})
    assert result.returncode == 0, result.stderr
    calls = deployment.calls()
    assert {flags(c)["build-service-account"] for c in matching(calls, "functions", "deploy")} == {
        f"projects/{PROJECT}/serviceAccounts/{named}"
    }
    assert "functions-build" not in {words(c)[3] for c in matching(calls, "iam", "service-accounts", "create")}
    assert not [
        c
        for c in matching(calls, "projects", "add-iam-policy-binding")
        if flags(c)["member"] == f"serviceAccount:{named}"
    ]


def test_only_the_task_creators_may_act_as_the_tasks_invoker(two_runs: TwoRuns) -> None:
    on_accounts = matching(two_runs.first_calls, "iam", "service-accounts", "add-iam-policy-binding")
    assert {(words(c)[3], flags(c)["member"], flags(c)["role"]) for c in on_accounts} == {
        *(
            (sa("tasks-invoker"), f"serviceAccount:{fn_sa(name)}", "roles/iam.serviceAccountUser")
            for name in TASK_CREATORS
        ),
        # Pub/Sub's agent signs Eventarc's push tokens for events-invoker (needed where it predates April 2021)
        (sa("events-invoker"), PUBSUB_AGENT, "roles/iam.serviceAccountTokenCreator"),
    }


def test_secrets_are_created_empty_and_readable_only_by_the_functions_that_map_them(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    assert {words(c)[2] for c in matching(calls, "secrets", "create")} == set(SECRETS.values())
    assert not [c for c in matching(calls, "secrets", "create") if "data-file" in flags(c)]
    access = {
        (words(c)[2], flags(c)["member"], flags(c)["role"])
        for c in matching(calls, "secrets", "add-iam-policy-binding")
    }
    accessor = "roles/secretmanager.secretAccessor"
    assert access == {
        (SECRETS[env], f"serviceAccount:{fn_sa('task-handler')}", accessor) for env in TASK_HANDLER_SECRETS
    } | {
        ("twilio-auth-token", f"serviceAccount:{fn_sa('twilio-status')}", accessor),
        ("sendgrid-webhook-public-key", f"serviceAccount:{fn_sa('sendgrid-events')}", accessor),
        ("twilio-auth-token", f"serviceAccount:{fn_sa('waitlist-inbound-sms')}", accessor),
        ("waitlist-token-key", f"serviceAccount:{fn_sa('waitlist-claim')}", accessor),
        ("campaign-link-key", f"serviceAccount:{fn_sa('campaign-click')}", accessor),
        ("booking-link-key", f"serviceAccount:{fn_sa('booking-restore')}", accessor),
        ("feedback-link-key", f"serviceAccount:{fn_sa('feedback-page')}", accessor),
    }


def test_twilio_status_may_read_only_the_auth_token(two_runs: TwoRuns) -> None:
    readable = {
        words(c)[2]
        for c in matching(two_runs.first_calls, "secrets", "add-iam-policy-binding")
        if flags(c)["member"] == f"serviceAccount:{fn_sa('twilio-status')}"
    }
    assert readable == {"twilio-auth-token"}


def test_the_retry_sweep_has_no_secret_access_at_all(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    member = f"serviceAccount:{fn_sa('retry-sweep')}"
    assert [c for c in matching(calls, "secrets", "add-iam-policy-binding") if flags(c)["member"] == member] == []
    assert not [role for _, _, role in held_by(calls, member) if role.startswith("roles/secretmanager")]
    assert all("set-secrets" not in deploy for deploy in deploys(calls, "retry-sweep"))


def test_queues_have_their_rates_and_retry_config(two_runs: TwoRuns) -> None:
    created = {words(c)[3]: flags(c) for c in matching(two_runs.first_calls, "tasks", "queues", "create")}
    assert set(created) == FED_QUEUES
    assert created["reminders-sms"]["max-dispatches-per-second"] == SETTINGS["TWILIO_MPS"]
    assert (created["waitlist"]["max-dispatches-per-second"], created["waitlist"]["max-concurrent-dispatches"]) == (
        "1",
        "2",
    )
    assert created["reminders-sms"]["max-concurrent-dispatches"] == "14"
    assert created["reminders-email"]["max-dispatches-per-second"] == "50"
    assert created["reminders-email"]["max-concurrent-dispatches"] == "20"
    assert (created["reports"]["max-dispatches-per-second"], created["reports"]["max-concurrent-dispatches"]) == (
        "5",
        "5",
    )
    fanout = created[resources.QUEUE_FANOUT]
    assert (fanout["max-dispatches-per-second"], fanout["max-concurrent-dispatches"]) == ("100", "100")
    # Campaign messages on their own queue at CAMPAIGN_MPS (default 1/s), never the reminders' queue.
    campaigns = created[resources.QUEUE_CAMPAIGNS]
    assert (campaigns["max-dispatches-per-second"], campaigns["max-concurrent-dispatches"]) == ("1", "4")
    planning = created[resources.QUEUE_CAMPAIGN_PLANNING]
    assert (planning["max-dispatches-per-second"], planning["max-concurrent-dispatches"]) == ("5", "2")
    # The units' own backoff (registry), the others' from deploy.env's defaults.
    assert (fanout["min-backoff"], fanout["max-backoff"]) == ("2s", "60s")
    for name, queue in created.items():
        assert queue["location"] == REGION
        assert queue["max-attempts"] == "8"
        if name != resources.QUEUE_FANOUT:
            assert (queue["min-backoff"], queue["max-backoff"]) == ("10s", "600s")


def test_enqueue_rights_per_queue_for_the_fanouts_and_the_sweep_only(two_runs: TwoRuns) -> None:
    enqueue = matching(two_runs.first_calls, "tasks", "queues", "add-iam-policy-binding")
    assert {(words(c)[3], flags(c)["member"], flags(c)["role"]) for c in enqueue} == {
        *(
            (queue, f"serviceAccount:{fn_sa(name)}", "roles/cloudtasks.enqueuer")
            for queue in REMINDER_QUEUES
            for name in ("reminder-fanout-unit", "appointment-events", "retry-sweep")
        ),
        *(
            (resources.QUEUE_FANOUT, f"serviceAccount:{fn_sa(name)}", "roles/cloudtasks.enqueuer")
            for name in ("reminder-fanout", "reminder-fanout-unit")
        ),
        *(
            (resources.QUEUE_REPORTS, f"serviceAccount:{fn_sa(name)}", "roles/cloudtasks.enqueuer")
            for name in ("report-builder", "inventory-check", "retry-sweep")
        ),
        *(
            (queue, f"serviceAccount:{fn_sa(name)}", "roles/cloudtasks.enqueuer")
            for queue in CAMPAIGN_QUEUES
            for name in ("task-handler", "retry-sweep")
        ),
        *(
            (resources.QUEUE_WAITLIST, f"serviceAccount:{fn_sa(name)}", "roles/cloudtasks.enqueuer")
            for name in ("retry-sweep", *WAITLIST_ENQUEUERS)
        ),
        *(
            (queue, f"serviceAccount:{fn_sa(name)}", "roles/cloudtasks.enqueuer")
            for queue in REMINDER_QUEUES
            for name in FEEDBACK_ROUTERS
        ),
        # the task handler moves a rebooking nudge to its recipient's window as a new SMS task
        (resources.QUEUE_SMS, f"serviceAccount:{fn_sa('task-handler')}", "roles/cloudtasks.enqueuer"),
    }


def test_topics_and_scheduler_jobs_with_pubsub_targets(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    triggers = {"reminders-tick", "appointment-events", "failed-tasks-sweep", "reports-tick", "inventory-tick"}
    assert {words(c)[3] for c in matching(calls, "pubsub", "topics", "create")} == {
        *triggers,
        *(resources.dead_letter_topic(t) for t in triggers),
    }
    jobs = {words(c)[4]: flags(c) for c in matching(calls, "scheduler", "jobs", "create", "pubsub")}
    assert {name: (job["topic"], json.loads(job["message-body"])) for name, job in jobs.items()} == {
        "reminders-tick": ("reminders-tick", {}),
        "failed-tasks-sweep": ("failed-tasks-sweep", {}),
        "reports-daily": ("reports-tick", {"period": "daily"}),
        "reports-weekly": ("reports-tick", {"period": "weekly"}),
        "inventory-check": ("inventory-tick", {}),
    }
    assert jobs["reminders-tick"]["schedule"] == "0 10 * * *"
    assert jobs["reports-daily"]["schedule"] == "0 6 * * *"
    assert jobs["reports-weekly"]["schedule"] == "0 7 * * 1"
    assert jobs["inventory-check"]["schedule"] == "0 11 * * *"
    assert jobs["failed-tasks-sweep"]["schedule"] == "*/5 * * * *"
    for job in jobs.values():
        assert job["time-zone"] == "Etc/UTC"
        assert job["max-retry-attempts"] == "3"


def test_nothing_is_made_for_a_queue_topic_or_job_no_registered_function_uses(deployment: Deployment) -> None:
    shutil.rmtree(deployment.repo / "functions" / "report_builder")
    result = deployment.run()
    assert result.returncode == 0, result.stderr
    calls = deployment.calls()
    made = {" ".join(words(c)) for c in calls if "create" in words(c)}
    for unused in (
        "tasks queues create reports",
        "pubsub topics create reports-tick",
        "pubsub topics create inventory-tick",
        "scheduler jobs create pubsub reports-daily",
        "scheduler jobs create pubsub reports-weekly",
        "scheduler jobs create pubsub inventory-check",
    ):
        assert not [line for line in made if line.startswith(unused)], unused
    assert not [c for c in calls if "reports-tick" in " ".join(c) or "reports" in words(c)]
    assert "no job reports-daily: no deployed function is triggered by topic reports-tick" in result.stdout


def test_firestore_indexes_from_the_file_and_ttl_on_the_ledger(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    created = [
        (flags(c)["collection-group"], [a for a in c if a.startswith("--field-config=")])
        for c in matching(calls, "firestore", "indexes", "composite", "create")
    ]
    assert created == [
        (
            index["collectionGroup"],
            [f"--field-config=field-path={f['fieldPath']},order={f['order'].lower()}" for f in index["fields"]],
        )
        for index in spec["indexes"]
    ]
    assert (
        "appointments",
        ["--field-config=field-path=clinic_id,order=ascending", "--field-config=field-path=start,order=ascending"],
    ) in created
    ttl_updates = matching(calls, "firestore", "fields", "ttls", "update")
    ttls = {(words(c)[4], flags(c)["collection-group"]) for c in ttl_updates}
    groups = {
        "notifications",
        "fanout_runs",
        "answers",
        "waitlist_offer_counts",
        "inbound_sms",
        "send_records",
        "history",
    }
    assert ttls == {("expire_at", group) for group in groups}


def test_ledger_timestamps_lose_their_single_field_indexes_and_the_queried_fields_keep_theirs(
    two_runs: TwoRuns,
) -> None:
    updates = matching(two_runs.first_calls, "firestore", "indexes", "fields", "update")
    assert all("--disable-indexes" in c and flags(c)["collection-group"] == "notifications" for c in updates)
    exempt = {words(c)[4] for c in updates}
    assert {"created_at", "updated_at", "expire_at"} <= exempt
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    queried = {f["fieldPath"] for i in spec["indexes"] if i["collectionGroup"] == "notifications" for f in i["fields"]}
    # a composite index is its own; only the single-field index of a field queried alone would be missed
    assert exempt.isdisjoint({"clinic_id", "appointment_id", "provider_message_id", "state", "send_at", "campaign_id"})
    assert queried - exempt == {"clinic_id", "kind", "channel", "state", "send_at", "campaign_id"}


def test_a_field_override_with_its_own_indexes_is_refused_before_any_gcloud_call(tmp_path: Path) -> None:
    spec = tmp_path / "firestore.indexes.json"
    override = {"collectionGroup": "notifications", "fieldPath": "sent_at", "indexes": [{"order": "ASCENDING"}]}
    spec.write_text(json.dumps({"indexes": [], "fieldOverrides": [override]}))
    with pytest.raises(plan.PlanError, match="sent_at"):
        plan.write_plan(plan.build_plan(), tmp_path / "out", spec)


def test_docs_deploy_names_every_function_queue_job_and_secret_of_the_registry() -> None:
    text = (REPO / "docs" / "deploy.md").read_text()
    rows = {line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| `")}
    for fn in FUNCTIONS:
        assert f"`{fn.name}`" in rows, f"docs/deploy.md has no row for function {fn.name}"
        assert f"`fn-{fn.name}`" in text
    for name in [q.name for q in registry.QUEUES] + [j.name for j in registry.JOBS]:
        assert f"`{name}`" in text, name
    for secret in registry.SECRETS:
        assert f"`{secret.lower().replace('_', '-')}`" in text, secret


def test_an_index_listed_twice_is_created_once_and_the_repos_file_lists_each_once(tmp_path: Path) -> None:
    index = {"collectionGroup": "c", "queryScope": "COLLECTION", "fields": [{"fieldPath": "a", "order": "ASCENDING"}]}
    spec = tmp_path / "indexes.json"
    spec.write_text(json.dumps({"indexes": [index, index]}))
    assert plan.missing_indexes(spec) == [["c", "collection", "field-path=a,order=ascending"]]
    listed = json.loads((REPO / "firestore.indexes.json").read_text())["indexes"]
    keys = [json.dumps(i, sort_keys=True) for i in listed]
    assert len(keys) == len(set(keys))


def test_every_function_is_gen2_python312_with_its_own_account_and_its_resources(two_runs: TwoRuns) -> None:
    for entry in ENTRY_POINTS:
        assert deploys(two_runs.first_calls, entry.name), entry.name
        for deploy in deploys(two_runs.first_calls, entry.name):
            assert "gen2" in deploy
            assert deploy["runtime"] == registry.RUNTIME
            assert deploy["region"] == REGION
            assert deploy["entry-point"] == entry.target
            assert deploy["service-account"] == fn_sa(entry.name)
            assert Path(deploy["source"]).name == entry.folder
            assert (deploy["memory"], deploy["cpu"], deploy["timeout"]) == (
                entry.memory,
                entry.cpu,
                f"{entry.timeout_seconds}s",
            )
    (fanout,) = deploys(two_runs.first_calls, "reminder-fanout")
    assert (fanout["memory"], fanout["cpu"], fanout["timeout"]) == (
        registry.function("reminder-fanout").memory,
        registry.function("reminder-fanout").cpu,
        f"{registry.function('reminder-fanout').timeout_seconds}s",
    )


def test_ingress_is_internal_only_except_for_the_public_webhook(two_runs: TwoRuns) -> None:
    for call in matching(two_runs.first_calls, "functions", "deploy"):
        name, ingress = words(call)[2], [arg for arg in call if arg.startswith("--ingress-settings")]
        assert ingress == (["--ingress-settings=all"] if name in PUBLIC else ["--ingress-settings=internal-only"]), name
    assert PUBLIC == {entry.name for entry in ENTRY_POINTS if entry.public}
    for entry in EVENTS:
        (deploy,) = deploys(two_runs.first_calls, entry.name)
        assert "allow-unauthenticated" not in deploy


def test_task_handler_is_private_and_gets_its_secrets_from_secret_manager(two_runs: TwoRuns) -> None:
    for deploy in deploys(two_runs.first_calls, "task-handler"):
        assert "trigger-http" in deploy
        assert "no-allow-unauthenticated" in deploy and "allow-unauthenticated" not in deploy
        assert deploy["ingress-settings"] == "internal-only"
        secrets = dict(pair.split("=", 1) for pair in deploy["set-secrets"].split(","))
        assert secrets == {env: f"{SECRETS[env]}:latest" for env in TASK_HANDLER_SECRETS}


def test_no_secret_is_ever_a_plain_environment_variable(two_runs: TwoRuns) -> None:
    for call in matching(two_runs.first_calls, "functions", "deploy"):
        assert not set(env_vars(flags(call))) & set(SECRETS)


def test_twilio_status_is_public_and_reads_only_the_auth_token(two_runs: TwoRuns) -> None:
    for deploy in deploys(two_runs.first_calls, "twilio-status"):
        assert "allow-unauthenticated" in deploy and "no-allow-unauthenticated" not in deploy
        assert deploy["ingress-settings"] == "all"
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
        assert env["INBOUND_SMS_URL"] == fake_url("waitlist-inbound-sms"), name
        assert env["WAITLIST_CLAIM_URL"] == fake_url("waitlist-claim"), name
        assert env["FANOUT_UNIT_URL"] == fake_url("reminder-fanout-unit"), name
        assert env["QUEUE_FANOUT"] == resources.QUEUE_FANOUT, name
        assert env["TASKS_SERVICE_ACCOUNT"] == sa("tasks-invoker")
        assert env["GOOGLE_CLOUD_PROJECT"] == PROJECT
        assert env["TASKS_LOCATION"] == REGION
        assert env["QUEUE_SMS"] == "reminders-sms"
        assert env["QUEUE_EMAIL"] == "reminders-email"
        assert env["QUEUE_MAX_ATTEMPTS"] == "8"
    assert {name: len(deploys(calls, name)) for name in final_env} == {
        entry.name: 2 if entry.signature == "http" else 1 for entry in ENTRY_POINTS
    }


def test_only_functions_deployed_behind_iam_trust_a_token_whose_signature_cloud_run_removed(two_runs: TwoRuns) -> None:
    """INVOKER_IAM_CHECK=on exactly where --no-allow-unauthenticated (or an event trigger) puts Cloud Run's
    token check before the function; a public webhook must never accept a stripped token."""
    for entry in ENTRY_POINTS:
        for deploy in deploys(two_runs.first_calls, entry.name):
            behind_iam = "no-allow-unauthenticated" in deploy or "trigger-topic" in deploy
            assert behind_iam is not entry.public, entry.name
            assert (env_vars(deploy).get("INVOKER_IAM_CHECK") == "on") is behind_iam, entry.name


def test_invokers_are_the_tasks_account_for_the_handler_and_the_events_account_for_events(two_runs: TwoRuns) -> None:
    invokers = {
        (words(c)[2], flags(c)["member"])
        for c in matching(two_runs.first_calls, "functions", "add-invoker-policy-binding")
    }
    assert invokers == {
        ("task-handler", f"serviceAccount:{sa('tasks-invoker')}"),
        ("reminder-fanout-unit", f"serviceAccount:{sa('tasks-invoker')}"),  # the tick's units, through Cloud Tasks
        *((entry.name, f"serviceAccount:{sa('events-invoker')}") for entry in EVENTS),
    }


def test_each_trigger_topic_has_a_dead_letter_topic_with_a_review_subscription(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    topics = {words(c)[3] for c in matching(calls, "pubsub", "topics", "create")}
    reviews = {words(c)[3]: flags(c) for c in matching(calls, "pubsub", "subscriptions", "create")}
    for entry in EVENTS:
        dead = f"{entry.topic}-dead-letter"
        assert dead in topics
        review = reviews[f"{dead}-review"]
        assert review["topic"] == dead
        assert review["message-retention-duration"] == "7d"
        assert review["expiration-period"] == "never"
        assert first_index(calls, "pubsub", "topics", "create", dead) < first_index(
            calls, "pubsub", "subscriptions", "create", f"{dead}-review"
        )
    assert len(reviews) == len({entry.topic for entry in EVENTS})


def test_each_trigger_subscription_dead_letters_after_the_configured_attempts(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    updates = {
        words(c)[3]: (i, flags(c))
        for i, c in enumerate(calls)
        if words(c)[:3] == ["pubsub", "subscriptions", "update"] and "dead-letter-topic" in flags(c)
    }
    assert set(updates) == {fake_trigger_subscription(entry.name) for entry in EVENTS}
    for entry in EVENTS:
        at, update = updates[fake_trigger_subscription(entry.name)]
        assert update["dead-letter-topic"] == f"projects/{PROJECT}/topics/{entry.topic}-dead-letter"
        assert update["max-delivery-attempts"] == "10"
        assert (update["min-retry-delay"], update["max-retry-delay"]) == ("10s", "600s")
        # the subscription is looked up from the deployed function's Eventarc trigger
        lookup = next(
            i
            for i, c in enumerate(calls)
            if words(c)[:3] == ["functions", "describe", entry.name]
            and flags(c).get("format") == "value(eventTrigger.trigger)"
        )
        trigger = next(
            i
            for i, c in enumerate(calls)
            if words(c)[:4] == ["eventarc", "triggers", "describe", f"{entry.name}-731295"]
        )
        assert flags(calls[trigger])["location"] == REGION
        assert flags(calls[trigger])["format"] == "value(transport.pubsub.subscription)"
        assert first_index(calls, "functions", "deploy", entry.name) < lookup < trigger < at


def test_the_pubsub_service_agent_may_forward_dead_letters_and_nothing_else(two_runs: TwoRuns) -> None:
    calls = two_runs.first_calls
    assert flags(matching(calls, "projects", "describe", PROJECT)[0])["format"] == "value(projectNumber)"
    assert held_by(calls, PUBSUB_AGENT) == {
        ("service-account", sa("events-invoker"), "roles/iam.serviceAccountTokenCreator"),
        *(("topic", f"{entry.topic}-dead-letter", "roles/pubsub.publisher") for entry in EVENTS),
        *(("subscription", fake_trigger_subscription(entry.name), "roles/pubsub.subscriber") for entry in EVENTS),
    }


def test_the_urls_for_twilio_and_the_dead_letter_reviews_are_printed(two_runs: TwoRuns) -> None:
    assert fake_url("twilio-status") in two_runs.first.stdout
    assert f"incoming SMS webhook (patients' replies): {fake_url('waitlist-inbound-sms')}" in two_runs.first.stdout
    assert "SendGrid" in two_runs.first.stdout
    assert "gcloud pubsub subscriptions pull reminders-tick-dead-letter-review --limit=10" in two_runs.first.stdout


def test_each_staged_source_has_main_requirements_and_an_importable_shared(two_runs: TwoRuns) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    for folder in FOLDERS:
        staged = two_runs.staging / folder
        source = two_runs.deployment.repo / "functions" / folder
        assert (staged / "main.py").read_text() == (source / "main.py").read_text()
        assert (staged / "requirements.txt").read_text() == (source / "requirements.txt").read_text()
        probe = (
            "import main, shared, shared.platform.settings; from pathlib import Path; "
            "print(Path(shared.__file__).resolve().parent.parent)"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=staged, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert Path(result.stdout.strip()) == staged.resolve()


# --- a second deploy on the deployed project ---------------------------------------------------------


def test_second_run_updates_in_place(two_runs: TwoRuns) -> None:
    calls = two_runs.second_calls
    assert two_runs.second.returncode == 0, two_runs.second.stderr
    creates = [call for call in calls if "create" in words(call)]
    assert creates == []
    assert {words(c)[3] for c in matching(calls, "tasks", "queues", "update")} == FED_QUEUES
    assert {words(c)[4] for c in matching(calls, "scheduler", "jobs", "update", "pubsub")} == {
        "reminders-tick",
        "failed-tasks-sweep",
        "reports-daily",
        "reports-weekly",
        "inventory-check",
    }
    assert matching(calls, "firestore", "fields", "ttls", "update") == []
    assert matching(calls, "firestore", "indexes", "fields", "update") == []
    assert {entry.name: len(deploys(calls, entry.name)) for entry in ENTRY_POINTS} == {
        entry.name: 1 for entry in ENTRY_POINTS
    }
    assert env_vars(deploys(calls, "reminder-fanout")[0])["TASK_HANDLER_URL"] == fake_url("task-handler")
    updated = {words(c)[3] for c in matching(calls, "pubsub", "subscriptions", "update")}
    assert updated == {
        *(f"{entry.topic}-dead-letter-review" for entry in EVENTS),
        *(fake_trigger_subscription(entry.name) for entry in EVENTS),
    }
    assert bindings(calls) == bindings(two_runs.first_calls)


# --- the registry decides what is deployed -------------------------------------------------------------


def test_a_new_registry_row_brings_its_queue_topic_jobs_and_exact_roles(deployment: Deployment) -> None:
    deployment.add_functions(
        'Function("report-export", "report_export", "build_reports", topic=r.TOPIC_REPORTS_TICK, '
        'enqueues=(r.QUEUE_REPORTS,), publishes=(r.TOPIC_APPOINTMENT_EVENTS,), memory="1Gi", cpu="1", '
        "timeout_seconds=300, local_slot=9)",
        'Function("waitlist-inbound", "waitlist", "inbound_sms", public=True, secrets=(SECRET_TWILIO_TOKEN,), '
        "enqueues=(r.QUEUE_WAITLIST,), local_slot=10)",
    )
    deployment.write_stub("report_export", "build_reports", "cloud_event")
    deployment.write_stub("waitlist", "inbound_sms", "http")
    result = deployment.run()
    assert result.returncode == 0, result.stderr
    calls = deployment.calls()
    queues = {words(c)[3]: flags(c) for c in matching(calls, "tasks", "queues", "create")}
    assert set(queues) == {*FED_QUEUES, "waitlist"}
    assert (queues["waitlist"]["max-dispatches-per-second"], queues["waitlist"]["max-concurrent-dispatches"]) == (
        "1",
        "2",
    )
    assert (queues["reports"]["max-dispatches-per-second"], queues["reports"]["max-concurrent-dispatches"]) == (
        "5",
        "5",
    )
    jobs = {words(c)[4]: flags(c) for c in matching(calls, "scheduler", "jobs", "create", "pubsub")}
    assert json.loads(jobs["reports-daily"]["message-body"]) == {"period": "daily"}
    assert json.loads(jobs["reports-weekly"]["message-body"]) == {"period": "weekly"}
    assert jobs["reports-weekly"]["schedule"] == "0 7 * * 1"
    assert {"reports-tick", "reports-tick-dead-letter"} <= {
        words(c)[3] for c in matching(calls, "pubsub", "topics", "create")
    }
    report_export = Function(
        "report-export",
        "report_export",
        "build_reports",
        topic="reports-tick",
        enqueues=("reports",),
        publishes=("appointment-events",),
    )
    assert held_by(calls, f"serviceAccount:{fn_sa('report-export')}") == expected_roles(report_export)
    waitlist = Function(
        "waitlist-inbound", "waitlist", "inbound_sms", secrets=("TWILIO_AUTH_TOKEN",), enqueues=("waitlist",)
    )
    assert held_by(calls, f"serviceAccount:{fn_sa('waitlist-inbound')}") == expected_roles(waitlist)
    # the sweep may now put a failed task back on every queue something feeds
    assert {q for kind, q, _ in held_by(calls, f"serviceAccount:{fn_sa('retry-sweep')}") if kind == "queue"} == {
        *REMINDER_QUEUES,
        "waitlist",
        "reports",
        *CAMPAIGN_QUEUES,
    }
    (inbound,) = deploys(calls, "waitlist-inbound")[-1:]
    assert inbound["ingress-settings"] == "all" and "allow-unauthenticated" in inbound
    (builder,) = deploys(calls, "report-export")
    assert (builder["memory"], builder["cpu"], builder["timeout"], builder["ingress-settings"]) == (
        "1Gi",
        "1",
        "300s",
        "internal-only",
    )
    assert fake_trigger_subscription("report-export") in {
        words(c)[3] for c in matching(calls, "pubsub", "subscriptions", "update")
    }


@pytest.mark.parametrize(
    ("row", "named"),
    [
        (
            'Function("big-memory", "task_handler", "handle_task", memory="2Gi", cpu="0.5")',
            "big-memory: memory 2Gi needs at least 1 vCPU",
        ),
        (
            'Function("tiny-cpu", "task_handler", "handle_task", memory="768Mi", cpu="0.333")',
            "tiny-cpu: memory 768Mi needs at least 0.5 vCPU",
        ),
        (
            'Function("three-cpus", "task_handler", "handle_task", memory="4Gi", cpu="3")',
            "three-cpus: cpu above 1 must be one of [1, 2, 4, 6, 8]",
        ),
        (
            'Function("four-cpus", "task_handler", "handle_task", memory="1Gi", cpu="4")',
            "four-cpus: cpu 4 allows memory from 2048Mi to 16384Mi",
        ),
        ('Function("megabytes", "task_handler", "handle_task", memory="256MB")', "megabytes: memory must look like"),
        (
            'Function("slow-event", "task_handler", "sweep_failed_tasks", topic=r.TOPIC_FAILED_TASKS_SWEEP, '
            "timeout_seconds=600)",
            "slow-event: timeout_seconds must be 1 to 540",
        ),
        (
            'Function("a-function-name-that-is-too-long", "task_handler", "handle_task")',
            "fn-a-function-name-that-is-too-long is 35 characters; IAM allows at most 30",
        ),
        (
            'Function("odd-queue", "task_handler", "handle_task", enqueues=("no-such-queue",))',
            "odd-queue: queue 'no-such-queue' is not in shared/platform/resources.py QUEUES",
        ),
        (
            'Function("odd-secret", "task_handler", "handle_task", secrets=("STRIPE_KEY",))',
            "odd-secret: secret 'STRIPE_KEY' is not in deploy/registry.py SECRETS",
        ),
        ('Function("task-handler", "task_handler", "handle_task")', "function task-handler is listed twice"),
    ],
)
def test_an_invalid_registry_row_fails_before_any_gcloud_call(deployment: Deployment, row: str, named: str) -> None:
    deployment.add_functions(row)
    result = deployment.run()
    assert result.returncode == 2
    assert deployment.calls() == []
    assert "cannot deploy; nothing was changed" in result.stderr
    assert named in result.stderr


def test_registry_problems_are_reported_with_the_settings_problems(deployment: Deployment) -> None:
    deployment.add_functions('Function("big-memory", "task_handler", "handle_task", memory="2Gi", cpu="0.5")')
    result = deployment.run(settings={**SETTINGS, "TWILIO_MPS": "fast"})
    assert deployment.calls() == []
    assert "big-memory" in result.stderr and "TWILIO_MPS" in result.stderr


@pytest.mark.parametrize(
    ("memory", "cpu"),
    [
        ("128Mi", "0.083"),
        ("256Mi", "0.167"),
        ("512Mi", "0.333"),
        ("1Gi", "0.583"),
        ("1Gi", "0.5"),
        ("2Gi", "1"),
        ("4Gi", "1"),
        ("8Gi", "2"),
        ("2Gi", "4"),
        ("16Gi", "4"),
        ("24Gi", "6"),
        ("32Gi", "8"),
        ("512Mi", "0.08"),
    ],
)
def test_memory_and_cpu_pairs_cloud_run_accepts(memory: str, cpu: str) -> None:
    assert plan.resource_problems(Function("f", "f", "f", memory=memory, cpu=cpu)) == []


@pytest.mark.parametrize(
    ("memory", "cpu"),
    [
        ("1Gi", "0.333"),
        ("2Gi", "0.5"),
        ("8Gi", "1"),
        ("16Gi", "2"),
        ("1Gi", "4"),
        ("2Gi", "6"),
        ("64Mi", "0.167"),
        ("256Mi", "0.05"),
        ("256Mi", "1.5"),
        ("256Mi", "0.1667"),
        ("256Mi", "16"),
        ("0.5Gi", "1"),
        ("33Gi", "8"),
    ],
)
def test_memory_and_cpu_pairs_cloud_run_rejects(memory: str, cpu: str) -> None:
    assert plan.resource_problems(Function("f", "f", "f", memory=memory, cpu=cpu))


def test_the_registry_as_committed_is_valid_and_json_still_has_what_the_local_stack_reads() -> None:
    assert plan.registry_problems(registry.FUNCTIONS, registry.QUEUES, registry.JOBS) == []
    result = subprocess.run(
        [sys.executable, "-m", "deploy.registry"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    rows = json.loads(result.stdout)["functions"]
    assert [row["name"] for row in rows] == [fn.name for fn in FUNCTIONS]
    for row, fn in zip(rows, FUNCTIONS, strict=True):
        assert (row["signature"], row["account_id"], row["local_slot"]) == (fn.signature, fn.account_id, fn.local_slot)


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


def test_dry_run_shows_one_account_per_function_the_ingress_and_the_dead_letters(deployment: Deployment) -> None:
    result = deployment.run(
        "--dry-run",
        settings={"PROJECT_ID": PROJECT, "REGION": REGION, "TWILIO_MPS": "1", "DEAD_LETTER_MAX_ATTEMPTS": "25"},
    )
    assert result.returncode == 0, result.stderr
    commands = [shlex.split(line) for line in result.stdout.splitlines() if line and not line.startswith("#")]
    accounts = [c[4] for c in commands if c[:4] == ["gcloud", "iam", "service-accounts", "create"]]
    assert accounts == [
        "tasks-invoker",
        "events-invoker",
        "functions-build",
        *(f"fn-{entry.name}" for entry in ENTRY_POINTS),
    ]
    for command in (c for c in commands if c[:3] == ["gcloud", "functions", "deploy"]):
        expected = "all" if command[3] in PUBLIC else "internal-only"
        assert flags(command)["ingress-settings"] == expected, command[3]
    updates = [c for c in commands if c[:4] == ["gcloud", "pubsub", "subscriptions", "update"]]
    assert len(updates) == len(EVENTS)
    assert all(flags(c)["max-delivery-attempts"] == "25" for c in updates)
    assert "--member=serviceAccount:service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com" in result.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
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
        ({"DEAD_LETTER_MAX_ATTEMPTS": "4"}, "DEAD_LETTER_MAX_ATTEMPTS must be a whole number from 5 to 100"),
        ({"DEAD_LETTER_MAX_ATTEMPTS": "101"}, "DEAD_LETTER_MAX_ATTEMPTS"),
        ({"DEAD_LETTER_MAX_ATTEMPTS": "ten"}, "DEAD_LETTER_MAX_ATTEMPTS"),
        ({"EVENT_MIN_RETRY_DELAY": "1m"}, "EVENT_MIN_RETRY_DELAY"),
        ({"EVENT_MAX_RETRY_DELAY": "601s"}, "EVENT_MAX_RETRY_DELAY"),
        ({"EVENT_MIN_RETRY_DELAY": "300s", "EVENT_MAX_RETRY_DELAY": "60s"}, "must not exceed EVENT_MAX_RETRY_DELAY"),
        ({"PUBLIC_INVOKER": "public"}, "PUBLIC_INVOKER must be allusers"),
        ({"INDEX_WAIT_SECONDS": "3601"}, "INDEX_WAIT_SECONDS must be a whole number from 0 to 3600"),
        ({"INDEX_WAIT_SECONDS": "10m"}, "INDEX_WAIT_SECONDS"),
        ({"ALERT_EMAIL": "oncall"}, "ALERT_EMAIL must be one email address"),
        ({"ALERT_EMAIL": "a@clinic.example,b@clinic.example"}, "ALERT_EMAIL must be one email address"),
    ],
)
def test_bad_or_missing_settings_fail_before_any_gcloud_call(
    deployment: Deployment, change: dict[str, str], named: str
) -> None:
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
    env_file.write_text(
        f"PROJECT_ID={PROJECT}\nREGION=europe-west1\nTWILIO_MPS=3\n"
        'REMINDER_SCHEDULE="30 9 * * *"\nDEAD_LETTER_MAX_ATTEMPTS=20\n# a comment\n'
    )
    result = deployment.run("--env-file", str(env_file), "--dry-run", settings={"REGION": REGION})
    assert result.returncode == 0, result.stderr
    assert "--max-dispatches-per-second=3 " in result.stdout
    assert "'--schedule=30 9 * * *'" in result.stdout
    assert "--max-delivery-attempts=20 " in result.stdout
    assert f"--region={REGION} " in result.stdout and "europe-west1" not in result.stdout


def test_deploy_env_example_names_every_setting_and_loads_cleanly(deployment: Deployment) -> None:
    script = (REPO / "deploy.sh").read_text()
    declared = script[script.index("readonly SETTING_NAMES=(") + len("readonly SETTING_NAMES=(") :]
    names = declared[: declared.index(")")].split()
    example = (REPO / "deploy.env.example").read_text()
    assert [name for name in names if f"{name}=" not in example] == []
    result = deployment.run("--env-file", str(REPO / "deploy.env.example"), "--dry-run", settings={})
    assert result.returncode == 0, result.stderr


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


def test_a_failing_dead_letter_update_stops_the_deploy(deployment: Deployment) -> None:
    result = deployment.run(FAKE_GCLOUD_FAIL=f"pubsub subscriptions update {fake_trigger_subscription('retry-sweep')}")
    assert result.returncode != 0
    assert "FAILED" in result.stderr and fake_trigger_subscription("retry-sweep") in result.stderr
    assert words(deployment.calls()[-1])[:4] == [
        "pubsub",
        "subscriptions",
        "update",
        fake_trigger_subscription("retry-sweep"),
    ]


def test_a_look_up_failing_for_another_reason_than_not_found_stops_instead_of_creating(deployment: Deployment) -> None:
    result = deployment.run(FAKE_GCLOUD_FAIL="tasks queues describe reminders-sms")
    assert result.returncode != 0
    assert "PERMISSION_DENIED" in result.stderr
    assert "gcloud tasks queues describe reminders-sms" in result.stderr
    assert matching(deployment.calls(), "tasks", "queues", "create") == []


def test_a_trigger_look_up_failing_stops_instead_of_guessing(deployment: Deployment) -> None:
    result = deployment.run(FAKE_GCLOUD_FAIL="eventarc triggers describe reminder-fanout")
    assert result.returncode != 0
    assert "PERMISSION_DENIED" in result.stderr and "gcloud eventarc triggers describe" in result.stderr
    assert [
        c for c in matching(deployment.calls(), "pubsub", "subscriptions", "update") if "dead-letter-topic" in flags(c)
    ] == []


def test_a_secret_without_a_version_stops_the_deploy_with_how_to_add_it(tmp_path: Path) -> None:
    deployment = make_deployment(tmp_path)
    deployment.seed_secret_versions("twilio-account-sid", "sendgrid-api-key")
    result = deployment.run()
    assert result.returncode != 0
    assert "twilio-auth-token (TWILIO_AUTH_TOKEN)" in result.stderr
    assert "gcloud secrets versions add NAME --data-file=-" in result.stderr
    assert matching(deployment.calls(), "tasks") == []


def test_an_entry_point_not_written_yet_is_skipped_with_a_note_and_so_are_its_resources(deployment: Deployment) -> None:
    shutil.rmtree(deployment.repo / "functions" / "reminder_fanout")
    shutil.rmtree(deployment.repo / "functions" / "waitlist")
    result = deployment.run()
    assert result.returncode == 0, result.stderr
    calls = deployment.calls()
    assert "skipping reminder-fanout" in result.stdout and "skipping appointment-events" in result.stdout
    assert "skipping waitlist-cancellations" in result.stdout
    assert deploys(calls, "reminder-fanout") == [] and deploys(calls, "appointment-events") == []
    created = {words(c)[3] for c in matching(calls, "iam", "service-accounts", "create")}
    assert "fn-reminder-fanout" not in created and "fn-appointment-events" not in created
    assert "fn-waitlist-claim" not in created
    assert deploys(calls, "task-handler")
    topics = {words(c)[3] for c in matching(calls, "pubsub", "topics", "create")}
    # appointment-events stays (the task handler publishes a waitlist winner's appointment.created to it); the
    # reports' topics and jobs stay with report_builder
    kept = ("failed-tasks-sweep", "reports-tick", "inventory-tick")
    assert topics == {*kept, *(resources.dead_letter_topic(t) for t in kept), "appointment-events"}
    jobs = {words(c)[4] for c in matching(calls, "scheduler", "jobs", "create", "pubsub")}
    assert jobs == {"failed-tasks-sweep", "reports-daily", "reports-weekly", "inventory-check"}
    # the waitlist's and the campaigns' queues (fed by the task handler), the reports' and the reminders' (a
    # feedback score's review link or alert, from feedback-page) are all the sweep may put tasks back on
    fed = {resources.QUEUE_WAITLIST, resources.QUEUE_REPORTS, *REMINDER_QUEUES, *CAMPAIGN_QUEUES}
    assert {words(c)[3] for c in matching(calls, "tasks", "queues", "create")} == fed
    assert {q for kind, q, _ in held_by(calls, f"serviceAccount:{fn_sa('retry-sweep')}") if kind == "queue"} == fed


def test_deploy_sh_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shellcheck is not installed (apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(
        [shellcheck, "deploy.sh", "tests/fixtures/fake_gcloud/gcloud"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


def test_no_composite_index_is_listed_twice() -> None:
    """Two flows needing the same index list it once (a second create of it would fail the deploy's step 6)."""
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    shapes = [
        (index["collectionGroup"], index["queryScope"], tuple((f["fieldPath"], f["order"]) for f in index["fields"]))
        for index in spec["indexes"]
    ]
    assert len(shapes) == len(set(shapes))
