"""python -m ops campaign …: create a campaign (printing its segments and cost estimate), schedule, start,
pause, resume, cancel, estimate and show it (docs/campaigns.md). Every status change goes through
shared/campaigns/lifecycle.py, as the task handler's do; output holds ids, counts and codes only."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import datetime
from typing import Any

from ops import campaign_report
from shared.platform.errors import PermanentError
from shared.platform.masking import scrub

BY = "ops"


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO instant: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("give the instant's offset, e.g. 2026-12-01T15:00:00+00:00")
    return moment


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _services() -> Any:
    from shared.wiring.services import services

    return services()


def _print(data: dict[str, Any]) -> None:
    print(scrub(json.dumps(data, indent=2, sort_keys=True, default=str)))


def _estimate(wired: Any, campaign: Any) -> dict[str, Any]:
    """Recipients now (excluded by reason), the message's segments and the cost, recorded on the campaign."""
    priced = wired.campaign_planner.estimate(campaign)
    return {
        "recipients": priced.recipients,
        "excluded": dict(priced.excluded),
        "encoding": priced.encoding,
        "segments": priced.segments,
        "price_per_segment_cents": priced.price_per_segment_cents,
        "cost_cents": priced.cost_cents,
    }


def cmd_create(args: argparse.Namespace) -> int:
    from shared.campaigns.wording import check_template

    check_template(args.template, has_link=bool(args.link))
    wired = _services()
    campaign_id = args.id or f"camp-{secrets.token_hex(6)}"
    doc = {
        "clinic_id": args.clinic,
        "name": args.name or campaign_id,
        "audience": {
            "last_visit_within_days": args.last_visit_days,
            "services": _names(args.services or ""),
            "tags": _names(args.tags or ""),
        },
        "message": {"template": args.template, "link": args.link},
        "window": {"start": args.start, "end": args.end},
    }
    campaign = wired.campaign_lifecycle.create(campaign_id, doc, by=BY)
    _print({"campaign": campaign.id, "status": campaign.status, "estimate": _estimate(wired, campaign)})
    return 0


def cmd_verb(args: argparse.Namespace) -> int:
    """schedule | start | resume (through the planner: they enqueue its plan) and pause | cancel (acknowledged)."""
    wired = _services()
    if args.verb in ("pause", "cancel"):
        ack = getattr(wired.campaign_lifecycle, args.verb)(args.id, by=BY)
        _print(
            {
                "campaign": ack.campaign_id,
                "status": ack.status,
                "in_flight_at_stop": ack.in_flight,
                "acknowledged_at": ack.acknowledged_at,
                "note": "nothing is sent after acknowledged_at"
                if ack.settled
                else "sends still in flight after the wait; run the same command again",
            }
        )
        return 0 if ack.settled else 1
    campaign = getattr(wired.campaign_planner, args.verb)(args.id, by=BY)
    _print({"campaign": campaign.id, "status": campaign.status, "round": campaign.round})
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    wired = _services()
    campaign = wired.campaign_lifecycle.read(args.id)
    _print({"campaign": campaign.id, "estimate": _estimate(wired, campaign)})
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    wired = _services()
    lifecycle = wired.campaign_lifecycle
    campaign = lifecycle.read(args.id)
    _print(
        {
            "campaign": campaign.id,
            "clinic": campaign.clinic_id,
            "status": campaign.status,
            "window": {"start": campaign.window.start, "end": campaign.window.end},
            "audience": campaign.audience.to_doc(),
            "estimate": campaign.estimate.to_doc() if campaign.estimate else None,
            "planned": campaign.planned,
            "pending": lifecycle.pending(campaign.id),
            "in_flight": lifecycle.in_flight(campaign.id),
            "round": campaign.round,
            "history": [{"status": h.status, "at": h.at, "by": h.by} for h in campaign.history],
            "cancel_acknowledged_at": campaign.cancel_acknowledged_at,
        }
    )
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return int(args.campaign_run(args))
    except PermanentError as exc:
        print(f"ops campaign: {exc} ({exc.code})", file=sys.stderr)
        return 1


def add_parser(sub: Any) -> None:
    """`campaign` and its verbs, under python -m ops."""
    campaign = sub.add_parser("campaign", help="create, schedule, start, pause, resume, cancel or show a campaign")
    verbs = campaign.add_subparsers(dest="verb", required=True)
    create = verbs.add_parser("create", help="a draft campaign; prints its segments and cost estimate")
    create.add_argument("--clinic", required=True)
    create.add_argument("--template", required=True, help="merge fields: {first_name} {clinic_name} {link}")
    create.add_argument("--tags", help="comma-separated: patients with one of these tags")
    create.add_argument("--services", help="comma-separated: patients who completed one of these services")
    create.add_argument("--last-visit-days", type=int, help="a completed visit within this many days")
    create.add_argument("--link")
    create.add_argument("--start", type=_instant, required=True, help="the window's start, ISO with offset")
    create.add_argument("--end", type=_instant, required=True, help="the window's end, ISO with offset")
    create.add_argument("--name", help="an internal label (never sent)")
    create.add_argument("--id", help="the campaign's id (default: camp-<random>)")
    create.set_defaults(run=run, campaign_run=cmd_create)
    for verb, what in (
        ("schedule", "draft → scheduled: it starts when its window opens"),
        ("start", "scheduled → sending now (its window has opened)"),
        ("pause", "stop new sends; acknowledged once none is in flight"),
        ("resume", "paused → sending: dispatch again what was not sent"),
        ("cancel", "stop for good; acknowledged once none is in flight"),
    ):
        parser = verbs.add_parser(verb, help=what)
        parser.add_argument("id")
        parser.set_defaults(run=run, campaign_run=cmd_verb)
    for verb, command, what in (
        ("estimate", cmd_estimate, "count the audience and price the message again"),
        ("show", cmd_show, "status, counts and history"),
    ):
        parser = verbs.add_parser(verb, help=what)
        parser.add_argument("id")
        parser.set_defaults(run=run, campaign_run=command)
    campaign_report.add_to(verbs)
