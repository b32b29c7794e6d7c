"""`python -m ops campaign report ID`: a campaign's report as stored (campaign_reports/{id}); with --rebuild,
built again from the documents now and stored; with --email, the campaign_report task queued, which builds it
and emails the clinic's managers (one email per manager and day). Numbers and ids only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shared.platform import clients
from shared.platform.clock import system_clock
from shared.platform.errors import PermanentError
from shared.platform.masking import scrub


def add_to(campaign_commands: Any) -> None:
    """Add `report` to the `ops campaign` subcommands."""
    report = campaign_commands.add_parser("report", help="print a campaign's report (--rebuild: build it now)")
    report.add_argument("campaign_id")
    report.add_argument("--rebuild", action="store_true", help="build it again from the documents now and store it")
    report.add_argument("--email", action="store_true", help="queue the campaign_report task: build and email it")
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from shared.campaigns.report import CampaignReports

    reports = CampaignReports(clients.store())
    now = system_clock.now()
    try:
        report = reports.build(args.campaign_id, now=now) if args.rebuild else reports.load(args.campaign_id)
    except PermanentError as exc:
        print(f"ops: {exc.code}: {exc}", file=sys.stderr)
        return 1
    if report is None:
        print(f"no report for campaign {scrub(args.campaign_id)[:80]} yet (--rebuild builds it)", file=sys.stderr)
        return 1
    out: dict[str, Any] = {"report": report.to_doc()}
    if args.email:
        out["email_task"] = _queue_email(report.campaign_id, report.clinic_id, now)
    print(scrub(json.dumps(out, indent=2, sort_keys=True, default=str)))
    return 0


def _queue_email(campaign_id: str, clinic_id: str, now: Any) -> str:
    from shared.campaigns.tasks import CampaignReportTask
    from shared.platform.settings import settings
    from shared.tasks.queue import CloudTasksQueue, TaskSpec

    config = settings()
    task = CampaignReportTask(campaign_id=campaign_id, clinic_id=clinic_id, date=now.date())
    spec = TaskSpec(queue=config.queue_reports, business_key=task.failure_key, payload=task.to_json())
    return "queued" if CloudTasksQueue(clients.tasks(), config).create(spec) else "already_queued"
