"""The provider sandbox's pure rules: masking, Twilio/SendGrid validation, fault rules, segment counting."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from local.sandbox.faults import FaultBook, FaultError, parse_fault
from local.sandbox.opt_outs import OptOuts
from local.sandbox.outbox import Message, Outbox, address_key
from local.sandbox.sendgrid_api import validate_mail
from local.sandbox.twilio_api import num_segments, validate_message


def sms_form(**fields: str) -> MultiDict[str, str]:
    return MultiDict({"To": "+15551234567", "From": "+15550001111", "Body": "Hi"} | fields)


def mail(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "personalizations": [{"to": [{"email": "jane@example.com"}]}],
        "from": {"email": "clinic@example.com"},
        "subject": "Reminder",
        "content": [{"type": "text/plain", "value": "See you"}],
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


def test_query_string_plus_sign_still_finds_the_phone() -> None:
    assert address_key(" 15551234567") == address_key("+15551234567")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, None),
        ({"To": ""}, 21604),
        ({"To": "5551234567"}, 21211),
        ({"To": "+1 555 123 4567"}, 21211),
        ({"From": ""}, 21603),
        ({"From": "", "MessagingServiceSid": "MG" + "0" * 32}, None),
        ({"From": "not a sender!"}, 21212),
        ({"Body": "   "}, 21602),
        ({"Body": "x" * 1601}, 21617),
    ],
)
def test_create_message_form_is_judged_like_twilio(fields: dict[str, str], code: int | None) -> None:
    assert validate_message(sms_form(**fields)) == code


def test_media_alone_is_a_valid_message() -> None:
    form = sms_form(Body="")
    form.add("MediaUrl", "https://example.com/map.png")

    assert validate_message(form) is None


@pytest.mark.parametrize(
    ("body", "segments"),
    [("a" * 160, 1), ("a" * 161, 2), ("á" * 70, 1), ("á" * 71, 2), ("[" * 80, 1), ("[" * 81, 2)],
    ids=["gsm-160", "gsm-161", "ucs2-70", "ucs2-71", "gsm-escaped-160", "gsm-escaped-162"],
)
def test_segments_are_counted_like_a_carrier(body: str, segments: int) -> None:
    assert num_segments(body) == segments


def test_complete_mail_has_no_errors() -> None:
    assert validate_mail(mail()) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"personalizations": []}, "personalizations"),
        ({"personalizations": [{"to": []}]}, "personalizations.0.to"),
        ({"personalizations": [{"to": [{"email": "jane@"}]}]}, "personalizations.0.to.0.email"),
        ({"from": None}, "from.email"),
        ({"from": {"email": "clinic"}}, "from.email"),
        ({"subject": None}, "subject"),
        ({"content": None}, "content"),
        ({"content": [{"type": "text/plain", "value": ""}]}, "content.0.value"),
        ({"custom_args": {"attempt": 2}}, "custom_args.attempt"),
    ],
)
def test_bad_mail_names_the_field(fields: dict[str, object], field: str) -> None:
    assert [error["field"] for error in validate_mail(mail(**fields))] == [field]


def test_subject_may_come_from_every_personalization() -> None:
    body = mail(subject=None, personalizations=[{"to": [{"email": "jane@example.com"}], "subject": "Hi"}])

    assert validate_mail(body) == []


@pytest.mark.parametrize(("code", "status"), [(21211, 400), (21610, 400), (21614, 400), (20429, 429)])
def test_twilio_code_fault_answers_with_twilios_status(code: int, status: int) -> None:
    assert parse_fault({"channel": "sms", "kind": "twilio_code", "code": code}, "f1").status == status


@pytest.mark.parametrize(
    "spec",
    [
        {"channel": "sms", "kind": "twilio_code", "code": 30003},
        {"channel": "email", "kind": "twilio_code", "code": 21211},
        {"channel": "sms", "kind": "http"},
        {"channel": "sms", "kind": "http", "status": 200},
        {"channel": "sms", "kind": "http", "status": 500, "rate": 1.5},
        {"channel": "sms", "kind": "http", "status": 500, "times": 0},
        {"channel": "fax", "kind": "http", "status": 500},
        {"channel": "sms", "kind": "http", "status": 500, "colour": "red"},
    ],
    ids=[
        "delivery-code-as-api-code",
        "twilio-code-on-email",
        "no-status",
        "not-an-error",
        "rate-above-1",
        "zero-times",
        "unknown-channel",
        "unknown-field",
    ],
)
def test_unusable_fault_rule_is_refused(spec: dict[str, object]) -> None:
    with pytest.raises(FaultError):
        parse_fault(spec, "f1")


def test_delivery_failure_defaults_to_undelivered_30003() -> None:
    fault = parse_fault({"channel": "sms", "kind": "delivery_failure"}, "f1")

    assert (fault.final_status, fault.code) == ("undelivered", 30003)


def test_fault_with_times_is_spent_then_gone() -> None:
    book = FaultBook()
    book.add({"channel": "sms", "kind": "http", "status": 503, "times": 2})

    hits = [book.take("sms", ["+15551234567"]) is not None for _ in range(3)]

    assert hits == [True, True, False] and book.list() == []


def test_fault_for_a_recipient_ignores_other_recipients_and_channels() -> None:
    book = FaultBook()
    book.add({"channel": "sms", "kind": "twilio_code", "code": 21610, "to": "+15551234567"})

    assert book.take("sms", ["+15557654321"]) is None
    assert book.take("email", ["+15551234567"]) is None
    assert book.take("sms", ["+15551234567"]) is not None


def test_same_seed_fails_the_same_requests() -> None:
    def pattern(seed: int) -> list[bool]:
        book = FaultBook(seed)
        book.add({"channel": "email", "kind": "http", "status": 500, "rate": 0.3})
        return [book.take("email", ["jane@example.com"]) is not None for _ in range(50)]

    assert pattern(11) == pattern(11)
    assert 0 < sum(pattern(11)) < 50


def test_outbox_keeps_only_the_newest_messages_when_full() -> None:
    box = Outbox(max_messages=2)
    for sid in ("SM1", "SM2", "SM3"):
        box.add(Message(id=sid, channel="sms", direction="outbound", to="+15551234567", from_=None, status="queued"))

    assert [m["id"] for m in box.list()] == ["SM2", "SM3"] and box.get("SM1") is None


def test_opt_out_applies_to_the_texted_sender_only() -> None:
    opt_outs = OptOuts()
    opt_outs.hear(sender="+15550001111", patient="+15551234567", body=" stop ")

    assert opt_outs.blocks(senders=["+15550001111"], patient="+15551234567")
    assert not opt_outs.blocks(senders=["+15550002222"], patient="+15551234567")


def test_opt_in_keyword_lifts_the_opt_out() -> None:
    opt_outs = OptOuts()
    opt_outs.hear(sender="+15550001111", patient="+15551234567", body="STOP")

    action = opt_outs.hear(sender="+15550001111", patient="+15551234567", body="Yes")

    assert action == "opt_in" and not opt_outs.blocks(senders=["+15550001111"], patient="+15551234567")


def test_a_short_north_american_number_is_21211_like_twilio():
    from local.sandbox.twilio_api import valid_recipient

    assert not valid_recipient("+15550000") and valid_recipient("+12125550142") and valid_recipient("+447700900123")
