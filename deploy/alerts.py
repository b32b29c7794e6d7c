"""The monitoring deploy.sh sets up (step 10), read from deploy/monitoring/: log-based metrics, alert policies and
the dashboard, each a JSON document in the shape of its API resource, checked here before any gcloud call.

- metrics/NAME.json: a Cloud Logging LogMetric; NAME is the metric's name, its type in Cloud Monitoring is
  logging.googleapis.com/user/NAME. Their filters match the lines the functions log (shared/platform/log.py
  writes one JSON object per line; Cloud Logging turns it into jsonPayload):
    medspa_task_attempts, medspa_task_failures, medspa_messages_sent: the router's one outcome line per task
      attempt, shared/tasks/router.py:123 ("task <status>", with task_type, outcome, channel) and :140-159
      ("task rejected" / "task will be retried" / "task failed on its last attempt", with task_type, error_code);
    medspa_fanout_unit_failures, medspa_fanout_seconds: shared/reminders/fanout.py:207 ("fan-out unit done",
      with seconds and RunSummary.summary()'s failed, shared/platform/run_summary.py) and
      functions/reminder_fanout/main.py:93 ("reminders tick done", with seconds);
    medspa_failed_tasks_opened: shared/tasks/failed_tasks.py:141 ("failed_tasks record opened", with task_type,
      error_code), one line per record FailedTasks.record writes.
- policies/*.json: Cloud Monitoring AlertPolicy documents, found again by displayName on a re-run.
- dashboard.json: a Cloud Monitoring Dashboard, found again by displayName.

    python -m deploy.alerts          # one TSV row per resource: kind, name or display name, file
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

MONITORING_DIR = Path(__file__).resolve().parent / "monitoring"
USER_METRIC = re.compile(r'logging\.googleapis\.com/user/([A-Za-z0-9_./-]+)"')
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def rows(directory: Path = MONITORING_DIR) -> list[tuple[str, str, Path]]:
    """(kind, name, file) for every metric, policy and the dashboard; ValueError names each problem found."""
    problems: list[str] = []
    out: list[tuple[str, str, Path]] = []
    metrics = set()
    for path in sorted((directory / "metrics").glob("*.json")):
        doc = _load(path, problems)
        if doc.get("name") != path.stem or not _METRIC_NAME.match(path.stem):
            problems.append(f"{path}: its name must be the file's name ({path.stem}), letters, digits, _ . -")
        metrics.add(path.stem)
        out.append(("metric", path.stem, path))
    names = set()
    for path in sorted((directory / "policies").glob("*.json")):
        doc = _load(path, problems)
        name = str(doc.get("displayName", ""))
        if not name or "\t" in name or name in names:
            problems.append(f"{path}: needs a displayName of its own (deploy.sh finds the policy again by it)")
        names.add(name)
        used = set(USER_METRIC.findall(json.dumps(doc).replace('\\"', '"')))
        problems += [f"{path}: uses log metric {m}, which metrics/ does not define" for m in sorted(used - metrics)]
        out.append(("policy", name, path))
    dashboard = directory / "dashboard.json"
    doc = _load(dashboard, problems)
    used = set(USER_METRIC.findall(json.dumps(doc).replace('\\"', '"')))
    problems += [f"{dashboard}: uses log metric {m}, which metrics/ does not define" for m in sorted(used - metrics)]
    out.append(("dashboard", str(doc.get("displayName", "")), dashboard))
    if problems:
        raise ValueError("\n".join(problems))
    return out


def _load(path: Path, problems: list[str]) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: not a readable JSON document ({exc})")
        return {}
    if not isinstance(doc, dict):
        problems.append(f"{path}: must hold one JSON object")
        return {}
    return doc


def main() -> int:
    """The CLI deploy.sh calls."""
    try:
        for kind, name, path in rows():
            print(f"{kind}\t{name}\t{path}")
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
