"""Log lines are JSON with severity, bound ids and trace; PHI is masked; libraries' lines too, through logging."""

from __future__ import annotations

import json
import logging
import sys
import threading

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


def test_a_librarys_line_comes_out_as_masked_json_with_its_loggers_name(capsys):
    with log.bound(task_id="t-2"):
        logging.getLogger("urllib3.connectionpool").warning("Retrying to %s for %s", "+15551234567", "jane@example.com")
    (entry,) = lines(capsys)
    assert entry["severity"] == "WARNING" and entry["logger"] == "urllib3.connectionpool"
    assert entry["message"] == "Retrying to +1******4567 for j***@example.com" and entry["task_id"] == "t-2"


def test_a_google_librarys_exception_carries_its_traceback_masked(capsys):
    from google.api_core import client_logging

    client_logging.setup_logging()  # what a google client's constructor does: it leaves a configured logger alone
    try:
        raise ValueError("no route to jane@example.com")
    except ValueError:
        logging.getLogger("google.api_core").exception("call failed")
    (entry,) = lines(capsys)
    assert entry["severity"] == "ERROR" and "ValueError: no route to j***@example.com" in entry["traceback"]
    assert "jane@example.com" not in json.dumps(entry)


def test_our_lines_are_written_once_whatever_else_the_root_logger_holds(capsys):
    other = logging.StreamHandler(sys.stdout)
    logging.getLogger().addHandler(other)
    try:
        log.log("NOTICE", "tick planned", clinics=3)
    finally:
        logging.getLogger().removeHandler(other)
    (entry,) = lines(capsys)
    assert entry == {"severity": "NOTICE", "message": "tick planned", "clinics": 3}


def test_lines_written_from_many_threads_stay_whole(capsys):
    def write(thread: int) -> None:
        for index in range(50):
            log.info("sent", thread=thread, index=index, padding="x " * 1000)
            logging.getLogger("urllib3").warning("pool %d full", index)

    threads = [threading.Thread(target=write, args=(thread,)) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = lines(capsys)  # every line parses: none was cut by another
    assert len(written) == 8 * 50 * 2
    assert sorted((e["thread"], e["index"]) for e in written if "thread" in e) == [
        (t, i) for t in range(8) for i in range(50)
    ]
