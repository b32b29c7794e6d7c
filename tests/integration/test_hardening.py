"""Issue 8's bugs through the running stack (emulators, staged functions, provider sandbox), one test per
class where the real path matters; the unit suite proves the rest on the fakes (tests/unit/test_boundary,
test_sender, test_router, test_sweep, test_status_callbacks, test_tick_coverage, test_auth).

Every assertion is on what the stack kept: status codes, failed_tasks and ledger documents, the
sandbox's outbox. Request timeouts are hang guards, not speed assertions; figures are printed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from twilio.request_validator import RequestValidator

from local.sandbox.settings import DEFAULT_AUTH_TOKEN
from shared.contract.models import MAX_PREP_CHARS
from shared.messaging.keys import message_key
from shared.platform.settings import Settings
from tests.handler_support import post

pytestmark = pytest.mark.integration


def storable(doc: dict[str, Any]) -> str:
    """The document as text; raises if any string in it is not valid Unicode."""
    text = json.dumps(doc, default=str, ensure_ascii=False)
    text.encode("utf-8")
    return text


# ------------------------------------------------------------------ bug 1: prep text of any length


def test_a_1_mb_prep_text_gets_a_classified_answer_at_once(world, sandbox, stack):
    appointment = world.appointment(
        world.patient(), requires_prep=True, prep_instructions="Avoid retinoids and sun before your peel. " * 23_810
    )
    assert len(appointment["prep_instructions"]) > 1_000_000
    task = world.task(appointment, "prep_instructions")
    started = time.monotonic()
    response = post(stack, task.to_json())  # its 30 s timeout is the hang guard
    print(f"\n1 MB prep_instructions answered in {time.monotonic() - started:.2f} s")
    assert response.status_code == 200 and response.json() == {"outcome": "rejected", "error": "invalid_document"}
    (failure,) = world.failed(task.dedup_key)
    assert failure["error_code"] == "invalid_document" and "prep_instructions" in failure["error"]
    assert world.ledger(task.dedup_key).get("state") != "sending" and sandbox.messages() == []


def test_the_longest_prep_text_the_contract_allows_is_shortened_for_sms_and_emailed_whole(world, sandbox, stack):
    prep = ("Évitez le soleil 😀 avant votre soin. " * 200)[:MAX_PREP_CHARS]
    sms_patient = world.patient()
    email_patient = world.patient(preferred_channel="email")
    for patient in (sms_patient, email_patient):
        appointment = world.appointment(patient, requires_prep=True, prep_instructions=prep)
        started = time.monotonic()
        response = post(stack, world.task(appointment, "prep_instructions").to_json())
        print(f"\n{MAX_PREP_CHARS}-character prep answered in {time.monotonic() - started:.2f} s")
        assert response.status_code == 200 and response.json()["outcome"] == "sent"
    (sms,) = sandbox.messages(channel="sms")
    (email,) = sandbox.messages(channel="email")
    assert sms["num_segments"] <= 2 and sms["body"].endswith("...")
    assert prep.strip() in email["text"]


# --------------------------------------------------- bug 2: malformed bodies are recorded, answered 2xx

VALID = {
    "type": "appointment_reminder",
    "v": 1,
    "appointment_id": "appt-x",
    "clinic_id": "clinic-t",
    "patient_id": "pat-x",
    "dedup_key": "appointment_reminder-" + "0" * 40,
    "send_at": "2026-11-25T14:30:00+00:00",
    "appointment_start": "2026-11-26T14:30:00+00:00",
}


def body(**change: Any) -> bytes:
    return json.dumps({**VALID, **change}).encode()


def with_raw(**change: str) -> bytes:
    """A body whose values are raw JSON text (escapes json.dumps would not write, numbers beyond 64 bits)."""
    raw = body(**{name: f"@@{name}@@" for name in change})
    for name, value in change.items():
        raw = raw.replace(f'"@@{name}@@"'.encode(), value.encode())
    return raw


MALFORMED = [
    (b'{"type": "appointment_reminder", "v": 1, "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "too_deep"),
    (b'{"a": ' * 1000 + b"1" + b"}" * 1000, "too_deep"),
    (body(appointment_id="."), "bad_payload"),
    (body(appointment_id=".."), "bad_payload"),
    (body(clinic_id="__name__"), "bad_payload"),
    (body(patient_id="__x__"), "bad_payload"),
    (body(appointment_id="a1\n"), "bad_payload"),
    (with_raw(patient_id='"\\ud800"'), "bad_string"),
    (with_raw(type='"\\udfff"'), "bad_string"),
    (body(send_at="0001-01-01T00:00:00+14:00"), "bad_payload"),
    (body(appointment_start="9999-12-31T23:59:59-14:00"), "bad_payload"),
    (with_raw(offset_hours="18446744073709551616"), "number_out_of_range"),
    (with_raw(v="true"), "unsupported_version"),
    (with_raw(v="1.0"), "unsupported_version"),
    (with_raw(patient_id='"\\ud800"', offset_hours="18446744073709551616"), None),  # both: either code
]


@pytest.mark.parametrize(("raw", "code"), MALFORMED, ids=[f"case{i}" for i in range(len(MALFORMED))])
def test_malformed_bodies_are_recorded_and_answered_2xx(world, sandbox, stack, raw, code):
    response = post(stack, None, raw=raw)
    assert response.status_code == 200 and response.json()["outcome"] == "rejected"
    (failure,) = world.failed()  # recorded even when the body holds surrogates or huge integers
    assert failure["error_code"] == (code or response.json()["error"]) and failure["status"] == "open"
    storable(failure)
    assert sandbox.messages() == []


def test_an_id_with_a_trailing_newline_never_reaches_the_patient(world, sandbox, stack):
    appointment = world.appointment(world.patient())
    task = world.task(appointment)
    forged = {**task.to_json(), "appointment_id": appointment["id"] + "\n"}
    response = post(stack, forged)
    assert response.status_code == 200 and response.json()["error"] == "bad_payload"
    assert sandbox.messages() == [] and world.ledger(task.dedup_key) == {}


# -------------------------------------------- bug 6/7: status callbacks naming nothing, moving back


def signed_callback(stack, query: str, form: dict[str, str]) -> requests.Response:
    url = f"{stack.url('twilio-status')}?{query}"
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(url, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)


def delivered(world) -> tuple[str, dict[str, Any]]:
    task = world.task(world.appointment(world.patient()))
    world.schedule(task)
    return task.dedup_key, world.wait_ledger(task.dedup_key, "delivered")


@pytest.mark.parametrize("suffix", ["/claims/1", "/x"])
def test_a_signed_callback_naming_a_path_under_a_ledger_doc_writes_nothing(world, stack, suffix):
    key, entry = delivered(world)
    before = world.db.collection("notifications").document(key).get().update_time
    form = {"MessageSid": entry["provider_message_id"], "MessageStatus": "failed"}
    response = signed_callback(stack, f"ledger={key}{suffix}", form)
    assert response.status_code == 200 and response.json() == {"outcome": "bad_ledger_key"}
    ref = world.db.collection("notifications").document(key)
    assert ref.get().update_time == before and [c.id for c in ref.collections()] == []
    assert [d.id for d in world.db.collection("notifications").stream()] == [key]


@pytest.mark.parametrize("ledger", ["a/b", ".", "..", "__name__", "", "%F0%9F"])
def test_a_signed_callback_naming_nothing_is_acknowledged(world, stack, ledger):
    form = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    response = signed_callback(stack, f"ledger={ledger}", form)
    assert response.status_code == 200 and response.json() == {"outcome": "bad_ledger_key"}
    assert list(world.db.collection("notifications").stream()) == []


def test_a_late_queued_never_moves_delivery_status_back_and_a_replay_rewrites_nothing(world, stack):
    key, entry = delivered(world)
    ref = world.db.collection("notifications").document(key)
    before = ref.get().update_time
    sid = entry["provider_message_id"]
    for status in ("queued", "sending", "sent", "delivered"):
        response = signed_callback(stack, f"ledger={key}&g=1", {"MessageSid": sid, "MessageStatus": status})
        assert response.status_code == 200
    after = ref.get()
    assert after.update_time == before
    assert after.to_dict()["delivery_status"] == "delivered" and after.to_dict()["state"] == "delivered"


# ----------------------------------------------- bug 9: an SMS accepted whose answer is lost, sent once


def test_an_sms_twilio_accepted_whose_answer_was_lost_is_sent_once_and_recorded_with_its_sid(world, sandbox):
    patient = world.patient()
    phone = world.phones[-1]
    # The sandbox records and delivers the message, then holds the answer past the handler's 10 s timeout.
    sandbox.fault(channel="sms", kind="timeout", accept=True, seconds=12, times=1, to=phone)
    task = world.task(world.appointment(patient))
    world.schedule(task)
    entry = world.wait_ledger(task.dedup_key, "sent", "delivered", "failed")
    (message,) = sandbox.messages(channel="sms")
    assert entry["state"] in ("sent", "delivered") and entry["provider_message_id"] == message["id"]
    assert entry.get("reason") is None and world.failed() == []
    # Confirmed by the delivery callback that reached the unconfirmed doc, or by the retry's look-up of
    # Twilio's message list (tests/integration/test_sandbox.py drives that path alone): never a second send.
    assert len(sandbox.messages(channel="sms")) == 1


# --------------------------------------------- bug 10: the ledger shows the truth after the last attempt


def test_after_the_last_transient_attempt_the_ledger_says_failed_with_the_code(world, sandbox, stack):
    patient = world.patient()
    sandbox.fault(channel="sms", kind="http", status=503, to=world.phones[-1])
    task = world.task(world.appointment(patient))
    early = post(stack, task.to_json(), retry_count=0)
    assert early.status_code == 503
    entry = world.ledger(task.dedup_key)
    assert entry["state"] == "scheduled" and entry["reason"] == "twilio_unavailable"
    last = post(stack, task.to_json(), retry_count=Settings.from_env().queue_max_attempts - 1)
    assert last.status_code == 503
    entry = world.ledger(task.dedup_key)
    assert entry["state"] == "failed" and entry["reason"] == "twilio_unavailable" and entry["lease_until"] is None
    (failure,) = world.failed(task.dedup_key)
    assert failure["error_code"] == "twilio_unavailable"
    assert sandbox.messages() == []


def test_a_delivered_message_keeps_no_transient_reason(world, sandbox, stack):
    patient = world.patient()
    sandbox.fault(channel="sms", kind="http", status=500, to=world.phones[-1], times=1)
    task = world.task(world.appointment(patient))
    assert post(stack, task.to_json()).status_code == 503
    assert post(stack, task.to_json(), retry_count=1).json()["outcome"] == "sent"
    entry = world.wait_ledger(task.dedup_key, "delivered")
    assert entry["reason"] is None and len(sandbox.messages(channel="sms")) == 1


# ------------------------------------------------------------------ bug 12: the body's key is derived


def test_two_bodies_for_one_appointment_with_different_keys_send_once(world, sandbox, stack):
    appointment = world.appointment(world.patient())
    honest = world.task(appointment)
    forged = {**honest.to_json(), "dedup_key": "appointment_reminder-" + "f" * 40}
    other_offset = {
        **honest.to_json(),
        "offset_hours": 2,
        "dedup_key": message_key("appointment_reminder", appointment["id"], appointment["start"], 24),
    }
    for bad in (forged, other_offset):
        response = post(stack, bad)
        assert response.status_code == 200 and response.json()["outcome"] == "rejected"
    assert post(stack, honest.to_json()).json()["outcome"] == "sent"
    assert len(sandbox.messages()) == 1
    assert [d.id for d in world.db.collection("notifications").stream()] == [honest.dedup_key]
    assert {f["error_code"] for f in world.failed()} == {"dedup_key_mismatch"}
    # the body that carried the honest key opened no record under it: the honest message has none
    ids = {d.id for d in world.db.collection("failed_tasks").stream()}
    assert honest.dedup_key not in ids and len(ids) == 2 and all(i.startswith(("task-", "body-")) for i in ids)


# ------------------------------------------------- the auth matrix on the real handler, called directly


def test_every_caller_in_the_auth_matrix_is_refused_by_the_real_handler(world, sandbox, monkeypatch):
    """No token, garbage, wrong key, audience, expiry, issuer, other account, email_verified not true: all
    refused with nothing written. Google's certificates are out of reach here, so a token whose claims are
    right but whose key is wrong is the one case that needs them: a 503 to retry, never a 500."""
    import functions_framework

    from local.config import REPO_ROOT
    from shared.platform import settings
    from tests import oidc

    settings.settings.cache_clear()
    try:
        config = settings.settings()
        app = functions_framework.create_app("handle_task", str(REPO_ROOT / "functions/task_handler/main.py"), "http")
        client = app.test_client()
        task = world.task(world.appointment(world.patient()))
        signing, _ = oidc.signer("not-google")
        answers = {
            name: client.post("/", data=json.dumps(task.to_json()), content_type="application/json", headers=headers)
            for name, headers in oidc.refusals(
                signing, audience=config.task_audience, caller=config.tasks_service_account
            ).items()
        }
    finally:
        settings.settings.cache_clear()
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses.pop("wrong key") in (401, 503)
    assert set(statuses.values()) <= {401, 403}, statuses
    assert statuses["other service account"] == 403 and statuses["email_verified 'true'"] == 403
    assert world.ledger(task.dedup_key) == {} and world.failed() == [] and sandbox.messages() == []
