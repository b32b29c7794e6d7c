"""What the local stack runs: one Component per process, with how to launch it and how to tell it is up.

Emulators: gcloud's official Firestore and Pub/Sub emulators when this machine's gcloud has them (and
java), otherwise local/standins.py; the Cloud Tasks emulator from .venv-tasks; the provider sandbox;
one functions-framework process per entry point, run from a staged copy of its source (deploy/stage.py);
and the Pub/Sub bridge, which starts once the rest is healthy.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from deploy.stage import FUNCTIONS_DIR, SHARED_DIR, fingerprint, source_fingerprint, stage
from local import identity, runtime, tasks_emulator, webhook_keys
from local.config import QUEUES, REPO_ROOT, TOPICS, EntryPoint, StackConfig
from shared.platform.settings import Settings

PROBE_TIMEOUT_SECONDS = 0.5
# gcloud must not stop to ask, phone home or look for updates (CI machines have no network).
GCLOUD_ENV = {
    "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
}


class LaunchError(RuntimeError):
    """A component cannot be prepared (no emulator, venv creation failed, ...); the message says why."""


@dataclass(frozen=True)
class Launch:
    command: list[str]
    env: dict[str, str]
    cwd: Path = REPO_ROOT


@dataclass(frozen=True)
class Component:
    name: str
    key: str  # what it runs; a running component with another key is restarted
    address: str  # what `up` and `status` print
    ports: tuple[int, ...]
    probe: Callable[[], bool] = field(repr=False)
    launch: Callable[[], Launch] = field(repr=False)  # prepares (stage, install) and returns the argv
    phase: int = 0  # phase 1 starts once every phase 0 component is healthy
    depends_on: tuple[str, ...] = ()  # restarted whenever one of these is (re)started


@dataclass(frozen=True)
class Plan:
    components: list[Component]
    skipped: list[str]  # one warning line per component that cannot run yet

    def names(self) -> list[str]:
        return [component.name for component in self.components]

    def component(self, name: str) -> Component:
        return next(component for component in self.components if component.name == name)


def emulator_kind() -> str:
    """Return "gcloud" when gcloud's Firestore and Pub/Sub emulators (and java) are here, else "standins".

    MEDSPA_EMULATORS=gcloud|standins forces one. Offline and fast: looks for the emulator folders
    under gcloud's SDK root (resolved from the gcloud binary; `gcloud info` only as a fallback).
    """
    forced = os.environ.get("MEDSPA_EMULATORS", "auto")
    if forced in ("gcloud", "standins"):
        return forced
    gcloud = shutil.which("gcloud")
    if gcloud is None or shutil.which("java") is None:
        return "standins"
    sdk_root = Path(gcloud).resolve().parent.parent
    if not (sdk_root / "platform").is_dir():
        result = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            env={**os.environ, **GCLOUD_ENV},
            check=False,
        )
        sdk_root = Path(result.stdout.strip() or "/nonexistent")
    wanted = ("cloud-firestore-emulator", "pubsub-emulator")
    return "gcloud" if all((sdk_root / "platform" / name).is_dir() for name in wanted) else "standins"


# ------------------------------------------------------------------------------------------- probes


def grpc_ready(address: str) -> bool:
    """True when a gRPC server answers the HTTP/2 handshake on address (official emulators and stand-ins)."""
    import grpc

    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=PROBE_TIMEOUT_SECONDS)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def http_status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=PROBE_TIMEOUT_SECONDS).status_code
    except requests.RequestException:
        return None


def queues_ready(config: StackConfig) -> bool:
    """True when the Cloud Tasks emulator lists every queue of the stack (official client, as the product)."""
    import grpc
    from google.api_core.exceptions import GoogleAPICallError
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    channel = grpc.insecure_channel(f"{config.host}:{config.tasks_port}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    try:
        listed = client.list_queues(
            parent=f"projects/{config.project}/locations/{config.location}", timeout=PROBE_TIMEOUT_SECONDS
        )
        names = {queue.name for queue in listed}
    except GoogleAPICallError:
        return False
    finally:
        channel.close()
    return all(config.queue_path(queue) in names for queue in QUEUES)


def bridge_ready_file(config: StackConfig) -> Path:
    return config.state_dir / "run" / "pubsub_bridge.ready"


# --------------------------------------------------------------------------------------- components


def _standin(kind: str, config: StackConfig, port: int) -> list[str]:
    try:
        from local import standins
    except ImportError as exc:
        raise LaunchError(
            f"no gcloud {kind} emulator here and local/standins.py cannot be imported: {exc}. "
            "Install google-cloud-cli with its emulators, or add the stand-ins."
        ) from exc
    command_of = standins.firestore_command if kind == "firestore" else standins.pubsub_command
    try:
        return command_of(config.host, port)
    except standins.StandinUnavailable as exc:
        raise LaunchError(f"{kind} stand-in unavailable: {exc}") from exc


def _emulators(config: StackConfig, kind: str) -> list[Component]:
    gcloud_env = {**os.environ, **GCLOUD_ENV}
    official = {
        "firestore": [
            "gcloud",
            "emulators",
            "firestore",
            "start",
            f"--host-port={config.host}:{config.firestore_port}",
        ],
        "pubsub": [
            "gcloud",
            "beta",
            "emulators",
            "pubsub",
            "start",
            f"--host-port={config.host}:{config.pubsub_port}",
            f"--project={config.project}",
        ],
    }
    components: list[Component] = []
    for name, port in (("firestore", config.firestore_port), ("pubsub", config.pubsub_port)):

        def launch(name: str = name, port: int = port) -> Launch:
            if kind == "gcloud":
                return Launch(official[name], gcloud_env)
            return Launch(_standin(name, config, port), dict(os.environ))

        address = f"{config.host}:{port}"
        components.append(
            Component(
                name,
                f"{kind}:{address}",
                f"{address} ({kind})",
                (port,),
                probe=functools.partial(grpc_ready, address),
                launch=launch,
            )
        )
    return components


def _tasks(config: StackConfig, env: dict[str, str]) -> Component:
    max_attempts = Settings.from_env(env).queue_max_attempts

    def launch() -> Launch:
        try:
            return Launch(tasks_emulator.command(config, QUEUES, max_attempts), dict(os.environ))
        except tasks_emulator.TasksVenvError as exc:
            raise LaunchError(f"cannot create .venv-tasks for the Cloud Tasks emulator: {exc}") from exc

    address = f"{config.host}:{config.tasks_port}"
    code = source_fingerprint(
        REPO_ROOT / "local" / "tasks_emulator.py", REPO_ROOT / "local" / "identity.py", SHARED_DIR / "platform"
    )
    return Component(
        "tasks",
        f"tasks:{address}:{max_attempts}:{','.join(QUEUES)}:scale={config.demo_time_scale}"
        f":backoff={config.tasks_min_backoff}-{config.tasks_max_backoff}:twice={config.duplicate_deliveries}"
        f":rates={config.queue_rates}:{code}",
        f"{address} (gcloud-tasks-emulator; queues {', '.join(QUEUES)})",
        (config.tasks_port,),
        probe=lambda: queues_ready(config),
        launch=launch,
    )


def _sandbox(config: StackConfig, env: dict[str, str]) -> Component:
    command = [sys.executable, "-m", "local.sandbox.server", "--host", config.host, "--port", str(config.sandbox_port)]
    key = f"{' '.join(command)} #source={source_fingerprint(REPO_ROOT / 'local' / 'sandbox', SHARED_DIR)}"
    env = {
        **env,
        "SANDBOX_SENDGRID_EVENTS_URL": config.url("sendgrid-events"),
        "SANDBOX_SENDGRID_SIGNING_KEY_FILE": str(webhook_keys.private_key_path(config.state_dir)),
    }
    return Component(
        "sandbox",
        key,
        f"{config.sandbox_url}/ (the console: outbox, conversations, operations)",
        (config.sandbox_port,),
        probe=lambda: http_status(f"{config.sandbox_url}/healthz") == 200,
        launch=lambda: Launch(command, env),
    )


def defines(main_py: Path, target: str) -> bool:
    """True when main.py defines `target` at module level (read, not imported: no env, no heavy imports)."""
    tree = ast.parse(main_py.read_text(), filename=str(main_py))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == target:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == target for t in targets):
                return True
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == target for a in node.names):
            return True
    return False


def functions_framework_command(source: Path, target: str, signature: str, host: str, port: int) -> list[str]:
    """Argv serving one entry point of `source` (a main.py) on the deployed runtime's Python (local/runtime.py)."""
    runner = runtime.functions_python().runner  # its path (.venv-312 or .venv) is in the component's key
    return [
        str(runner if runner.exists() else "functions-framework"),
        "--source",
        str(source),
        "--target",
        target,
        "--signature-type",
        signature,
        "--host",
        host,
        "--port",
        str(port),
    ]


def function_answers(url: str) -> bool:
    """functions-framework answers /robots.txt itself (404) without calling the function."""
    return http_status(url.rstrip("/") + "/robots.txt") is not None


def _function(config: StackConfig, entry: EntryPoint, env: dict[str, str]) -> Component:
    staged = config.state_dir / "staged" / entry.name
    command = functions_framework_command(
        staged / "main.py", entry.target, entry.signature, config.host, entry.backend_port
    )
    # As deploy.sh sets it: on for a function deployed behind IAM, whose front has checked the caller's token.
    iam_check = "on" if entry.behind_iam else "off"

    def launch() -> Launch:
        stage(entry.folder, staged)
        # The staged folder first on sys.path, as on Cloud Functions (cwd /workspace): its vendored
        # `shared` is the one imported, never the repo's.
        return Launch(command, {**env, "PYTHONPATH": str(staged), "INVOKER_IAM_CHECK": iam_check}, cwd=staged)

    url = config.url(entry.name)
    backend = f"http://{config.host}:{entry.backend_port}/"
    # The source's fingerprint and the environment: `up` restarts a function whose code or settings changed.
    settings_digest = hashlib.sha256(json.dumps(config.function_env(), sort_keys=True).encode()).hexdigest()[:12]
    key = f"{' '.join(command)} #source={fingerprint(entry.folder)} #env={settings_digest} #iam={iam_check}"
    where = f"{url} ({entry.signature}{', behind the front' if entry.behind_iam else ', public'})"
    return Component(
        entry.name, key, where, (entry.backend_port,), probe=lambda: function_answers(backend), launch=launch
    )


def _front(config: StackConfig, env: dict[str, str]) -> Component:
    """Cloud Run's front end before the private functions: ingress, token, invoker binding (local/front.py)."""
    from local.front import route_arg, routes

    fronted = routes(config)
    command = [
        *(sys.executable, "-m", "local.front", "--state-dir", str(config.state_dir)),
        *("--host", config.host, "--certs-port", str(config.identity_port)),
    ]
    for route in fronted:
        command += ["--route", route_arg(route)]
    code = source_fingerprint(
        REPO_ROOT / "local" / "front.py", REPO_ROOT / "local" / "identity.py", REPO_ROOT / "deploy" / "registry.py"
    )
    certs = f"http://{config.host}:{config.identity_port}/healthz"

    def probe() -> bool:
        from local.standins import is_listening

        return http_status(certs) == 200 and all(is_listening(config.host, r.port) for r in fronted)

    return Component(
        "front",
        f"{' '.join(command)} #source={code}",
        f"{len(fronted)} private function(s); issuer certificates at http://{config.host}:{config.identity_port}"
        "/oauth2/v1/certs",
        (config.identity_port, *(r.port for r in fronted)),
        probe=probe,
        launch=lambda: Launch(command, env),
    )


def _bridge(config: StackConfig, routes: list[str], env: dict[str, str]) -> Component:
    ready = bridge_ready_file(config)
    command = [
        *(sys.executable, "-m", "local.pubsub_bridge", "--ready-file", str(ready)),
        *("--state-dir", str(config.state_dir)),
    ]
    for topic in TOPICS:
        command += ["--topic", topic]
    for route in routes:
        command += ["--route", route]

    def launch() -> Launch:
        ready.unlink(missing_ok=True)
        return Launch(command, env)

    def probe() -> bool:
        from local.processes import ProcessDir

        running = ProcessDir(config.state_dir).running("pubsub_bridge")
        try:
            return running is not None and int(ready.read_text()) == running.pid
        except (OSError, ValueError):
            return False

    # A restarted emulator has no topics or subscriptions: the bridge (re)creates them when it starts.
    code = source_fingerprint(REPO_ROOT / "local" / "pubsub_bridge.py", REPO_ROOT / "local" / "identity.py", SHARED_DIR)
    key = f"{' '.join(command)} #source={code}"
    return Component(
        "pubsub_bridge",
        key,
        f"{len(routes)} route(s): {' '.join(routes) or '-'}",
        (),
        probe=probe,
        launch=launch,
        phase=1,
        depends_on=("pubsub",),
    )


def plan(config: StackConfig) -> Plan:
    """Every component this checkout can run now, and a warning for each one it cannot yet."""
    identity.ensure(config.state_dir)  # the issuer's key and the ingress key, before anything uses them
    env = {**os.environ, **config.function_env(), "PYTHONUNBUFFERED": "1"}
    components = [*_emulators(config, emulator_kind()), _tasks(config, env), _front(config, env)]
    skipped = []
    if importlib.util.find_spec("local.sandbox.server") is None:
        skipped.append("sandbox: local/sandbox/server.py does not exist yet; provider calls will fail")
    else:
        components.append(_sandbox(config, env))
    routes = []
    for entry in config.entry_points:
        main_py = FUNCTIONS_DIR / entry.folder / "main.py"
        if not main_py.is_file():
            skipped.append(f"{entry.name}: {main_py.relative_to(REPO_ROOT)} does not exist yet")
        elif not defines(main_py, entry.target):
            skipped.append(f"{entry.name}: {main_py.relative_to(REPO_ROOT)} does not define {entry.target}")
        else:
            components.append(_function(config, entry, env))
            if entry.topic:
                routes.append(f"{entry.topic}={config.url(entry.name)}")
    components.append(_bridge(config, routes, env))
    return Plan(components, skipped)


def stack_ports(config: StackConfig) -> list[int]:
    """Every port the stack may listen on, started or not."""
    ports = [config.firestore_port, config.pubsub_port, config.tasks_port, config.sandbox_port, config.identity_port]
    return ports + sorted({port for entry in config.entry_points for port in (entry.port, entry.backend_port)})
