"""Send records written by the running task handler and its status callbacks, read back by
python -m ops compliance, on the emulator stack."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ops.__main__ import main
from shared.platform.clock import system_clock
from tests.handler_support import post
from tests.polling import eventually

pytestmark = pytest.mark.integration


def test_the_export_shows_what_the_handler_sent_skipped_and_the_carrier_delivered(world, sandbox, stack, capsys):
    patient = world.patient()
    now = system_clock.now()
    world.db.collection("consents").document(patient).collection("history").document("evt-stop").set(
        {
            "clinic_id": "clinic-t",
            "patient_id": patient,
            "purpose": "marketing",
            "channel": "sms",
            "status": "revoked",
            "at": now - timedelta(days=1),
            "source": "keyword",
            "wording_version": "v1",
            "recorded_at": now - timedelta(days=1),
            "expire_at": now + timedelta(days=5 * 365),
        }
    )
    sent = world.task(world.appointment(patient))
    assert post(stack, sent.to_json()).status_code == 200
    skipped = world.task(world.appointment(patient, status="cancelled"))
    assert post(stack, skipped.to_json()).status_code == 200
    records = world.db.collection("send_records")

    def delivery() -> str | None:
        return ((records.document(sent.dedup_key).get().to_dict() or {}).get("delivery") or {}).get("status")

    assert eventually(lambda: delivery() == "delivered", 15)

    assert main(["compliance", "--patient", patient, "--format", "json"]) == 0
    out = capsys.readouterr().out
    export = json.loads(out)
    by_key = {m["key"]: m for m in export["messages"]}
    assert by_key[sent.dedup_key]["outcome"] == "sent" and by_key[sent.dedup_key]["basis"] == "transactional"
    assert by_key[sent.dedup_key]["delivery"]["status"] == "delivered"
    assert (by_key[skipped.dedup_key]["outcome"], by_key[skipped.dedup_key]["reason"]) == ("skipped", "cancelled")
    assert [c["event_id"] for c in export["consents"]] == ["evt-stop"]
    assert export["revocations"][0]["sent_after"] == []  # the reminder is transactional
    assert world.phones[-1] not in out and world.names[-1] not in out

    assert main(["compliance", "--patient", patient]) == 0
    text = capsys.readouterr().out
    assert sent.dedup_key in text and world.phones[-1] not in text
