"""The console's new Firestore views on the real emulator, through an in-process sandbox (its console reads
the stack's emulator as the stack's own does): the planned send time beside a message, paging through the
ledger, and the collections the functions write that had no list."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from local.config import StackConfig
from local.sandbox.server import make_app
from local.sandbox.settings import SandboxSettings
from local.sandbox.state import Sandbox

pytestmark = pytest.mark.integration
SID = "AC" + "ef" * 16
TOKEN = "console-views-token"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}


@pytest.fixture
def console(stack: StackConfig, firestore_client: Any) -> Iterator[FlaskClient]:
    box = Sandbox(SandboxSettings(account_sid=SID, auth_token=TOKEN, sendgrid_api_key="SG.x", callback_delay_seconds=0))
    yield make_app(box).test_client()
    box.close()


def page(console: FlaskClient, path: str) -> str:
    response = console.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


def test_a_message_shows_its_ledger_docs_planned_send_time(console: FlaskClient, firestore_client: Any) -> None:
    send_at = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    firestore_client.collection("notifications").document("planned-key").set(
        {"kind": "appointment_reminder", "clinic_id": "clinic-p", "channel": "sms", "state": "sent", "send_at": send_at}
    )
    form = {
        "To": "+15551234567",
        "From": "+15550001111",
        "Body": "Reminder: tomorrow 12:00",
        "StatusCallback": "http://127.0.0.1:1/status?ledger=planned-key&g=1",
    }
    sid = console.post(f"/2010-04-01/Accounts/{SID}/Messages.json", data=form, headers=AUTH).get_json()["sid"]

    row = page(console, "/").split(f'data-id="{sid}"', 1)[1].split("</tr>", 1)[0]

    assert '<td class="mono small send-at">2026-12-08 12:00:00</td>' in row
    assert "2026-12-08 12:00:00 UTC (the ledger's send_at)" in page(console, f"/messages/{sid}")
