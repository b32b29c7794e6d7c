"""Log lines are JSON with severity, bound ids and trace; PHI is masked."""

from __future__ import annotations

import json

from shared.platform import log


def lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_line_is_json_with_severity_message_and_bound_ids(capsys):
    with log.bound(task_id="t-1", trace="projects/p/traces/abc"):
        log.info("sent", channel="sms")
    (entry,) = lines(capsys)
    assert entry["severity"] == "INFO" and entry["message"] == "sent"
    assert entry["task_id"] == "t-1" and entry["channel"] == "sms"
    assert entry["logging.googleapis.com/trace"] == "projects/p/traces/abc"


def test_phone_numbers_and_emails_never_reach_the_log(capsys):
    log.error("twilio rejected +15551234567", to="+15551234567", detail={"email": "jane@example.com"})
    out = capsys.readouterr().out
    assert "5551234567" not in out and "jane@example.com" not in out
    assert "+1******4567" in out


def test_dates_and_ids_are_not_mistaken_for_phone_numbers(capsys):
    log.info("tick", date="2026-11-26", message_id="123456789012")
    (entry,) = lines(capsys)
    assert entry["date"] == "2026-11-26" and entry["message_id"] == "123456789012"


def test_trace_field_from_either_header():
    assert log.trace_field({"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"}, "p") == (
        "projects/p/traces/105445aa7843bc8bf206b12000100000"
    )
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert log.trace_field({"traceparent": parent}, "p") == "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    assert log.trace_field({}, "p") is None
