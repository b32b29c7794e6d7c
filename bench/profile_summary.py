"""Fold a py-spy raw profile (`py-spy record -f raw`) into where the time went, by category.

    python -m bench.profile_summary PROFILE.txt [--keep FRAME ...] [--top 25]

Only the samples whose stack holds one of the `--keep` frames (function names) count, so a benchmark's
seeding and imports drop out. Each sample is put in the first category whose pattern matches a frame,
searching from the innermost frame outwards: the library doing the work, not the caller that asked.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# What the program was doing: the innermost frame matching one of these (regex on "function (file)").
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("stand-in server (subtracted)", r"bench/grpc_fakes\.py"),
    ("task creation (CreateTask)", r"^(_create_one|create_task|CloudTasksQueue\.create) "),
    ("ledger commit (Ledger.schedule)", r"^Ledger\.schedule "),
    ("patients read (get_all)", r"^MessageScheduler\._load_patients "),
    ("appointments read (query, decode, validate)", r"^(_appointments|_window|read_window) "),
    ("contract audit", r"^audit_recent_appointments "),
    ("planning (shared.reminders.plan)", r"^plan_(reminders|followup|confirmation) "),
    ("building specs and payloads", r"^MessageScheduler\._submit "),
    ("counting outcomes", r"^MessageScheduler\._settle "),
    ("routing, ledger fields", r"^MessageScheduler\._flush "),
    ("run records (fanout_runs)", r"^PlannedDays\."),
    ("unit dispatch (router, auth, body)", r"^TaskRouter\.handle "),
)

# (category, regex on "function (file)"), innermost match wins; order decides between categories.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("benchmark stand-in server (subtracted)", r"bench/grpc_fakes\.py"),
    ("waiting (sleep, lock, thread join)", r"^(sleep|wait|acquire|_wait_for_tstate_lock|join) "),
    ("json encode/decode", r"json/(encoder|decoder|__init__)\.py"),
    ("hashlib / task names", r"hashlib|task_id \(|dedup_key \(|message_key \("),
    ("Firestore client: value encoding (writes)", r"firestore_v1/_helpers\.py.*(encode|pbs_for|DocumentExtractor)"),
    ("Firestore client: decoding (reads)", r"firestore_v1/(_helpers|base_query|base_document|document)\.py"),
    ("proto-plus marshal", r"proto/(marshal|message)"),
    ("Cloud Tasks client (gapic, request)", r"tasks_v2/|shared/tasks/queue\.py"),
    ("google.api_core (retry, timeout, errors)", r"api_core/"),
    ("grpc (interceptor, channel)", r"grpc/"),
    ("Firestore client (batch, query, gapic)", r"firestore_v1/"),
    ("protobuf", r"google/protobuf|_message"),
    ("threads and futures", r"concurrent/futures|threading\.py"),
    ("contract: model validation", r"shared/contract/"),
    ("planning (shared.reminders.plan)", r"shared/reminders/plan\.py"),
    ("ledger (shared.messaging.ledger)", r"shared/messaging/"),
    ("scheduler / fan-out", r"shared/reminders/"),
    ("Store adapter", r"shared/platform/store\.py"),
    ("logging", r"shared/platform/log\.py|logging/"),
    ("datetime / zoneinfo", r"datetime|zoneinfo"),
)


def frames_of(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rstrip("\n").rpartition(" ")
    return stack.split(";"), int(count)


def categorise(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in CATEGORIES:
            if re.search(pattern, frame):
                return name
    return "other Python"


def operation(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in OPERATIONS:
            if re.search(pattern, frame):
                return name
    return "other"


def summarise(path: Path, keep: list[str]) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    total, by_category, by_frame, by_operation = 0, Counter[str](), Counter[str](), Counter[str]()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames, count = frames_of(line)
        if keep and not any(frame.split(" (")[0].rsplit(".", 1)[-1] in keep for frame in frames):
            continue
        total += count
        by_category[categorise(frames)] += count
        by_frame[frames[-1].split(":")[0]] += count
        by_operation[operation(frames)] += count
    return total, by_category, by_frame, by_operation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument(
        "--keep", action="append", default=[], help="count only stacks holding a function of this name (repeat)"
    )
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    total, by_category, by_frame, by_operation = summarise(args.profile, args.keep)
    print(f"{total} samples; by operation:")
    for name, count in by_operation.most_common():
        print(f"  {count / max(1, total) * 100:5.1f}%  {name}")
    print("by library (innermost frame that names one):")
    for name, count in by_category.most_common():
        print(f"  {count / max(1, total) * 100:5.1f}%  {name}")
    print("innermost frames:")
    for name, count in by_frame.most_common(args.top):
        print(f"  {count / max(1, total) * 100:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
