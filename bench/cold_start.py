"""Cold starts (a script, not a test): each deployed entry point's first use against the floor of what it needs.

    python bench/cold_start.py                   # every row of deploy/registry.py, 9 runs of each side
    python bench/cold_start.py --repeat 5 --only task-handler --only twilio-status

For every function in deploy/registry.py: a venv built from its own functions/<folder>/requirements.txt
(cached under .local/cold-start/, keyed by the file's hash), its folder staged as deploy.sh stages it
(deploy/stage.py: main.py and a copy of shared/), and fresh interpreters of that venv, alternately:
- first use: functions-framework loads main.py for the entry point (what a new instance does), the
  adapters its first real request wires are wired (its own cached wiring functions, the clients through
  shared.platform.clients), and one request is handled through the framework's app: one that needs no
  network (a refused signature or token, a too-old tick, a malformed event), so only starting is timed;
- floor: functions-framework loads a one-line function of the same signature, the libraries the entry
  point needs are imported and their clients constructed directly, and the same request is handled.
Both are timed inside the interpreter, from before functions-framework is imported to the answer: CPU
(time.process_time) and wall. The table shows the medians and the median of each first use over the
floor run beside it; the target (<= 1.15x) is judged on CPU, since on a shared machine the wall time
also holds other processes' turns (both are printed). After a first use it also lists every client
library the interpreter holds that neither the entry point's needs nor the floor's imports bring: a leak.

The first run of each side is a warm-up (it writes the staged code's .pyc, as the deployed image holds
them after its first start) and is not counted. The emulator variables point at a closed port: nothing
is reached, and the Google clients skip the credential lookup a cloud instance makes the same way on
both sides. Cloud Functions runs python312 (deploy.sh); the venvs use this interpreter's version.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULT = "COLD_START_RESULT "
CLOSED = "127.0.0.1:9"  # the discard port: nothing listens there
ENV = {
    "GOOGLE_CLOUD_PROJECT": "medspa-cold",
    "FIRESTORE_EMULATOR_HOST": CLOSED,
    "PUBSUB_EMULATOR_HOST": CLOSED,
    "CLOUD_TASKS_EMULATOR_HOST": CLOSED,
    "TASKS_LOCATION": "us-central1",
    "TASK_HANDLER_URL": "https://task-handler.cold.invalid/",
    "FANOUT_UNIT_URL": "https://reminder-fanout-unit.cold.invalid/",
    "TASKS_SERVICE_ACCOUNT": "tasks-invoker@medspa-cold.iam.gserviceaccount.com",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "cold-start-token",
    "SENDGRID_API_KEY": "SG.cold-start-key",
    "STATUS_CALLBACK_URL": "https://twilio-status.cold.invalid/",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyuG0oEQFv3a+Vs1eVW32Qs9Rde1qt0ycgas2"
    "GsOfDMssBs1L0GD/pDGeUfwPdYGZKpOqX8fn+DhbxTCdcfQUvQ==",
    "INBOUND_SMS_URL": "https://waitlist-inbound-sms.cold.invalid/",
    "WAITLIST_CLAIM_URL": "https://waitlist-claim.cold.invalid/",
    "WAITLIST_TOKEN_KEY": "cold-start-claim-key",
    "CAMPAIGN_CLICK_URL": "https://campaign-click.cold.invalid/",
    "CAMPAIGN_LINK_KEY": "cold-start-campaign-link-key",
}

# The client libraries an entry point may need: how the floor imports each and constructs its client.
LIBRARIES: dict[str, tuple[str, str]] = {
    "firestore": ("from google.cloud import firestore", "firestore.Client(project=env['GOOGLE_CLOUD_PROJECT'])"),
    "tasks": (
        "import grpc\nfrom google.cloud import tasks_v2\n"
        "from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport",
        "tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=grpc.insecure_channel(env['CLOUD_TASKS_EMULATOR_HOST'])))",
    ),
    "pubsub": ("from google.cloud import pubsub_v1", "pubsub_v1.PublisherClient()"),
    "twilio": (
        "from twilio.rest import Client as TwilioClient",
        "TwilioClient(env['TWILIO_ACCOUNT_SID'], env['TWILIO_AUTH_TOKEN'])",
    ),
    "twilio-validator": (
        "from twilio.request_validator import RequestValidator",
        "RequestValidator(env['TWILIO_AUTH_TOKEN'])",
    ),
    "twiml": ("from twilio.twiml.messaging_response import MessagingResponse", "MessagingResponse()"),
    "sendgrid": ("from sendgrid import SendGridAPIClient", "SendGridAPIClient(api_key=env['SENDGRID_API_KEY'])"),
    "sendgrid-webhook": ("from sendgrid.helpers.eventwebhook import EventWebhook", "EventWebhook()"),
    "oidc": ("import requests\nfrom google.auth import jwt", "None"),
}
# What each library key puts into sys.modules, to tell which ones a first use imported.
MARKERS = {
    "firestore": "google.cloud.firestore_v1",
    "tasks": "google.cloud.tasks_v2",
    "pubsub": "google.cloud.pubsub_v1",
    "twilio": "twilio.rest",
    "twilio-validator": "twilio.request_validator",
    "twiml": "twilio.twiml",
    "sendgrid": "sendgrid",
    "sendgrid-webhook": "sendgrid.helpers.eventwebhook",
    "oidc": "google.auth.jwt",
}
# A library a key implies (importing the twilio client brings the validator; sendgrid's webhook helper
# lives in the sendgrid package, which imports its client): not a leak.
IMPLIES = {"twilio": ("twilio-validator",), "sendgrid-webhook": ("sendgrid",), "sendgrid": ("sendgrid-webhook",)}


@dataclass(frozen=True)
class Spec:
    """What one entry point's first real request needs, how it is wired, and the request that times it."""

    needs: tuple[str, ...]
    wiring: str  # Python run with `main` (the loaded module) and `clients` (shared.platform.clients)
    request: str  # a key of REQUESTS, or "" when every request does I/O (the retry sweep)


SPECS: dict[str, Spec] = {
    "reminder-fanout": Spec(("firestore", "tasks"), "main.wiring.services().fanout(units=True)", "stale-tick"),
    "appointment-events": Spec(("firestore", "tasks"), "main.wiring.services().fanout(units=False)", "malformed-event"),
    "reminder-fanout-unit": Spec(
        ("firestore", "tasks", "oidc"),
        "main.wiring.unit_router()\nmain.wiring.services().fanout(units=True)",
        "unauthenticated-task",
    ),
    # A reminder: the ledger, the sender with both providers; the OIDC check. Waitlist waves add Cloud
    # Tasks and Pub/Sub on their first wave only.
    "task-handler": Spec(
        ("firestore", "twilio", "sendgrid", "oidc"),
        "main.wiring.router()\nmain.wiring.services().appointment_messages",
        "unauthenticated-task",
    ),
    "twilio-status": Spec(("firestore", "twilio-validator"), "clients.store()", "bad-twilio-signature"),
    "sendgrid-events": Spec(("firestore", "sendgrid-webhook"), "clients.store()", "bad-sendgrid-signature"),
    "report-builder": Spec(("firestore", "tasks"), "main.wiring.services().reports", "stale-tick"),
    "inventory-check": Spec(("firestore", "tasks"), "main.wiring.services().inventory", "stale-tick"),
    "waitlist-cancellations": Spec(("firestore", "tasks"), "main.wiring.services().waves", "malformed-event"),
    # A confirmation or a claim by text: the validator, TwiML, the ledger and the waitlist queue; a winning
    # claim publishes (Pub/Sub is imported then).
    "waitlist-inbound-sms": Spec(
        ("firestore", "tasks", "twilio-validator", "twiml"),
        "main.wiring.services().conversations\nfrom shared.waitlist.inbound import twiml\ntwiml(None)",
        "bad-twilio-signature",
    ),
    "waitlist-claim": Spec(("firestore", "tasks"), "main.services().claim_links", "bad-claim-token"),
    # A campaign message's tracked link: the token check, then one batched read and the click's write.
    "campaign-click": Spec(("firestore",), "main.wiring.services().campaign_links", "bad-link-token"),
    "retry-sweep": Spec(
        ("firestore", "tasks"),
        "main.wiring.task_types()\nclients.store()\nclients.tasks()",
        "",
    ),
}


def _event(data: bytes, time_: str) -> tuple[str, str, dict[str, str], bytes]:
    headers = {
        "Content-Type": "application/json",
        "ce-id": "cold-start-1",
        "ce-source": "//pubsub.googleapis.com/projects/medspa-cold/topics/t",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-specversion": "1.0",
        "ce-time": time_,
    }
    message = {"message": {"data": base64.b64encode(data).decode(), "messageId": "1"}, "subscription": "s"}
    return "POST", "/", headers, json.dumps(message).encode()


REQUESTS: dict[str, tuple[str, str, dict[str, str], bytes]] = {
    "stale-tick": _event(b"{}", "2020-01-01T10:00:00Z"),
    "malformed-event": _event(b"not json", "2026-11-25T10:00:00Z"),
    "unauthenticated-task": ("POST", "/", {"Content-Type": "application/json"}, b"{}"),
    "bad-twilio-signature": (
        "POST",
        "/",
        {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
        b"MessageSid=SM00000000000000000000000000000000&MessageStatus=delivered&From=%2B15550000000&Body=C",
    ),
    "bad-sendgrid-signature": (
        "POST",
        "/",
        {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": "bm90IGEgc2lnbmF0dXJl",
            "X-Twilio-Email-Event-Webhook-Timestamp": "1764064800",
        },
        b"[]",
    ),
    "bad-claim-token": ("GET", "/?t=not-a-token", {}, b""),
    "bad-link-token": ("GET", "/not-a-token", {}, b""),
}


# ---------------------------------------------------------------------------------- in the function's venv


def child(argv: list[str]) -> int:
    """One fresh interpreter's first use (or floor); prints one RESULT line of JSON."""
    job = json.loads(argv[0])
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    import functions_framework  # noqa: F401 - timed: the framework is part of every start

    env = os.environ
    if job["mode"] == "entry":
        app = functions_framework.create_app(job["target"], job["source"], job["signature"])
        loaded = time.perf_counter() - started_wall
        scope: dict[str, Any] = {"main": sys.modules["main"]}
        exec("from shared.platform import clients", scope)  # noqa: S102 - this script's own wiring text
        exec(job["wiring"], scope)  # noqa: S102
    else:
        app = functions_framework.create_app("target", job["source"], job["signature"])
        loaded = time.perf_counter() - started_wall
        for key in job["needs"]:
            statement, construct = LIBRARIES[key]
            scope = {"env": env}
            exec(statement, scope)  # noqa: S102
            eval(construct, scope)  # noqa: S307
    wired = time.perf_counter() - started_wall
    status = 0
    if job["request"]:
        method, path, headers, body = REQUESTS[job["request"]]
        with app.test_client() as client:
            status = client.open(path, method=method, headers=headers, data=body).status_code
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    held = sorted(key for key, module in MARKERS.items() if module in sys.modules)
    result = {"wall": wall, "cpu": cpu, "loaded": loaded, "wired": wired, "status": status, "held": held}
    if job.get("modules"):
        result["modules"] = sorted(sys.modules)
    print(RESULT + json.dumps(result), flush=True)
    return 0


FLOOR_MAIN = '''"""The floor: a one-line function of the same signature."""
import functions_framework


@functions_framework.{decorator}
def target(request):
    return {answer}
'''


# ------------------------------------------------------------------------------------------------ parent


def venv_for(folder: str, base: Path) -> Path:
    """A venv with exactly functions/<folder>/requirements.txt, built once per version of that file."""
    requirements = REPO_ROOT / "functions" / folder / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = base / f"venv-{folder}-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return python
    print(f"building {venv.name} from functions/{folder}/requirements.txt ...", flush=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True)  # noqa: S603
    pip = subprocess.run(  # noqa: S603 - pip from the venv just made
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(requirements)],
        capture_output=True,
        text=True,
        check=False,
    )
    if pip.returncode:
        raise RuntimeError(f"pip install -r {requirements} failed:\n{pip.stderr[-3000:]}")
    (venv / ".complete").write_text(requirements.read_text())
    return python


def run_once(python: Path, job: dict[str, Any]) -> dict[str, Any]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **ENV}  # noqa: S108
    done = subprocess.run(  # noqa: S603 - the venv's interpreter running this file
        [str(python), "-I", str(Path(__file__).resolve()), "--child", json.dumps(job)],
        env=env,
        cwd=Path(job["source"]).parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise RuntimeError(f"{job['mode']} {job['target']} failed ({done.returncode}):\n{done.stderr[-3000:]}")


def measure(name: str, repeat: int, base: Path, diff: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT))
    from deploy import registry
    from deploy.stage import stage

    row, spec = registry.function(name), SPECS[name]
    python = venv_for(row.folder, base)
    source = stage(row.folder, base / "stage" / row.folder) / "main.py"
    floor_dir = base / "floor" / row.signature
    floor_dir.mkdir(parents=True, exist_ok=True)
    decorator, answer = ("http", '"ok"') if row.signature == "http" else ("cloud_event", "None")
    (floor_dir / "main.py").write_text(FLOOR_MAIN.format(decorator=decorator, answer=answer))
    entry = {
        "mode": "entry",
        "target": row.target,
        "source": str(source),
        "signature": row.signature,
        "wiring": spec.wiring,
        "request": spec.request,
    }
    floor = {
        "mode": "floor",
        "source": str(floor_dir / "main.py"),
        "signature": row.signature,
        "needs": list(spec.needs),
        "request": spec.request,
    }
    if diff:
        held = {
            mode: set(run_once(python, {**job, "modules": True})["modules"])
            for mode, job in (("entry", entry), ("floor", floor))
        }
        ours = sorted(m for m in held["entry"] - held["floor"] if m == "main" or m.startswith("shared"))
        theirs = sorted(m for m in held["entry"] - held["floor"] if m not in ours)
        print(
            f"{name}: the first use imports {len(ours)} modules of ours and, beyond the floor's, {len(theirs)} others:"
        )
        print("  " + " ".join(theirs))
        print(f"  the floor imports, beyond the first use's: {' '.join(sorted(held['floor'] - held['entry'])) or '-'}")
    runs: dict[str, list[dict[str, Any]]] = {"entry": [], "floor": []}
    for index in range(repeat + 1):  # the first of each is the warm-up
        for mode, job in (("entry", entry), ("floor", floor)):
            result = run_once(python, job)
            if index:
                runs[mode].append(result)
    # A leak: a client library the first use holds that neither its needs nor the floor's imports bring.
    allowed = set(spec.needs) | set(runs["floor"][-1]["held"])
    for key in spec.needs:
        allowed.update(IMPLIES.get(key, ()))
    entry_held = set(runs["entry"][-1]["held"])
    pairs = list(zip(runs["entry"], runs["floor"], strict=True))  # each first use beside the floor run after it
    return {
        "name": name,
        "folder": row.folder,
        "entry_wall": statistics.median(r["wall"] for r in runs["entry"]),
        "floor_wall": statistics.median(r["wall"] for r in runs["floor"]),
        "entry_cpu": statistics.median(r["cpu"] for r in runs["entry"]),
        "floor_cpu": statistics.median(r["cpu"] for r in runs["floor"]),
        "wall_ratio": statistics.median(e["wall"] / f["wall"] for e, f in pairs),
        "cpu_ratio": statistics.median(e["cpu"] / f["cpu"] for e, f in pairs),
        "status": runs["entry"][-1]["status"],
        "floor_status": runs["floor"][-1]["status"],
        "missing": sorted(set(spec.needs) - entry_held),
        "leaks": sorted(entry_held - allowed),
        "request": spec.request or "(none: every sweep reads)",
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        return child(args[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="counted runs of each side (after one warm-up)")
    parser.add_argument("--only", action="append", default=[], help="a registry name (repeatable)")
    parser.add_argument("--diff", action="store_true", help="also list the modules a first use adds to the floor's")
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / ".local" / "cold-start", help="venvs and staging")
    options = parser.parse_args(args)
    names = options.only or list(SPECS)
    print("load average: {:.2f} {:.2f} {:.2f};".format(*os.getloadavg()), f"{options.repeat} runs a side")
    header = (
        f"{'entry point':24} {'request':24} {'CPU ms':>7} {'floor':>6} {'ratio':>6}  "
        f"{'wall ms':>7} {'floor':>6} {'ratio':>6}  beyond its needs"
    )
    rows = []
    for name in names:
        rows.append(measure(name, options.repeat, options.dir, options.diff))
        row = rows[-1]
        print(f"  {name}: CPU {row['cpu_ratio']:.2f}x, wall {row['wall_ratio']:.2f}x", flush=True)
    print()
    print(header)
    for row in rows:
        extra = ", ".join(row["leaks"]) or "-"
        if row["missing"]:
            extra += f" (never imported: {', '.join(row['missing'])})"
        print(
            f"{row['name']:24} {row['request'][:24]:24} "
            f"{row['entry_cpu'] * 1000:7.0f} {row['floor_cpu'] * 1000:6.0f} {row['cpu_ratio']:5.2f}x  "
            f"{row['entry_wall'] * 1000:7.0f} {row['floor_wall'] * 1000:6.0f} {row['wall_ratio']:5.2f}x  "
            f"{extra} [{row['status']}]"
        )
    worst = max(row["cpu_ratio"] for row in rows)
    print(
        f"worst CPU ratio {worst:.2f}x (target <= 1.15x); ratios are medians of each first use over the floor run "
        f"beside it; load average now " + "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    )
    leaks = [row["name"] for row in rows if row["leaks"]]
    return 1 if worst > 1.15 or leaks else 0


if __name__ == "__main__":
    raise SystemExit(main())
