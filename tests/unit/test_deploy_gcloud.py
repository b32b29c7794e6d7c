"""Every gcloud command deploy.sh would run, parsed by the real gcloud CLI, offline.

`./deploy.sh --dry-run --env-file deploy.env.example` prints each command (and each look-up, as `# check:`).
Each is run through the installed gcloud with an empty configuration: no account, no project, prompts off,
usage reporting and update checks off, the metadata server and any proxy pointed at a closed loopback port.
gcloud parses a command's arguments before it runs it: a parse error (an unknown flag, a bad value, a
command or group that does not exist, a --*-from-file it cannot read) exits 2 with "ERROR: (gcloud...)",
whereas a command that parsed goes on to its Run and stops there for want of credentials (exit 1, "You do
not currently have an active account selected"). The test demands the second for every command, so nothing
can reach the network or change anything, and a flag gcloud does not know fails here, not in a deploy.

A dry run shows the path of a first install; the update paths of a re-run (describe → update) are taken from
a second deploy against the fake gcloud of tests/unit/test_deploy.py. Commands of one shape (the same command
and the same set of flags, names aside) are checked once, four at a time.

The JSON documents those commands pass (--policy-from-file, --config-from-file) are read by gcloud only in its
Run, so they are decoded here into gcloud's own API messages with its interpreter and library, as Run would.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from deploy import registry
from deploy.plan import REVIEW_SUFFIX
from shared.platform import resources

REPO = Path(__file__).resolve().parents[2]
GCLOUD = shutil.which("gcloud")
PARSED = "You do not currently have an active account selected"
CLOSED_PORT = "127.0.0.1:9"  # discard: nothing listens, so any attempt to connect fails at once
WORKERS = 4

pytestmark = pytest.mark.skipif(GCLOUD is None, reason="the Google Cloud CLI (gcloud) is not installed")


def offline_env(config: Path) -> dict[str, str]:
    """gcloud with no account, no project and nowhere to connect to."""
    return {
        "PATH": os.pathsep.join([str(Path(GCLOUD or "gcloud").parent), "/usr/bin", "/bin"]),
        "HOME": str(config),
        "CLOUDSDK_CONFIG": str(config),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "GCE_METADATA_HOST": CLOSED_PORT,
        "GCE_METADATA_IP": CLOSED_PORT,
        "HTTPS_PROXY": f"http://{CLOSED_PORT}",
        "HTTP_PROXY": f"http://{CLOSED_PORT}",
        "NO_PROXY": "",
    }


@dataclass(frozen=True)
class Verdict:
    command: tuple[str, ...]
    returncode: int
    stderr: str

    @property
    def parsed(self) -> bool:
        return self.returncode == 1 and PARSED in self.stderr


def check(command: tuple[str, ...], config: Path) -> Verdict:
    result = subprocess.run(
        [GCLOUD or "gcloud", *command[1:]],
        env=offline_env(config),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Verdict(command, result.returncode, result.stderr)


def dry_run_commands(tmp: Path, **settings: str) -> list[tuple[str, ...]]:
    """The gcloud commands and look-ups of a dry run with deploy.env.example (plus `settings`)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "TMPDIR": str(tmp), "PYTHON": sys.executable, **settings}
    result = subprocess.run(
        ["bash", "deploy.sh", "--dry-run", "--env-file", "deploy.env.example"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    commands = []
    for line in result.stdout.splitlines():
        line = line.removeprefix("# check: ")
        if line.startswith("gcloud "):
            commands.append(tuple(shlex.split(line)))
    return commands


def known_names() -> set[str]:
    """Every name deploy.sh puts in a command's positional arguments: what varies between two of one shape."""
    names = {fn.name for fn in registry.FUNCTIONS} | {f"fn-{fn.name}" for fn in registry.FUNCTIONS}
    names |= set(registry.INVOKERS) | {"functions-build"}  # the accounts deploy.sh makes besides fn-*
    names |= set(resources.QUEUES) | set(resources.TOPICS) | {job.name for job in registry.JOBS}
    names |= {resources.dead_letter_topic(t) for t in resources.TOPICS}
    names |= {resources.dead_letter_topic(t) + REVIEW_SUFFIX for t in resources.TOPICS}
    names |= {secret.lower().replace("_", "-") for secret in registry.SECRETS}
    names |= {path.stem for path in (REPO / "deploy" / "monitoring" / "metrics").glob("*.json")}
    return names


def shape(command: tuple[str, ...], names: set[str]) -> tuple[tuple[str, ...], frozenset[str]]:
    """The command path with names masked, and its flags' names."""
    project = {w.removeprefix("--project=") for w in command if w.startswith("--project=")}
    words = tuple(
        "NAME" if w in names | project or "@" in w or "/" in w or "known-after-deploy" in w else w
        for w in command
        if not w.startswith("--")
    )
    return words, frozenset(w.split("=", 1)[0] for w in command if w.startswith("--"))


def distinct(commands: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    names, seen, out = known_names(), set(), []
    for command in commands:
        key = shape(command, names)
        if key not in seen:
            seen.add(key)
            out.append(command)
    return out


def check_all(commands: list[tuple[str, ...]], config: Path) -> list[Verdict]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(lambda command: check(command, config), commands))


def update_path_commands(tmp: Path, **settings: str) -> list[tuple[str, ...]]:
    """What a re-run on a deployed project runs (describe → update): a dry run shows only the create path, so
    these are recorded from a second deploy against tests/unit/test_deploy.py's fake gcloud."""
    from tests.unit.test_deploy import SECRETS, SETTINGS, make_deployment

    deployment = make_deployment(tmp / "fake-project")
    deployment.seed_secret_versions(*SECRETS.values())
    knobs = {"DEPLOY_INDEX_POLL_SECONDS": "0", "DEPLOY_IAM_RETRY_SECONDS": "0"}
    for _ in range(2):
        result = deployment.run(settings={**SETTINGS, **settings}, **knobs)
        assert result.returncode == 0, result.stderr
    # the rest of a re-run (describe, list, add-iam-policy-binding, deploy) has the dry run's shapes
    return [("gcloud", *call) for call in deployment.calls() if "update" in call]


def test_gcloud_parses_every_command_of_a_dry_run_and_of_a_rerun(tmp_path: Path) -> None:
    config = tmp_path / "gcloud-config"
    config.mkdir()
    commands = dry_run_commands(tmp_path)
    # the other paths: an alert channel, webhooks public without the invoker check, a named build account
    others = {
        "ALERT_EMAIL": "oncall@clinic.example",
        "PUBLIC_INVOKER": "iam-check-off",
        "BUILD_SERVICE_ACCOUNT": "ci-builder@my-medspa-project.iam.gserviceaccount.com",
    }
    commands += dry_run_commands(tmp_path, **others)
    commands += update_path_commands(tmp_path, **others)
    checked = distinct(commands)
    started = time.monotonic()
    verdicts = check_all(checked, config)
    seconds = time.monotonic() - started
    refused = [
        f"{shlex.join(v.command)}\n    exit {v.returncode}: {v.stderr.strip()[:400]}" for v in verdicts if not v.parsed
    ]
    summary = f"gcloud parsed {len(checked)} distinct commands of {len(commands)} printed, in {seconds:.0f} s"
    print(summary)
    assert not refused, summary + "; refused:\n" + "\n".join(refused)
    assert len(checked) >= 50, summary  # every step's commands are there, not a truncated listing
    for group in (
        "functions deploy",
        "run services update",
        "beta monitoring channels create",
        "alpha monitoring policies create",
        "alpha monitoring policies update",
        "monitoring dashboards update",
        "logging metrics update",
        "tasks queues update",
        "scheduler jobs update pubsub",
    ):
        assert any(" ".join(c[1:]).startswith(group) for c in checked), group


@pytest.mark.parametrize(
    "broken",
    [
        "gcloud pubsub topics create reminders-tick --project=my-medspa-project --retention=7d",  # unknown flag
        "gcloud tasks queues update sms --location=us-central1 --max-attempts=many --project=my-medspa-project",
        "gcloud pubsub topic create reminders-tick --project=my-medspa-project",  # no such group
        "gcloud functions deploy f --gen2 --no-invoker-iam-check --region=us-central1 --project=my-medspa-project",
        "gcloud logging metrics create m --config-from-file=/nonexistent.json --project=my-medspa-project",
    ],
)
def test_a_command_gcloud_cannot_parse_is_caught(tmp_path: Path, broken: str) -> None:
    verdict = check(tuple(shlex.split(broken)), tmp_path)
    assert not verdict.parsed
    assert verdict.returncode == 2 and "ERROR: (gcloud" in verdict.stderr


def test_a_well_formed_command_is_not_caught(tmp_path: Path) -> None:
    good = "gcloud pubsub topics create reminders-tick --project=my-medspa-project"
    assert check(tuple(shlex.split(good)), tmp_path).parsed


def test_commands_of_one_shape_are_checked_once_and_different_flags_are_not_merged() -> None:
    names = known_names()
    one = ("gcloud", "pubsub", "topics", "create", "reminders-tick", "--project=p")
    same = ("gcloud", "pubsub", "topics", "create", "inventory-tick", "--project=q")
    other = ("gcloud", "pubsub", "topics", "create", "inventory-tick", "--project=q", "--labels=a=b")
    assert shape(one, names) == shape(same, names) != shape(other, names)
    assert distinct([one, same, other]) == [one, other]


# What gcloud does with --policy-from-file / --config-from-file once it has an account: decode the document
# into its API message (gcloud's own generated classes), refusing unknown fields and enum values. Checked here
# offline with gcloud's interpreter and library, so a field the API (as gcloud knows it) lacks fails the test.
DECODE = """
import json, sys
sys.path[:0] = [sys.argv[1] + "/lib", sys.argv[1] + "/lib/third_party"]
from googlecloudsdk.api_lib.util.messages import DictToMessageWithErrorCheck
from googlecloudsdk.generated_clients.apis.logging.v2 import logging_v2_messages as logging_v2
from googlecloudsdk.generated_clients.apis.monitoring.v1 import monitoring_v1_messages as monitoring_v1
from googlecloudsdk.generated_clients.apis.monitoring.v3 import monitoring_v3_messages as monitoring_v3
kinds = {"metric": logging_v2.LogMetric, "policy": monitoring_v3.AlertPolicy, "dashboard": monitoring_v1.Dashboard}
for kind, path in zip(sys.argv[2::2], sys.argv[3::2]):
    try:
        DictToMessageWithErrorCheck(json.load(open(path)), kinds[kind])
    except Exception as exc:
        print(f"{path}: {exc}".replace(chr(10), " "))
"""


def decode_with_gcloud(tmp: Path, documents: list[tuple[str, Path]]) -> list[str]:
    """gcloud's verdict on each (kind, JSON file): one line per document it cannot decode."""
    env = offline_env(tmp)
    info = subprocess.run(
        [GCLOUD or "gcloud", "info", "--format=value(installation.sdk_root,basic.python_location)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sdk_root, python = info.stdout.split()
    args = [str(item) for kind, path in documents for item in (kind, path)]
    result = subprocess.run(
        [python, "-c", DECODE, sdk_root, *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.splitlines()


def test_gcloud_decodes_every_monitoring_document_into_its_api_message(tmp_path: Path) -> None:
    from deploy import alerts

    documents = [(kind, path) for kind, _, path in alerts.rows()]
    assert decode_with_gcloud(tmp_path, documents) == []
    assert len(documents) == 13


def test_a_monitoring_document_with_a_field_the_api_lacks_is_caught(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"displayName": "x", "severty": "ERROR", "combiner": "OR"}')
    metric = tmp_path / "metric.json"
    metric.write_text('{"name": "m", "filter": "severity>=ERROR", "metricDescriptor": {"metricKind": "GAUGE_ISH"}}')
    refused = decode_with_gcloud(tmp_path, [("policy", policy), ("metric", metric)])
    assert len(refused) == 2 and "severty" in refused[0] and "metricKind" in refused[1]
