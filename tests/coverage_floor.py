"""`make coverage`'s verdict: every service module's line coverage from the unit suite alone, against 85 %.

Service modules hold the decisions (what to send, when, to whom; every state transition; every
boundary check). Thin adapters over real clients (the Firestore store, the provider SDK calls, client
construction, the task-type wiring) are exercised by the emulator tests instead and are listed apart,
so a low figure there is visible but not a failure. Coverage is a map, not a target: every unit test
asserts an outcome.

    python -m coverage run --source=shared -m pytest -q -m "not integration" && python -m tests.coverage_floor
"""

from __future__ import annotations

import sys
from pathlib import Path

import coverage

FLOOR = 85.0
ADAPTERS = {
    "shared/platform/clients.py": "client construction (emulator tests)",
    "shared/platform/store.py": "the Firestore adapter (tests/integration/test_ledger.py and every emulator test)",
    "shared/wiring/services.py": "wiring of real adapters (emulator tests)",
    "shared/wiring/task_handler.py": "wiring of real adapters (emulator tests)",
    "shared/wiring/reminder_fanout.py": "wiring of real adapters (emulator tests)",
    "shared/wiring/report_builder.py": "wiring of real adapters (emulator tests)",
    "shared/wiring/waitlist.py": "wiring of real adapters (emulator tests)",
    "shared/wiring/campaigns.py": "wiring of real adapters (emulator tests)",
    "shared/wiring/patient_links.py": "wiring of real adapters (emulator tests)",
}
ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    data = coverage.Coverage()
    data.load()
    below, rows = [], []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        relative = str(path.relative_to(ROOT))
        if path.name == "__init__.py":
            continue
        try:
            _, statements, _, missing, _ = data.analysis2(str(path))
        except coverage.CoverageException:
            statements, missing = [1], [1]  # never imported by the unit suite
        percent = 100.0 * (len(statements) - len(missing)) / len(statements) if statements else 100.0
        role = ADAPTERS.get(relative, "service")
        rows.append((relative, percent, role))
        if role == "service" and percent < FLOOR:
            below.append(relative)
    print(f"\n{'module':48} {'unit coverage':>13}  role")
    for relative, percent, role in rows:
        mark = "  BELOW" if relative in below else ""
        print(f"{relative:48} {percent:12.1f}%  {role}{mark}")
    if below:
        print(f"\n{len(below)} service module(s) under {FLOOR:.0f} %: {', '.join(below)}", file=sys.stderr)
        return 1
    print(f"\nevery service module at or over {FLOOR:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
