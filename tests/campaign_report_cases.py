"""A constructed campaign for the report's tests: its clinic, planning counts and ledger entries in every
state, seeded on any Store (the in-memory fake in tests/unit/test_campaign_report.py, the emulator in
tests/integration/test_campaign_report_emulator.py), and the consent, appointment and click documents the
tests add around it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TypeVar

from shared.messaging import ledger
from shared.messaging.keys import dedup_key
from shared.platform.store import Store

S = TypeVar("S", bound=Store)

UTC = timezone.utc
SENT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NOW = SENT + timedelta(days=20)
CAMPAIGN = "camp-spring"
MANAGERS = ["a@glow.example.com", "b@glow.example.com"]
PATIENT_NAME = "Jane Roe"
PATIENT_PHONE = "+12125550199"


def entry(store: Store, patient_id: str, state: str, *, campaign: str = CAMPAIGN, **fields) -> None:
    key = dedup_key("campaign_message", campaign, patient_id)
    sent = (
        {"sent_at": SENT} if state in ("sent", "delivered") or fields.get("reason", "").startswith("provider_") else {}
    )
    store.put(
        ledger.path(key),
        {
            "kind": "campaign_message",
            "clinic_id": "c1",
            "patient_id": patient_id,
            "campaign_id": campaign,
            "purpose": "marketing",
            "state": state,
            **sent,
            **fields,
        },
    )


def revoked(store: Store, patient_id: str, at: datetime, *, channel: str = "sms") -> None:
    store.put(
        f"consents/{patient_id}",
        {
            "clinic_id": "c1",
            "patient_id": patient_id,
            "updated_at": at,
            "sms_marketing": {"status": "revoked", "at": at},
        },
    )
    store.put(
        f"consents/{patient_id}/history/ev-{patient_id}",
        {
            "clinic_id": "c1",
            "patient_id": patient_id,
            "purpose": "marketing",
            "channel": channel,
            "status": "revoked",
            "at": at,
        },
    )


def booked(store: Store, appointment_id: str, patient_id: str, created_at: datetime, clinic: str = "c1") -> None:
    store.put(
        f"appointments/{appointment_id}",
        {
            "clinic_id": clinic,
            "patient_id": patient_id,
            "created_at": created_at,
            "start": created_at,
            "status": "booked",
        },
    )


def seed_campaign(store: S) -> S:
    """A done campaign of 7 recipients in every ledger state, another campaign's recipient, a priced clinic."""
    store.put(
        "clinics/c1",
        {
            "name": "Glow Spa",
            "timezone": "America/New_York",
            "phone": "+12125550142",
            "email_from": "hi@glow.example.com",
            "manager_emails": MANAGERS,
            "marketing": {"price_per_segment_cents": 0.79},
        },
    )
    store.put(
        f"campaigns/{CAMPAIGN}",
        {
            "clinic_id": "c1",
            "name": "Spring glow",
            "status": "done",
            "message": {"template": "Hi {first_name}", "link": "https://glow.example.com/spring"},
            "estimate": {"recipients": 6, "segments": 2, "cost_cents": 10},  # segments: of one message
            "planning": {"audience": 9, "excluded": {"no_consent": 2, "opted_out": 1}},
        },
    )
    store.put("patients/p1", {"first_name": PATIENT_NAME, "phone": PATIENT_PHONE})
    entry(store, "p1", "delivered")
    entry(store, "p2", "delivered", segments=3)
    entry(store, "p3", "sent")
    entry(store, "p4", "failed", reason="provider_30007", delivery_error_code="30007")
    entry(store, "p5", "failed", reason="invalid_phone")  # the sender gave up: never went out
    entry(store, "p6", "skipped", reason="at_cap")
    entry(store, "p7", "scheduled")
    entry(store, "p1", "delivered", campaign="camp-other")  # another campaign's recipient: never counted
    return store
