"""The console's new Firestore views on the real emulator, through an in-process sandbox (its console reads
the stack's emulator as the stack's own does): the planned send time beside a message, paging through the
ledger, and the collections the functions write that had no list."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
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


def next_link(html: str) -> str | None:
    found = re.search(r'<a href="([^"]*)" rel="next"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_the_ledger_pages_through_every_doc_newest_change_first(console: FlaskClient, firestore_client: Any) -> None:
    start = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    batch = firestore_client.batch()
    for n in range(130):
        doc = {"kind": "appointment_reminder", "state": "delivered", "clinic_id": "clinic-l", "channel": "sms"}
        batch.set(
            firestore_client.collection("notifications").document(f"ledger-{n:03}"),
            {
                **doc,
                "updated_at": start + timedelta(minutes=n),
            },
        )
    batch.commit()

    seen: list[str] = []
    path: str | None = "/operations/ledger?state=delivered"
    while path is not None:
        html = page(console, path)
        keys = re.findall(r'href="/operations/docs/notifications/(ledger-\d+)"', html)
        assert 0 < len(keys) <= 50
        seen += keys
        path = next_link(html)

    assert seen == [f"ledger-{n:03}" for n in reversed(range(130))]


def test_patient_requests_are_listed_with_a_link_to_the_patients_text(
    console: FlaskClient, firestore_client: Any
) -> None:
    form = {"To": "+15550001111", "From": "+15551234567", "Body": "Can you move me to Friday?"}
    sid = console.post(f"/2010-04-01/Accounts/{SID}/Messages.json", data=form, headers=AUTH).get_json()["sid"]
    received = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    for n, status in enumerate(("open", "done")):
        firestore_client.collection("patient_requests").document(f"sms-req-{n}").set(
            {
                "clinic_id": "clinic-r",
                "patient_id": "patient-7",
                "kind": "reschedule",
                "source": "sms",
                "message_sid": sid,
                "appointment_id": "appt-9",
                "received_at": received + timedelta(minutes=n),
                "status": status,
            }
        )

    listing = page(console, "/operations/collections/patient_requests")
    open_only = page(console, "/operations/collections/patient_requests?status=open")

    assert re.findall(r'<tr data-id="([^"]+)"', listing) == ["sms-req-1", "sms-req-0"]
    assert re.findall(r'<tr data-id="([^"]+)"', open_only) == ["sms-req-0"]
    assert f'href="/messages/{sid}"' in listing and "reschedule" in listing
    assert 'href="/operations/collections/patient_requests"' in page(console, "/operations")


def test_slot_offers_and_purchase_orders_have_lists_of_their_own(console: FlaskClient, firestore_client: Any) -> None:
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    firestore_client.collection("slot_offers").document("offer-1").set(
        {"clinic_id": "clinic-o", "status": "open", "service_name": "HydraFacial", "created_at": now, "wave": 1}
    )
    firestore_client.collection("purchase_orders").document("clinic-o_2026-12-07").set(
        {"clinic_id": "clinic-o", "date": "2026-12-07", "status": "draft", "lines": [{"sku": "A"}], "created_at": now}
    )

    offers = page(console, "/operations/collections/slot_offers")
    orders = page(console, "/operations/collections/purchase_orders")

    assert 'data-id="offer-1"' in offers and "HydraFacial" in offers
    assert 'data-id="clinic-o_2026-12-07"' in orders and "1 item" in orders
    assert console.get("/operations/collections/patients").status_code == 404  # a patient's record: never listed


def test_a_doc_without_the_order_field_is_announced_and_listed_by_id(
    console: FlaskClient, firestore_client: Any
) -> None:
    firestore_client.collection("slot_offers").document("offer-dated").set(
        {"clinic_id": "clinic-o", "status": "open", "created_at": datetime(2026, 12, 7, tzinfo=UTC)}
    )
    firestore_client.collection("slot_offers").document("offer-undated").set(
        {"clinic_id": "clinic-o", "status": "open"}
    )

    newest_first = page(console, "/operations/collections/slot_offers?status=open")
    by_id = page(console, "/operations/collections/slot_offers?status=open&by=key")

    assert re.findall(r'<tr data-id="([^"]+)"', newest_first) == ["offer-dated"]
    assert "1 matching document without <code>created_at</code>" in newest_first
    assert re.findall(r'<tr data-id="([^"]+)"', by_id) == ["offer-dated", "offer-undated"]


def test_every_failed_task_is_listed_a_page_at_a_time(console: FlaskClient, firestore_client: Any) -> None:
    failed = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    batch = firestore_client.batch()
    for n in range(230):  # more than the Operations page's newest 200
        batch.set(
            firestore_client.collection("failed_tasks").document(f"failed-{n:03}"),
            {"status": "open", "task_type": "appointment_reminder", "last_failed_at": failed + timedelta(seconds=n)},
        )
    batch.commit()

    seen: list[str] = []
    path: str | None = "/operations/collections/failed_tasks?status=open&size=100"
    while path is not None:
        html = page(console, path)
        seen += re.findall(r'<tr data-id="(failed-\d+)"', html)
        path = next_link(html)

    assert seen == [f"failed-{n:03}" for n in reversed(range(230))]


def test_the_campaigns_page_lists_each_campaign_with_its_report_figures(
    console: FlaskClient, firestore_client: Any
) -> None:
    created = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    campaigns = firestore_client.collection("campaigns")
    campaigns.document("camp-done").set(
        {"clinic_id": "clinic-c", "name": "Spring glow", "status": "done", "created_at": created}
    )
    campaigns.document("camp-draft").set(
        {"clinic_id": "clinic-c", "name": "Summer", "status": "draft", "created_at": created + timedelta(days=1)}
    )
    firestore_client.collection("campaign_reports").document("camp-done").set(
        {
            "campaign_id": "camp-done",
            "planned": 1200,
            "sent": 1190,
            "delivered": 1175,
            "failed": 15,
            "opted_out_72h": 7,
            "clicks": 311,
            "bookings": 23,
            "cost_cents": 1880,
            "built_at": created + timedelta(days=3),
        }
    )

    html = page(console, "/campaigns")

    done = html.split('data-id="camp-done"', 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r'<td class="num">([^<]*)</td>', done)
    assert cells == ["1200", "1190", "1175", "15", "7", "311", "23", "18.80"]
    assert "Spring glow" in done and ">done<" in done
    draft = html.split('data-id="camp-draft"', 1)[1].split("</tr>", 1)[0]
    assert "no report yet" in draft and ">draft<" in draft
    assert html.index('data-id="camp-draft"') < html.index('data-id="camp-done"')  # newest first
