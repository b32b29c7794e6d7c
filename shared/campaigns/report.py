"""A campaign's report, `campaign_reports/{campaign_id}`: numbers only, each from the document that owns it.

- audience and exclusions: the campaign's planning counts (`planning: {audience, excluded: {reason: n}}`,
  written by the planner);
- sent, delivered, failed by code, skipped by reason, segments: the campaign's ledger entries
  (`notifications` where kind == "campaign_message" and campaign_id == id; one per recipient);
- opted out within 72 h: the recipients' SMS revocations in `consents/{pid}/history` within 72 h after their
  message (the history is read only for recipients whose consent changed after their message);
- clicks: `campaign_clicks` (every GET, and the recipients who clicked);
- bookings: the clinic's appointments created by a recipient within 14 days after their message;
- cost: segments sent × the clinic's `marketing.price_per_segment_cents`.

No name, phone, email or message text is read into the report. docs/campaigns.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.campaigns.links import CAMPAIGNS, CLICKS
from shared.contract.models import APPOINTMENTS, CLINICS, count_or_zero
from shared.messaging import ledger as ledger_module
from shared.messaging.ledger import State
from shared.platform.errors import PermanentError
from shared.platform.store import MAX_WRITES, Store

REPORTS = "campaign_reports"  # written here only
CONSENTS = "consents"  # written by the consent module only; read here
CAMPAIGN_MESSAGE = "campaign_message"
OPT_OUT_WINDOW = timedelta(hours=72)
BOOKING_WINDOW = timedelta(days=14)
SMS_CONSENTS = ("sms_marketing", "sms_transactional")  # the current doc's maps a revocation by text changes
WENT_OUT = frozenset({State.SENT, State.DELIVERED})
PENDING = frozenset({State.SCHEDULED, State.SENDING, State.UNCONFIRMED})
LEDGER_FIELDS = ("state", "reason", "patient_id", "sent_at", "delivery_error_code", "segments")


@dataclass(frozen=True)
class CampaignReport:
    """Every figure of one campaign, as stored in campaign_reports/{campaign_id}."""

    campaign_id: str
    clinic_id: str
    name: str  # the campaign's internal label (never sent to patients; no PHI)
    status: str
    built_at: datetime
    audience: int | None  # patients the filter matched, before exclusions (None: not planned yet)
    excluded: dict[str, int]  # reason → patients left out at planning
    planned: int  # ledger entries: one per recipient
    sent: int  # went to the provider (delivered, sent, or failed by the carrier afterwards)
    delivered: int
    failed: int
    failed_by_code: dict[str, int]  # the provider's error code (Twilio's 30007 …) or the sender's reason
    skipped: dict[str, int]  # reason → entries never sent (opted out, at the cap, cancelled …)
    pending: int  # not settled yet: scheduled, sending, unconfirmed
    opted_out_72h: int  # recipients who revoked SMS within 72 h after their message
    clicks: int  # every GET of the campaign's links
    clickers: int  # recipients who clicked at least once
    bookings: int  # appointments created by recipients within 14 days after their message
    booked_recipients: int  # recipients with at least one such appointment
    segments: int  # SMS segments of the messages that went out
    price_per_segment_cents: float | None
    cost_cents: int | None  # segments × price (None: the clinic has no price set)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> CampaignReport:
        values: dict[str, Any] = {name: doc.get(name) for name in cls.__dataclass_fields__}
        return cls(**values)


@dataclass
class _Ledger:
    """The campaign's ledger entries, tallied; `sent_at` per recipient whose message went out."""

    planned: int = 0
    states: Counter[str] = field(default_factory=Counter)
    failed_by_code: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    segments: int = 0
    sent_at: dict[str, datetime] = field(default_factory=dict)


def _code(entry: Mapping[str, Any]) -> str:
    code = entry.get("delivery_error_code") or entry.get("reason") or "unknown"
    return str(code).removeprefix(ledger_module.PROVIDER_REASON)[:40]


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _at(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _chunks(items: list[str], size: int = MAX_WRITES) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CampaignReports:
    """Builds and stores campaign reports (the campaign_report task, `python -m ops campaign report`)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, campaign_id: str) -> CampaignReport | None:
        doc = self.store.get(f"{REPORTS}/{campaign_id}")
        return CampaignReport.from_doc(doc.data) if doc is not None else None

    def build(self, campaign_id: str, *, now: datetime) -> CampaignReport:
        """The report as the documents stand now, stored (overwriting the previous build)."""
        report = self.compute(campaign_id, now=now)
        self.store.put(f"{REPORTS}/{campaign_id}", report.to_doc())
        return report

    def compute(self, campaign_id: str, *, now: datetime) -> CampaignReport:
        """The report as the documents stand now (nothing written)."""
        campaign = self.store.get(f"{CAMPAIGNS}/{campaign_id}")
        if campaign is None:
            raise PermanentError("the campaign does not exist", code="campaign_missing")
        clinic_id = campaign.get("clinic_id")
        if not isinstance(clinic_id, str) or not clinic_id:
            raise PermanentError("the campaign names no clinic", code="invalid_document")
        planning = _map(campaign.get("planning"))
        excluded = _map(planning.get("excluded"))
        tally = self._ledger(campaign_id, campaign.data)
        price = self._price(clinic_id)
        clicks = [("campaign_id", "==", campaign_id)]
        booked = self._bookings(clinic_id, tally.sent_at)
        audience = planning.get("audience")
        return CampaignReport(
            campaign_id=campaign_id,
            clinic_id=clinic_id,
            name=str(campaign.get("name") or "")[:200],
            status=str(campaign.get("status") or ""),
            built_at=now,
            audience=count_or_zero(audience) if audience is not None else None,
            excluded={str(reason): count_or_zero(n) for reason, n in sorted(excluded.items())},
            planned=tally.planned,
            sent=len(tally.sent_at),
            delivered=tally.states[State.DELIVERED],
            failed=tally.states[State.FAILED],
            failed_by_code=dict(sorted(tally.failed_by_code.items())),
            skipped=dict(sorted(tally.skipped.items())),
            pending=sum(tally.states[state] for state in PENDING),
            opted_out_72h=self._opted_out(tally.sent_at),
            clicks=int(self.store.sum(CLICKS, "count", where=clicks)),
            clickers=self.store.count(CLICKS, where=clicks),
            bookings=sum(booked.values()),
            booked_recipients=len(booked),
            segments=tally.segments,
            price_per_segment_cents=price,
            cost_cents=None if price is None else round(tally.segments * price),
        )

    def _ledger(self, campaign_id: str, campaign: Mapping[str, Any]) -> _Ledger:
        tally = _Ledger()
        per_message = _segments_per_message(campaign)
        entries = self.store.query(
            ledger_module.COLLECTION,
            where=[("kind", "==", CAMPAIGN_MESSAGE), ("campaign_id", "==", campaign_id)],
            fields=LEDGER_FIELDS,
        )
        for entry in entries:
            tally.planned += 1
            state = str(entry.get("state") or "")
            tally.states[state] += 1
            if state == State.SKIPPED:
                tally.skipped[str(entry.get("reason") or "unknown")[:40]] += 1
            if state == State.FAILED:
                tally.failed_by_code[_code(entry.data)] += 1
            sent_at = _at(entry.get("sent_at"))
            patient_id = entry.get("patient_id")
            # A message failed by the carrier after it was accepted went out (and costs); one the sender gave up
            # on never did.
            went_out = state in WENT_OUT or (
                state == State.FAILED and str(entry.get("reason") or "").startswith(ledger_module.PROVIDER_REASON)
            )
            if went_out and sent_at is not None and isinstance(patient_id, str):
                tally.sent_at[patient_id] = sent_at
                segments = entry.get("segments")
                tally.segments += count_or_zero(segments) if segments is not None else per_message
        return tally

    def _price(self, clinic_id: str) -> float | None:
        clinic = self.store.get(f"{CLINICS}/{clinic_id}")
        price = _map(clinic.get("marketing") if clinic is not None else None).get("price_per_segment_cents")
        if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) or price < 0:
            return None
        return float(price)

    def _opted_out(self, sent_at: Mapping[str, datetime]) -> int:
        """Recipients with an SMS revocation in their consent history within 72 h after their message."""
        changed: list[str] = []
        for chunk in _chunks(sorted(sent_at)):
            for doc in self.store.get_all([f"{CONSENTS}/{pid}" for pid in chunk]).values():
                moments = [_at(doc.get("updated_at"))]
                moments += [_at(_map(doc.get(name)).get("at")) for name in SMS_CONSENTS]
                if any(moment is not None and moment >= sent_at[doc.id] for moment in moments):
                    changed.append(doc.id)
        opted_out = 0
        for patient_id in changed:
            start = sent_at[patient_id]
            revocations = self.store.query(
                f"{CONSENTS}/{patient_id}/history",
                where=[("status", "==", "revoked"), ("channel", "==", "sms")],
                fields=("at",),
            )
            opted_out += any(
                (at := _at(event.get("at"))) is not None and start <= at < start + OPT_OUT_WINDOW
                for event in revocations
            )
        return opted_out

    def _bookings(self, clinic_id: str, sent_at: Mapping[str, datetime]) -> Counter[str]:
        """Appointments per recipient, created within 14 days after the recipient's message."""
        booked: Counter[str] = Counter()
        if not sent_at:
            return booked
        appointments = self.store.query(
            APPOINTMENTS,
            where=[
                ("clinic_id", "==", clinic_id),
                ("created_at", ">=", min(sent_at.values())),
                ("created_at", "<", max(sent_at.values()) + BOOKING_WINDOW),
            ],
            fields=("patient_id", "created_at"),
        )
        for appointment in appointments:
            patient_id, created = appointment.get("patient_id"), _at(appointment.get("created_at"))
            start = sent_at.get(patient_id) if isinstance(patient_id, str) else None
            if start is not None and created is not None and start <= created < start + BOOKING_WINDOW:
                booked[patient_id] += 1
        return booked


def _segments_per_message(campaign: Mapping[str, Any]) -> int:
    """A message's segments when its ledger entry does not say: the campaign estimate's, which counts one message
    (shared/campaigns/model.py Estimate)."""
    return max(1, count_or_zero(_map(campaign.get("estimate")).get("segments")))
