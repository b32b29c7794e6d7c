"""python -m ops compliance on the in-memory store: one patient's consent history, messages with basis and
delivery, when a revocation was honoured; masked; nothing written."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ops import compliance
from ops.__main__ import cmd_compliance
from shared.consent.evidence import SendRecords
from tests.builders import NOW, patient_doc
from tests.fakes import FixedClock, MemoryStore

PATIENT = "pat-77"
PHONE = "+12125557788"
EMAIL_ADDRESS = "jane.doe@example.com"


def consent(store: MemoryStore, event_id: str, status: str, at, purpose: str = "marketing") -> None:
    """A history doc as the consents contract documents it (docs/consent.md)."""
    store.seed(
        f"consents/{PATIENT}/history/{event_id}",
        {
            "clinic_id": "clinic-1",
            "patient_id": PATIENT,
            "purpose": purpose,
            "channel": "sms",
            "status": status,
            "at": at,
            "source": "keyword" if status == "granted" else "revocation_text",
            "wording_version": "v2",
            "recorded_at": at,
            "expire_at": at + timedelta(days=5 * 365),
        },
    )


@pytest.fixture
def store() -> MemoryStore:
    store = MemoryStore()
    store.seed(f"patients/{PATIENT}", patient_doc(PATIENT, "clinic-1", phone=PHONE, email=EMAIL_ADDRESS))
    return store


def send(store: MemoryStore, clock: FixedClock, key: str, outcome: str, *, at, purpose="marketing", **details):
    clock.instant = at
    fields = {"patient_id": PATIENT, "clinic_id": "clinic-1", "kind": "campaign_message", "purpose": purpose}
    if purpose == "marketing":
        fields["basis"] = "consent:evt-grant"
    SendRecords(store, clock).record(key, fields, outcome, **details)


def test_the_export_holds_history_messages_and_the_revocation_honoured(store):
    clock = FixedClock(NOW)
    consent(store, "evt-grant", "granted", NOW - timedelta(days=10))
    consent(store, "evt-stop", "revoked", NOW - timedelta(days=2))
    send(store, clock, "k-before", "sent", at=NOW - timedelta(days=5), channel="sms", provider_message_id="SM1")
    send(store, clock, "k-after", "skipped", at=NOW - timedelta(days=1), reason="no_marketing_consent")
    SendRecords(store, clock).delivery("k-before", "delivered", None)
    evidence = compliance.patient_evidence(store, clock, PATIENT)
    assert [c.event_id for c in evidence.consents] == ["evt-grant", "evt-stop"]
    assert [(m.key, m.outcome, m.basis) for m in evidence.messages] == [
        ("k-before", "sent", "consent:evt-grant"),
        ("k-after", "skipped", "consent:evt-grant"),
    ]
    assert evidence.messages[0].delivery == {"status": "delivered", "error_code": None, "at": NOW - timedelta(days=1)}
    [revocation] = evidence.revocations
    assert (revocation.first_held_back, revocation.first_held_back_at, revocation.sent_after) == (
        "k-after",
        NOW - timedelta(days=1),
        [],
    )


def test_a_message_that_went_after_a_revocation_is_named(store):
    clock = FixedClock(NOW)
    consent(store, "evt-stop", "revoked", NOW - timedelta(days=2))
    send(store, clock, "k-late", "sent", at=NOW - timedelta(days=1), channel="sms")
    [revocation] = compliance.patient_evidence(store, clock, PATIENT).revocations
    assert revocation.sent_after == ["k-late"] and revocation.first_held_back is None
    assert "SENT AFTER IT: k-late" in compliance.render(compliance.patient_evidence(store, clock, PATIENT))


def test_a_new_grant_ends_what_a_revocation_covers(store):
    clock = FixedClock(NOW)
    consent(store, "evt-stop", "revoked", NOW - timedelta(days=3))
    consent(store, "evt-again", "granted", NOW - timedelta(days=2))
    send(store, clock, "k-later", "sent", at=NOW - timedelta(days=1), channel="sms")
    [revocation] = compliance.patient_evidence(store, clock, PATIENT).revocations
    assert revocation.sent_after == []


def test_a_transactional_message_is_not_counted_against_a_marketing_revocation(store):
    clock = FixedClock(NOW)
    consent(store, "evt-stop", "revoked", NOW - timedelta(days=2))
    send(store, clock, "k-reminder", "sent", at=NOW - timedelta(days=1), purpose="transactional", channel="sms")
    [revocation] = compliance.patient_evidence(store, clock, PATIENT).revocations
    assert revocation.sent_after == []


def test_the_text_and_json_exports_mask_the_contact_and_hold_no_message_text(store, capsys, monkeypatch):
    clock = FixedClock(NOW)
    consent(store, "evt-grant", "granted", NOW - timedelta(days=10))
    send(store, clock, "k-before", "sent", at=NOW - timedelta(days=5), channel="sms")
    monkeypatch.setattr("shared.platform.clients.store", lambda: store)
    for fmt in ("text", "json"):
        assert cmd_compliance(type("Args", (), {"patient": PATIENT, "format": fmt})()) == 0
        out = capsys.readouterr().out
        assert PHONE not in out and EMAIL_ADDRESS not in out and "k-before" in out and "evt-grant" in out
        assert PHONE[-4:] in out  # the masked number keeps its last digits, as the logs do
    assert json.loads(out)["messages"][0]["basis"] == "consent:evt-grant"


def test_an_unknown_patient_exits_one_and_a_bad_id_two(store, capsys, monkeypatch):
    monkeypatch.setattr("shared.platform.clients.store", lambda: store)
    assert cmd_compliance(type("Args", (), {"patient": "nobody", "format": "text"})()) == 1
    assert cmd_compliance(type("Args", (), {"patient": "a/b", "format": "text"})()) == 2


def test_the_export_writes_nothing(store):
    before = {path: dict(data) for path, data in store.docs("patients").items()}
    compliance.patient_evidence(store, FixedClock(NOW), PATIENT)
    assert store.docs("patients") == before and store.docs("send_records") == {}
