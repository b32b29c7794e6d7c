"""python -m local.sandbox.console: where each page of the local console is (the stack's sandbox serves it)."""

from __future__ import annotations

from local import config as stack_config

PAGES = (
    ("Outbox", "/", "every SMS and email, live; search, filters; open one for its body and delivery timeline"),
    ("Conversations", "/conversations", "an SMS thread per patient and clinic; reply as them (YES, C, STOP, HELP)"),
    ("Operations", "/operations", "seeded data, ledger by state, failed_tasks: set retry or resolved, run the sweep"),
    ("Faults", "/faults", "break Twilio or SendGrid on purpose (5xx, 429, codes, timeouts, answers lost)"),
    ("Reports", "/reports", "stored reports and the emails they went out as"),
    ("Collections", "/operations/collections/patient_requests", "patient_requests, slot_offers, purchase_orders"),
    ("Logs", "/logs", "each function's (and emulator's) log, newest lines first, by severity and text"),
)


def main() -> int:
    url = stack_config.load().sandbox_url
    print(f"local console (loopback only): {url}/")
    for name, path, what in PAGES:
        print(f"  {name:<14} {url}{path:<16} {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
