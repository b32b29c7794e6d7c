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


# ------------------------------------------------------- the message list (GET .../Messages.json)

ACCOUNT = "AC" + "ab" * 16
LIST_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def listed_outbox() -> Outbox:
    """Four SMS a minute apart (two to the patient from the clinic), an email, and another account's SMS."""
    from datetime import UTC, datetime, timedelta

    box = Outbox()
    start = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    rows = [
        ("SMa", "+15551234567", "+15550001111", "delivered", ACCOUNT, "sms"),
        ("SMb", "+15557654321", "+15550001111", "delivered", ACCOUNT, "sms"),
        ("SMc", "+15551234567", "+15550002222", "sent", ACCOUNT, "sms"),
        ("SMd", "+15551234567", "+15550001111", "queued", ACCOUNT, "sms"),
        ("SMe", "+15551234567", "+15550001111", "delivered", "AC" + "cd" * 16, "sms"),
        ("em1", "jane@example.com", "clinic@example.com", "delivered", None, "email"),
    ]
    for minute, (sid, to, sender, status, account, channel) in enumerate(rows):
        at = start + timedelta(minutes=minute)
        box.add(
            Message(
                id=sid,
                channel=channel,
                direction="outbound",
                to=to,
                from_=sender,
                status=status,
                body=f"body {sid}",
                account_sid=account,
                created_at=at,
                updated_at=at + timedelta(seconds=5),
            )
        )
    return box


def page(query: dict[str, str]) -> dict:
    from local.sandbox.twilio_api import message_page

    return message_page(listed_outbox().list(), query, ACCOUNT, LIST_PATH)


def test_the_list_holds_this_accounts_sms_newest_first_in_twilios_paging_shape() -> None:
    result = page({})
    assert [m["sid"] for m in result["messages"]] == ["SMd", "SMc", "SMb", "SMa"]
    assert set(result) == {
        "messages",
        "page",
        "page_size",
        "start",
        "end",
        "uri",
        "first_page_uri",
        "next_page_uri",
        "previous_page_uri",
    }
    assert (result["page"], result["page_size"], result["start"], result["end"]) == (0, 50, 0, 3)
    assert result["next_page_uri"] is None and result["previous_page_uri"] is None
    assert result["uri"] == f"{LIST_PATH}?PageSize=50&Page=0"
    first = result["messages"][0]
    assert (first["to"], first["from"], first["body"], first["date_sent"]) == (
        "+15551234567",
        "+15550001111",
        "body SMd",
        None,
    )
    assert first["date_created"] == "Wed, 25 Nov 2026 12:03:00 GMT"


def test_the_list_filters_by_recipient_and_sender_as_twilio_does() -> None:
    assert [m["sid"] for m in page({"To": "+15551234567", "From": "+15550001111"})["messages"]] == ["SMd", "SMa"]
    assert [m["sid"] for m in page({"To": " 15551234567"})["messages"]] == ["SMd", "SMc", "SMa"]  # "+" read as " "
    assert page({"To": "+15550000000"})["messages"] == []


def test_the_list_filters_by_date_sent_and_leaves_out_messages_not_sent_yet() -> None:
    assert [m["sid"] for m in page({"DateSent": "2026-11-25"})["messages"]] == ["SMc", "SMb", "SMa"]
    assert page({"DateSent": "2026-11-24"})["messages"] == []
    assert [m["sid"] for m in page({"DateSent>": "2026-11-25T12:01:00Z"})["messages"]] == ["SMc", "SMb"]
    assert [m["sid"] for m in page({"DateSent<": "2026-11-25T12:01:00Z"})["messages"]] == ["SMa"]


def test_the_list_pages_and_links_the_next_page_with_the_same_filters() -> None:
    first = page({"To": "+15551234567", "PageSize": "2"})
    assert [m["sid"] for m in first["messages"]] == ["SMd", "SMc"] and first["end"] == 1
    assert first["next_page_uri"] == f"{LIST_PATH}?To=%2B15551234567&PageSize=2&Page=1"
    second = page({"To": "+15551234567", "PageSize": "2", "Page": "1"})
    assert [m["sid"] for m in second["messages"]] == ["SMa"] and second["next_page_uri"] is None
    assert second["previous_page_uri"] == f"{LIST_PATH}?To=%2B15551234567&PageSize=2&Page=0"
    assert page({"Page": "9"})["messages"] == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"PageSize": "1001"}, 20007),
        ({"PageSize": "0"}, 20001),
        ({"PageSize": "ten"}, 20001),
        ({"Page": "-1"}, 20001),
        ({"DateSent": "yesterday"}, 20001),
    ],
)
def test_a_list_query_twilio_would_refuse_is_an_error(query: dict[str, str], code: int) -> None:
    from local.sandbox.twilio_api import ListError

    with pytest.raises(ListError) as caught:
        page(query)
    assert caught.value.code == code
