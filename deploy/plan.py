"""What deploy.sh deploys, worked out from deploy/registry.py and the repo before any gcloud call.

A registered function is deployed when its main.py defines its target; the queues, topics, scheduler
jobs and secrets it uses come with it, and nothing is made for a function that is not there. Every
registry value is checked here (names, account ids, memory/CPU combinations, timeouts), all problems
at once, so a bad row stops deploy.sh before it touches the project.

    python -m deploy.plan write OUT_DIR                          # the TSV files deploy.sh reads
    python -m deploy.plan missing-indexes SPEC [EXISTING_JSON]   # composite indexes still to create
    python -m deploy.plan not-ready-indexes SPEC [EXISTING_JSON] # composite indexes not READY yet

Each TSV row is tab-separated with "-" for an empty field (bash's read folds empty tab fields) and
"," between list items.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from deploy import registry
from deploy.registry import Function, Job, Queue
from shared.platform import resources

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = REPO_ROOT / "functions"

REVIEW_SUFFIX = "-review"  # the operators' pull subscription on each dead-letter topic

_FUNCTION_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ACCOUNT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")  # IAM: 6-30 characters
_FOLDER = re.compile(r"^[a-z][a-z0-9_]*$")
_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SETTING = re.compile(r"^[A-Z][A-Z0-9_]*$")
_MEMORY = re.compile(r"^([1-9][0-9]*)(Mi|Gi)$")
_CPU = re.compile(r"^(?:0\.[0-9]{1,3}|[1-9][0-9]*)$")
_DURATION = re.compile(r"^[1-9][0-9]*[smh]$")

MIN_MEMORY_MIB = 128
# Cloud Run's limits, which gen2 functions share: whole vCPUs and the memory range each allows (MiB).
WHOLE_CPU_MEMORY_MIB = {1: (128, 4096), 2: (128, 8192), 4: (2048, 16384), 6: (4096, 24576), 8: (4096, 32768)}
MIN_FRACTIONAL_CPU = Decimal("0.08")
MAX_TIMEOUT_HTTP = 3600
MAX_TIMEOUT_EVENT = 540


class PlanError(ValueError):
    """The registry describes something deploy.sh cannot deploy; `problems` says what, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class DeadLetter:
    """Where a trigger topic's refused messages go, and the subscription operators read them from."""

    topic: str
    dead_letter_topic: str
    review_subscription: str


@dataclass(frozen=True)
class Plan:
    """Everything deploy.sh makes, in the order it makes it."""

    functions: tuple[Function, ...]  # a requeuing function's enqueues filled in
    skipped: tuple[tuple[str, str], ...]  # (function name, why)
    queues: tuple[Queue, ...]
    topics: tuple[str, ...]
    dead_letters: tuple[DeadLetter, ...]
    jobs: tuple[Job, ...]
    skipped_jobs: tuple[tuple[str, str], ...]
    secrets: tuple[str, ...]


def memory_mib(text: str) -> int:
    """A --memory value such as 512Mi or 1Gi, in MiB; ValueError for any other form."""
    match = _MEMORY.match(text)
    if match is None:
        raise ValueError(f"memory must look like 256Mi or 1Gi, got {text!r}")
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)


def resource_problems(fn: Function) -> list[str]:
    """What is wrong with a function's memory, CPU and timeout, as gen2 (Cloud Run) would reject them."""
    where = f"deploy/registry.py: {fn.name}"
    problems: list[str] = []
    try:
        memory = memory_mib(fn.memory)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        memory = None
    cpu: Decimal | None = None
    if not _CPU.match(fn.cpu):
        problems.append(f"{where}: cpu must be a vCPU count such as 0.167, 1 or 2, got {fn.cpu!r}")
    else:
        try:
            cpu = Decimal(fn.cpu)
        except InvalidOperation:  # the pattern admits only decimals; kept for safety
            problems.append(f"{where}: cpu {fn.cpu!r} is not a number")
    if cpu is not None and cpu < 1:
        if cpu < MIN_FRACTIONAL_CPU:
            problems.append(f"{where}: cpu {fn.cpu} is below the minimum of {MIN_FRACTIONAL_CPU} vCPU")
            cpu = None
    elif cpu is not None and int(cpu) not in WHOLE_CPU_MEMORY_MIB:
        problems.append(f"{where}: cpu above 1 must be one of {sorted(WHOLE_CPU_MEMORY_MIB)}, got {fn.cpu}")
        cpu = None
    if memory is not None and memory < MIN_MEMORY_MIB:
        problems.append(f"{where}: memory {fn.memory} is below the minimum of {MIN_MEMORY_MIB}Mi")
    elif memory is not None and cpu is not None:
        if cpu < 1:
            ceiling = 512 if cpu < Decimal("0.5") else 1024
            if memory > ceiling:
                problems.append(
                    f"{where}: memory {fn.memory} needs at least {'0.5' if ceiling == 512 else '1'} "
                    f"vCPU (cpu {fn.cpu} allows up to {ceiling}Mi)"
                )
        else:
            low, high = WHOLE_CPU_MEMORY_MIB[int(cpu)]
            if not low <= memory <= high:
                problems.append(f"{where}: cpu {fn.cpu} allows memory from {low}Mi to {high}Mi, got {fn.memory}")
    limit = MAX_TIMEOUT_HTTP if fn.signature == "http" else MAX_TIMEOUT_EVENT
    kind = "an HTTP" if fn.signature == "http" else "an event"
    if not isinstance(fn.timeout_seconds, int) or not 1 <= fn.timeout_seconds <= limit:
        problems.append(f"{where}: timeout_seconds must be 1 to {limit} for {kind} function, got {fn.timeout_seconds}")
    return problems


def _row_problems(fn: Function) -> list[str]:
    where = f"deploy/registry.py: {fn.name}"
    problems: list[str] = []
    if not _FUNCTION_NAME.match(fn.name):
        problems.append(
            f"{where}: a function name is lowercase letters, digits and hyphens, "
            "starts with a letter, at most 63 characters"
        )
    if len(fn.account_id) > 30:
        problems.append(
            f"{where}: service account id {fn.account_id} is {len(fn.account_id)} characters; "
            "IAM allows at most 30 (shorten the function name to 27)"
        )
    elif not _ACCOUNT_ID.match(fn.account_id):
        problems.append(
            f"{where}: service account id {fn.account_id} must be 6-30 lowercase letters, digits, "
            "hyphens, starting with a letter"
        )
    if not _FOLDER.match(fn.folder):
        problems.append(f"{where}: folder {fn.folder!r} must be a Python package name under functions/")
    if not _TARGET.match(fn.target):
        problems.append(f"{where}: target {fn.target!r} must be a Python function name")
    if fn.topic is not None and fn.topic not in resources.TOPICS:
        problems.append(f"{where}: trigger topic {fn.topic!r} is not in shared/platform/resources.py TOPICS")
    if fn.public and fn.topic is not None:
        problems.append(f"{where}: only an HTTP function can be public")
    problems += [
        f"{where}: invoker {account!r} is not in deploy/registry.py INVOKERS"
        for account in fn.invokers
        if account not in registry.INVOKERS
    ]
    if fn.public and fn.invokers:
        problems.append(f"{where}: a public function is invoked by allUsers; it takes no invokers")
    if fn.topic is not None and fn.invokers:
        problems.append(f"{where}: an event function is invoked by its trigger ({registry.EVENTS_INVOKER}) only")
    problems += [
        f"{where}: queue {q!r} is not in shared/platform/resources.py QUEUES"
        for q in fn.enqueues
        if q not in resources.QUEUES
    ]
    problems += [
        f"{where}: publishes to {t!r}, which is not in shared/platform/resources.py TOPICS"
        for t in fn.publishes
        if t not in resources.TOPICS
    ]
    problems += [
        f"{where}: secret {s!r} is not in deploy/registry.py SECRETS" for s in fn.secrets if s not in registry.SECRETS
    ]
    return problems + resource_problems(fn)


def registry_problems(functions: Iterable[Function], queues: Iterable[Queue], jobs: Iterable[Job]) -> list[str]:
    """Every problem in the registry's rows, independent of which functions are written yet."""
    functions, queues, jobs = list(functions), list(queues), list(jobs)
    problems: list[str] = []
    seen: set[str] = set()
    problems += [
        f"deploy/registry.py: optional secret {name!r} is not in SECRETS"
        for name in sorted(registry.OPTIONAL_SECRETS - set(registry.SECRETS))
    ]
    for fn in functions:
        if fn.name in seen:
            problems.append(f"deploy/registry.py: function {fn.name} is listed twice")
        seen.add(fn.name)
        problems += _row_problems(fn)
    queue_rows = {queue.name for queue in queues}
    for queue in queues:
        where = f"deploy/registry.py: queue {queue.name}"
        if queue.name not in resources.QUEUES:
            problems.append(f"{where}: not in shared/platform/resources.py QUEUES")
        if not _SETTING.match(queue.rate_setting):
            problems.append(f"{where}: rate_setting {queue.rate_setting!r} is not a setting name")
        if (queue.concurrency_setting is None) == (queue.max_concurrent is None):
            problems.append(f"{where}: give exactly one of concurrency_setting and max_concurrent")
        elif queue.concurrency_setting is not None and not _SETTING.match(queue.concurrency_setting):
            problems.append(f"{where}: concurrency_setting {queue.concurrency_setting!r} is not a setting name")
        elif queue.max_concurrent is not None and not 1 <= queue.max_concurrent <= 5000:
            problems.append(f"{where}: max_concurrent must be 1 to 5000, got {queue.max_concurrent}")
        for name in ("min_backoff", "max_backoff"):
            value = getattr(queue, name)
            if value is not None and not _DURATION.match(value):
                problems.append(f"{where}: {name} must be a duration such as 2s or 10m, got {value!r}")
    by_name = {fn.name: fn for fn in functions}
    for queue in queues:
        target = by_name.get(queue.target)
        if target is None:
            problems.append(
                f"deploy/registry.py: queue {queue.name}: target {queue.target!r} is not a registered function"
            )
        elif registry.TASKS_INVOKER not in target.invokers:
            problems.append(
                f"deploy/registry.py: queue {queue.name}: its target {target.name} does not list "
                f"{registry.TASKS_INVOKER} among its invokers: Cloud Run would refuse every task (403)"
            )
    for name in sorted({q for fn in functions for q in fn.enqueues} - queue_rows):
        problems.append(f"deploy/registry.py: queue {name} is enqueued into but has no Queue row (its rates)")
    for job in jobs:
        where = f"deploy/registry.py: job {job.name}"
        if not _FUNCTION_NAME.match(job.name):
            problems.append(f"{where}: a job name is lowercase letters, digits and hyphens")
        if job.topic not in resources.TOPICS:
            problems.append(f"{where}: topic {job.topic!r} is not in shared/platform/resources.py TOPICS")
        if not _SETTING.match(job.schedule_setting):
            problems.append(f"{where}: schedule_setting {job.schedule_setting!r} is not a setting name")
        try:
            json.loads(job.body)
        except ValueError:
            problems.append(f"{where}: body is not JSON: {job.body!r}")
        if not job.description.strip() or "\t" in job.description + job.body:
            problems.append(f"{where}: needs a description, and no tabs in description or body")
    return problems


def enqueues_of(
    fn: Function, deployed: Sequence[Function], queues: Sequence[Queue] = registry.QUEUES
) -> tuple[str, ...]:
    """The queues a deployed function creates tasks in; a requeuing one, the task handler's that the others
    feed (the retry sweep sends what it puts back to the handler; the fan-out's units are not its to retry)."""
    if not fn.requeues:
        return fn.enqueues
    elsewhere = {queue.name for queue in queues if queue.target != registry.TASK_HANDLER}
    fed = {q for other in deployed if other is not fn for q in other.enqueues} | set(fn.enqueues)
    return tuple(q for q in resources.QUEUES if q in fed and q not in elsewhere)


def defines(fn: Function, functions_dir: Path = FUNCTIONS_DIR) -> bool:
    """True when functions/<folder>/main.py defines the function's target at top level."""
    main = functions_dir / fn.folder / "main.py"
    text = main.read_text() if main.is_file() else ""
    return re.search(rf"^def {re.escape(fn.target)}\(", text, re.M) is not None


def build_plan(
    functions: Sequence[Function] | None = None,
    queues: Sequence[Queue] | None = None,
    jobs: Sequence[Job] | None = None,
    functions_dir: Path = FUNCTIONS_DIR,
) -> Plan:
    """The deploy plan for the registry (by default deploy/registry.py); PlanError lists every problem."""
    functions = registry.FUNCTIONS if functions is None else tuple(functions)
    queues = registry.QUEUES if queues is None else tuple(queues)
    jobs = registry.JOBS if jobs is None else tuple(jobs)
    problems = registry_problems(functions, queues, jobs)
    deployed = tuple(fn for fn in functions if defines(fn, functions_dir))
    skipped = tuple(
        (fn.name, f"functions/{fn.folder}/main.py does not define {fn.target} yet")
        for fn in functions
        if fn not in deployed
    )
    if registry.TASK_HANDLER not in {fn.name for fn in deployed}:
        problems.append(
            f"deploy/registry.py lists no deployable {registry.TASK_HANDLER} function: "
            "every other function needs its URL"
        )
    feeds_units = [fn.name for fn in deployed if resources.QUEUE_FANOUT in fn.enqueues]
    if feeds_units and registry.FANOUT_UNIT not in {fn.name for fn in deployed}:
        problems.append(
            f"deploy/registry.py: {', '.join(feeds_units)} enqueue(s) into {resources.QUEUE_FANOUT} but no "
            f"deployable {registry.FANOUT_UNIT} function runs its units"
        )
    if problems:
        raise PlanError(problems)

    deployed = tuple(replace(fn, enqueues=enqueues_of(fn, deployed, queues)) for fn in deployed)
    used_queues = {q for fn in deployed for q in fn.enqueues}
    triggers = {fn.topic for fn in deployed if fn.topic is not None}
    used_topics = triggers | {t for fn in deployed for t in fn.publishes}
    used_secrets = {s for fn in deployed for s in fn.secrets}
    # Canonical order (resources.py, registry.py) keeps the deploy's output stable whatever the rows' order.
    topics = tuple(t for t in resources.TOPICS if t in used_topics)
    dead_letters = tuple(
        DeadLetter(t, resources.dead_letter_topic(t), resources.dead_letter_topic(t) + REVIEW_SUFFIX)
        for t in topics
        if t in triggers
    )
    return Plan(
        functions=deployed,
        skipped=skipped,
        queues=tuple(queue for queue in queues if queue.name in used_queues),
        topics=topics,
        dead_letters=dead_letters,
        jobs=tuple(job for job in jobs if job.topic in triggers),
        skipped_jobs=tuple(
            (job.name, f"no deployed function is triggered by topic {job.topic}")
            for job in jobs
            if job.topic not in triggers
        ),
        secrets=tuple(s for s in registry.SECRETS if s in used_secrets),
    )


def _cell(value: object) -> str:
    if value is None or value == "" or value == ():
        return "-"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _write(path: Path, rows: Iterable[Sequence[object]]) -> None:
    path.write_text("".join("\t".join(_cell(value) for value in row) + "\n" for row in rows))


def queue_env() -> str:
    """QUEUE_*=name for every queue constant in resources.py: the variables the functions' settings read."""
    names = vars(resources).items()
    return ",".join(f"{key}={value}" for key, value in names if key.startswith("QUEUE_") and isinstance(value, str))


def write_plan(plan: Plan, out_dir: Path, spec_path: Path = REPO_ROOT / "firestore.indexes.json") -> None:
    """Write the TSV files deploy.sh reads into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(
        out_dir / "functions.tsv",
        (
            (
                fn.name,
                fn.folder,
                fn.target,
                fn.signature,
                fn.topic,
                fn.public,
                fn.account_id,
                fn.memory,
                fn.cpu,
                fn.timeout_seconds,
                fn.secrets,
                fn.enqueues,
                fn.publishes,
                fn.invoker_accounts,
            )
            for fn in plan.functions
        ),
    )
    _write(out_dir / "skipped.tsv", plan.skipped)
    _write(
        out_dir / "queues.tsv",
        (
            (q.name, q.rate_setting, q.concurrency_setting or q.max_concurrent, q.min_backoff, q.max_backoff)
            for q in plan.queues
        ),
    )
    _write(out_dir / "topics.tsv", ((topic,) for topic in plan.topics))
    _write(
        out_dir / "dead_letters.tsv", ((d.topic, d.dead_letter_topic, d.review_subscription) for d in plan.dead_letters)
    )
    _write(
        out_dir / "jobs.tsv",
        ((job.name, job.topic, job.schedule_setting, job.body, job.description) for job in plan.jobs),
    )
    _write(out_dir / "skipped_jobs.tsv", plan.skipped_jobs)
    # A secret's Secret Manager name is the deploy.env setting <ENV NAME>_SECRET; an optional one (registry
    # OPTIONAL_SECRETS) is mapped only once it has a version.
    _write(
        out_dir / "secrets.tsv",
        ((env, f"{env}_SECRET", env in registry.OPTIONAL_SECRETS) for env in plan.secrets),
    )
    _write(
        out_dir / "meta.tsv",
        (
            ("task_handler", registry.TASK_HANDLER),
            ("fanout_unit", registry.FANOUT_UNIT),
            ("status_callback", registry.STATUS_CALLBACK),
            ("inbound_sms", registry.INBOUND_SMS),
            ("claim_link", registry.CLAIM_LINK),
            ("campaign_click", registry.CAMPAIGN_CLICK),
            ("booking_restore", registry.BOOKING_RESTORE),
            ("feedback_page", registry.FEEDBACK_PAGE),
            ("email_events", registry.EMAIL_EVENTS),
            ("queue_env", queue_env()),
            ("runtime", registry.RUNTIME),
            ("tasks_invoker", registry.TASKS_INVOKER),
            ("events_invoker", registry.EVENTS_INVOKER),
        ),
    )
    spec = json.loads(spec_path.read_text())
    for index in spec.get("indexes", []):
        _fields(index["fields"])  # fails here, before any gcloud call, on a malformed index
    overrides = spec.get("fieldOverrides", [])
    _write(out_dir / "ttl_fields.tsv", ((o["collectionGroup"], o["fieldPath"]) for o in overrides if o.get("ttl")))
    _write(out_dir / "index_exemptions.tsv", _exemptions(overrides))


def _exemptions(overrides: Iterable[dict]) -> list[tuple[str, str]]:
    """The fields whose single-field indexes are disabled (`"indexes": []`): timestamps written together by
    many documents at once, which nobody queries alone (docs/deploy.md, "Firestore hotspots")."""
    exempt = []
    for override in overrides:
        if "indexes" not in override:
            continue
        if override["indexes"]:  # deploy.sh only disables; a custom single-field index would need its own flags
            raise PlanError([f'firestore.indexes.json: {override["fieldPath"]}: only "indexes": [] is supported'])
        exempt.append((override["collectionGroup"], override["fieldPath"]))
    return exempt


def _fields(fields: Iterable[dict], strict: bool = True) -> tuple[tuple[str, str, str], ...]:
    out = []
    for field in fields:
        if "order" in field:
            out.append((field["fieldPath"], "order", field["order"].lower()))
        elif "arrayConfig" in field or not strict:
            out.append((field["fieldPath"], "array-config", str(field.get("arrayConfig", "")).lower()))
        else:
            raise PlanError([f"firestore.indexes.json: field {field} needs an order or an arrayConfig"])
    return tuple(out)


IndexKey = tuple[str, str, tuple[tuple[str, str, str], ...]]


def _listed_indexes(existing_path: Path | None) -> dict[IndexKey, str]:
    """What `gcloud firestore indexes composite list --format=json` showed: each index's key and its state."""
    existing = json.loads(existing_path.read_text() or "[]") if existing_path else []
    listed = {}
    for index in existing:
        group = re.search(r"/collectionGroups/([^/]+)/", index.get("name", ""))
        fields = _fields((f for f in index.get("fields", []) if f.get("fieldPath") != "__name__"), strict=False)
        key = (group.group(1) if group else "", index.get("queryScope", "COLLECTION"), fields)
        listed[key] = str(index.get("state", ""))
    return listed


def not_ready_indexes(spec_path: Path, existing_path: Path | None = None) -> list[str]:
    """The composite indexes of spec_path that the listing does not show READY, as `group (field, field)`:
    a query that needs one fails (FAILED_PRECONDITION) until it is READY."""
    listed = _listed_indexes(existing_path)
    rows = []
    for index in json.loads(spec_path.read_text()).get("indexes", []):
        fields = _fields(index["fields"])
        state = listed.get((index["collectionGroup"], index.get("queryScope", "COLLECTION"), fields), "ABSENT")
        row = f"{index['collectionGroup']} ({', '.join(path for path, _, _ in fields)}): {state}"
        if state != "READY" and row not in rows:
            rows.append(row)
    return rows


def missing_indexes(spec_path: Path, existing_path: Path | None = None) -> list[list[str]]:
    """The composite indexes of spec_path that `gcloud firestore indexes composite list` did not show."""
    spec = json.loads(spec_path.read_text())
    have = set(_listed_indexes(existing_path))
    rows = []
    for index in spec.get("indexes", []):
        scope = index.get("queryScope", "COLLECTION")
        fields = _fields(index["fields"])
        if (index["collectionGroup"], scope, fields) in have:
            continue
        have.add((index["collectionGroup"], scope, fields))  # listed twice: created once (a second create fails)
        configs = [f"field-path={path},{kind}={value}" for path, kind, value in fields]
        rows.append([index["collectionGroup"], scope.lower().replace("_", "-"), *configs])
    return rows


def main(argv: list[str] | None = None) -> int:
    """The CLI deploy.sh calls."""
    parser = argparse.ArgumentParser(prog="python -m deploy.plan", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write the plan's TSV files into OUT_DIR")
    write.add_argument("out_dir", type=Path)
    indexes = commands.add_parser("missing-indexes", help="print the composite indexes still to create")
    indexes.add_argument("spec", type=Path)
    indexes.add_argument("existing", type=Path, nargs="?")
    waiting = commands.add_parser("not-ready-indexes", help="print the composite indexes not READY yet")
    waiting.add_argument("spec", type=Path)
    waiting.add_argument("existing", type=Path, nargs="?")
    args = parser.parse_args(argv)
    try:
        if args.command == "write":
            write_plan(build_plan(), args.out_dir)
        elif args.command == "not-ready-indexes":
            for line in not_ready_indexes(args.spec, args.existing):
                print(line)
        else:
            for row in missing_indexes(args.spec, args.existing):
                print("\t".join(row))
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
