"""`python -m ops smoke`, its pieces on the fakes: what it seeds, how it judges the evidence, its report (one
PASS/FAIL line per check, masked), and its cleanup, which runs whatever happened before it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from deploy.registry import FUNCTIONS
from ops import smoke
from ops.smoke_plan import INVALID_TO, TEST_FROM, VALID_TO, plan
from shared.contract.models import Appointment, Clinic, Patient
from shared.messaging.channels import recipients
from shared.platform.store import Doc
from shared.reminders.plan import plan_confirmation, plan_reminders
from shared.waitlist.offers import offer_id_for
from tests.builders import NOW
from tests.fakes import FixedClock, MemoryStore

SMOKE = plan("0123abcd", NOW)


def test_every_seeded_document_belongs_to_the_run_and_the_clinic_is_reserved_for_the_smoke_test():
    assert all(path.split("/")[1].startswith("smoke-0123abcd") for path in SMOKE.documents)
    clinic = Clinic.from_doc(SMOKE.clinic_id, SMOKE.documents[f"clinics/{SMOKE.clinic_id}"])
    assert clinic.smoke_test and clinic.sms_from == TEST_FROM
    phones = {doc.get("phone") for path, doc in SMOKE.documents.items() if path.startswith("patients/")}
    assert phones == {VALID_TO, INVALID_TO, None}


def test_each_patient_has_one_channel_so_a_rejected_number_cannot_fall_back_to_email():
    clinic = Clinic.from_doc(SMOKE.clinic_id, SMOKE.documents[f"clinics/{SMOKE.clinic_id}"])
    for recipient in SMOKE.recipients:
        patient = Patient.from_doc(recipient.patient_id, SMOKE.documents[f"patients/{recipient.patient_id}"])
        assert [r.channel for r in recipients(patient, clinic)] == [recipient.channel]


def test_the_reminder_is_due_at_once_and_the_confirmation_is_skipped_too_late():
    clinic = Clinic.from_doc(SMOKE.clinic_id, SMOKE.documents[f"clinics/{SMOKE.clinic_id}"])
    recipient = SMOKE.recipients[0]
    appointment = Appointment.from_doc(
        recipient.appointment_id, SMOKE.documents[f"appointments/{recipient.appointment_id}"]
    )
    (reminder,) = plan_reminders(appointment, clinic, now=NOW, horizon=NOW + timedelta(days=2))
    assert reminder.skipped is None and reminder.task.send_at == NOW and reminder.key == recipient.reminder_key
    confirmation = plan_confirmation(appointment, clinic, now=NOW)
    assert confirmation is not None and confirmation.skipped == "too_late"
    assert confirmation.key == recipient.confirmation_key


def doc(collection: str, doc_id: str, **data: Any) -> Doc:
    return Doc(f"{collection}/{doc_id}", {"clinic_id": SMOKE.clinic_id, **data}, 1)


def evidence(*, valid_sms: dict[str, Any]) -> smoke.Evidence:
    """What the platform leaves when every function did its job (the valid SMS's ledger doc as given)."""
    ledger = [doc("notifications", r.confirmation_key, state="skipped", reason="too_late") for r in SMOKE.recipients]
    valid, invalid, email = SMOKE.recipients
    ledger += [
        doc("notifications", valid.reminder_key, **valid_sms),
        doc("notifications", invalid.reminder_key, state="failed", reason="invalid_number", channel="sms"),
        doc("notifications", email.reminder_key, state="sent", channel="email"),
    ]
    start = SMOKE.documents[f"appointments/{SMOKE.cancelled_appointment_id}"]["start"]
    return smoke.Evidence(
        {
            "notifications": ledger,
            "failed_tasks": [doc("failed_tasks", invalid.reminder_key, error_code="invalid_number", status="open")],
            "fanout_runs": [doc("fanout_runs", f"{SMOKE.clinic_id}_{SMOKE.today}", completed_at=NOW)],
            "reports": [doc("reports", f"{SMOKE.clinic_id}_daily_x")],
            "purchase_orders": [doc("purchase_orders", f"{SMOKE.clinic_id}_x")],
            "slot_offers": [doc("slot_offers", offer_id_for(SMOKE.cancelled_appointment_id, start), status="expired")],
        }
    )


def test_the_checks_pass_on_the_evidence_of_a_healthy_project():
    found = evidence(valid_sms={"state": "sent", "channel": "sms"})
    assert smoke.settled(SMOKE, found)
    assert all(check.passed for check in smoke.delivery_checks(SMOKE, found))


def test_a_smoke_sms_refused_for_missing_test_credentials_fails_its_check_with_the_code():
    found = evidence(valid_sms={"state": "failed", "reason": "twilio_test_credentials_missing", "channel": "sms"})
    checks = {check.name: check for check in smoke.delivery_checks(SMOKE, found)}
    assert not checks["reminder, valid sms"].passed
    assert "twilio_test_credentials_missing" in checks["reminder, valid sms"].detail
    assert checks["reminder, email"].passed


def test_every_deployed_function_is_proven_by_some_check():
    checks = smoke.delivery_checks(SMOKE, smoke.Evidence())
    checks.append(smoke.sweep_check(None, None, False))
    checks += [smoke.webhook_check(name, 403) for name in smoke.WEBHOOKS]
    assert {name for check in checks for name in check.functions} == {fn.name for fn in FUNCTIONS}


def test_the_sweep_passes_only_when_the_retried_task_failed_again_with_the_invalid_number():
    before = doc("failed_tasks", "k", status="open", error_code="invalid_number")
    again = doc("failed_tasks", "k", status="open", retry_generation=1, error_code="invalid_number")
    other = doc("failed_tasks", "k", status="open", retry_generation=1, error_code="twilio_test_credentials_missing")
    assert smoke.sweep_check(before, again, True).passed
    assert not smoke.sweep_check(before, other, True).passed and "twilio_test_credentials_missing" in (
        smoke.sweep_check(before, other, True).detail
    )
    assert not smoke.sweep_check(before, again, False).passed
    done = smoke.retried_and_recorded_again("k")
    assert done(smoke.Evidence({"failed_tasks": [other]}))
    assert not done(smoke.Evidence({"failed_tasks": [doc("failed_tasks", "k", status="retried", retry_generation=1)]}))


def test_a_webhook_passes_only_when_it_refuses_the_unsigned_request():
    assert smoke.webhook_check("twilio-status", 403).passed and smoke.webhook_check("waitlist-claim", 401).passed
    assert not smoke.webhook_check("twilio-status", 200).passed
    assert not smoke.webhook_check("sendgrid-events", None, "ConnectionError").passed


def test_the_campaign_click_passes_only_when_a_tokenless_link_is_a_404_page():
    assert smoke.webhook_check("campaign-click", 404).passed
    assert not smoke.webhook_check("campaign-click", 302).passed
    assert not smoke.webhook_check("campaign-click", 503).passed


def test_the_report_has_one_line_per_check_and_a_verdict():
    text = smoke.report(
        [smoke.Check("seed", True, "clinic smoke-1"), smoke.Check("retry sweep", False, "no failed_tasks record")],
        clinic_id="smoke-1",
        target="project p",
    )
    assert text.splitlines() == [
        "smoke test smoke-1 on project p",
        "PASS  seed         clinic smoke-1",
        "FAIL  retry sweep  no failed_tasks record",
        "smoke: 1 passed, 1 FAILED",
    ]


def run_on(store: MemoryStore, published: list[tuple[str, dict[str, Any]]]) -> smoke.SmokeRun:
    return smoke.SmokeRun(
        store=store,
        clock=FixedClock(NOW),
        publish=lambda topic, data: published.append((topic, data)),
        ask=lambda name, method: 403,
        smoke=SMOKE,
        timeout=0,
        sleep=lambda seconds: None,
    )


def test_a_run_nothing_answers_fails_says_so_masked_and_still_leaves_nothing_behind():
    store = MemoryStore()
    published: list[tuple[str, dict[str, Any]]] = []
    store.seed("notifications/other", {"clinic_id": "clinic-a", "state": "sent"})
    checks = run_on(store, published).run()
    text = smoke.report(checks, clinic_id=SMOKE.clinic_id, target="t")
    assert not all(check.passed for check in checks) and "not all seen within 0 s" in text
    assert {topic for topic, _ in published} == {
        "appointment-events",
        "reminders-tick",
        "reports-tick",
        "inventory-tick",
    }
    assert INVALID_TO not in text and "+1******0001" in text and "@example.com" in text
    assert all(recipient.address not in text for recipient in SMOKE.recipients if recipient.channel == "email")
    assert checks[-1].name == "cleanup" and checks[-1].passed
    left = {collection: store.docs(collection) for collection in ("clinics", "patients", "appointments", "products")}
    assert left == {"clinics": {}, "patients": {}, "appointments": {}, "products": {}}
    assert store.docs("notifications") == {"other": {"clinic_id": "clinic-a", "state": "sent"}}


def test_the_cleanup_deletes_what_the_run_made_for_its_clinic_and_nothing_else():
    store = MemoryStore()
    for collection in smoke.RUN_COLLECTIONS:
        store.seed(f"{collection}/{SMOKE.clinic_id}-made", {"clinic_id": SMOKE.clinic_id})
        store.seed(f"{collection}/kept", {"clinic_id": "clinic-a"})
    store.seed(f"slot_offers/{SMOKE.clinic_id}-made/answers/a1", {"entry_id": "e"})
    check = run_on(store, []).cleanup()
    assert check.passed, check.detail
    for collection in smoke.RUN_COLLECTIONS:
        assert list(store.docs(collection)) == ["kept"]
    assert store.docs(f"slot_offers/{SMOKE.clinic_id}-made/answers") == {}


def test_a_run_that_stops_midway_reports_it_and_still_cleans_up():
    store = MemoryStore()
    run = run_on(store, [])
    run.publish = lambda topic, data: (_ for _ in ()).throw(RuntimeError("pubsub down"))
    checks = run.run()
    assert [(c.name, c.passed) for c in checks] == [("seed", True), ("run", False), ("cleanup", True)]
    assert "pubsub down" in checks[1].detail and store.docs("patients") == {}
