"""The local demo: the product's whole story on the local stack, told in thirteen steps whose numbers add up.

    python -m local.demo [--quick] [--timeout S]        (make demo: brings the stack up first)

1. seeds five demo clinics (local/seed.py) and says what one day means: which appointments get which
   messages, and why some are not sent;
2. publishes one reminders tick through Pub/Sub, as Cloud Scheduler does, and shows the plan;
3. lets Cloud Tasks dispatch the day (send times compressed: one day of waiting = 30 s, `--quick` 3 s)
   while Twilio is down for the first seconds (a fault rule of the provider sandbox), so some SMS get
   through on a retry and some give up after the queue's last attempt;
4. shows the failures recorded in failed_tasks and the ledger;
5. retries them as an operator does, through the console (one field set to "retry", then "run the
   sweep now", which publishes to failed-tasks-sweep as Cloud Scheduler does), and shows them delivered;
6. cancels an appointment and fills it from the waitlist with a patient's YES (played by the sandbox,
   signed as Twilio signs), the Cloud Tasks emulator back at real time so the offer window is real;
7. confirms an appointment with a patient's C;
8. publishes the daily reports tick and shows the reports emailed to the clinics' managers;
9. a campaign: consent by text and by the booking platform's forms, a promotion to those who gave it, its
   tracked link and report (docs/campaigns.md);
10. follow-ups that act: one tick plans a check-in and two surveys; a 5 gets the clinic's review link once, a
   1 alerts the managers and the front desk (docs/feedback.md);
11. a group booking: a party of three whose seats each get their own "starting soon" text, one seat
   cancelled before it is due (docs/groups.md);
12. rebooking: a nudge 90 days after a Botox visit (marketing, under consent), one skipped for a patient who
   booked again, and "we missed you" after a no-show (docs/rebooking.md);
13. an abandoned booking nudged back: its restore link followed, the booking completed and counted
   (docs/booking-recovery.md).

Each step names the console page where it can be seen. The demo stands the stack's clock on 12:00 UTC
of today (the same plan every run) and puts it back when it ends. Output holds clinic names, ids, counts
and masked numbers only. Durations are measured and printed. The last line of a finished story,
`DEMO_SUMMARY {...}`, holds each step and every count as one JSON object, for programs (the tests).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import requests

from local import config as stack_config
from local import seed
from local import stack as local_stack
from local.config import StackConfig
from local.processes import ProcessDir
from local.sandbox.console.__main__ import main as console_pages
from local.sandbox.console.conversations import thread_id
from local.sandbox.console.messages import ledger_key
from shared.platform import clients
from shared.platform.masking import mask_address

if TYPE_CHECKING:
    from google.cloud.firestore_v1 import CollectionReference, Query

# What the functions wrote: a ledger doc left behind would make the next demo's message a duplicate.
DEMO_COLLECTIONS = (
    "notifications",
    "failed_tasks",
    "fanout_runs",
    "slot_offers",
    "inbound_sms",
    "patient_requests",
    "waitlist_offer_counts",
    "reports",
    "report_runs",
    "purchase_orders",
    "consents",
    "send_records",
    "campaigns",
    "campaign_reports",
    "campaign_clicks",
    "booking_sessions",
    "booking_recoveries",
)
IN_FLIGHT = ("scheduled", "sending", "unconfirmed")
DAY_SCALE = 2880  # one day of waiting in 30 s
QUICK_SCALE = 28800  # one day in 3 s
OUTAGE_PREFIX = "+91"  # Twilio's route to India goes down: Bandra Skin & Laser's patients
OUTAGE_MIN_SECONDS = 4.0  # the outage lasts at least this long, and until one SMS has used up its retries
OUTAGE_MAX_SECONDS = 90.0
STAND_ON = wall_time(12, 0)  # UTC: the demo's "now" on today's date, so every run plans the same day
SETTLED_SECONDS = 3.0  # nothing moved in the ledger for this long: the dispatch is over
POLL_SECONDS = 0.25
WAITLIST_CLINIC = "nyc"
GROUP_NAMES = ("Ottilie", "Bronwyn", "Ines")  # the demo's group booking: the organizer first
GROUP_LEAD_SECONDS = 20  # the party's "starting soon" is due this long after its seats are booked
CAMPAIGN_KEYWORD = "JOIN"  # the clinic's marketing keyword (the default)
FEEDBACK_LEAD_SECONDS = 8  # the demo's visits end this long before "now" a week (two days) ago: sent that soon
CAMPAIGN_FORMS = 4  # consents from the booking platform's form; one of these patients then revokes by text
SUMMARY_PREFIX = "DEMO_SUMMARY "  # the last line of a finished story: its counts as JSON (summary_line)
KIND_WORDS = {
    "appointment_reminder": "reminders",
    "prep_instructions": "prep",
    "followup": "follow-ups",
    "booking_confirmation": "confirmations",
}
REASON_SHORT = {"opted_out": "opted out", "no_contact": "no contact", "too_late": "too late"}
REASON_WORDS = {
    "opted_out": "the patient opted out of every channel",
    "no_contact": "no phone or email",
    "past": "its send time had passed when the tick planned it and it was no longer useful",
    "too_late": "it could not leave before 30 min ahead of the start",
}


class DemoError(RuntimeError):
    """A step did not end as the story says; the message names what was waited for."""


# ---------------------------------------------------------------------------------------------- output


@dataclass
class Narrator:
    """Numbered steps, each with the console page where it can be seen and how long it took."""

    console: str
    started: float = field(default_factory=time.monotonic)
    durations: list[tuple[str, float]] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    number: int = 0

    @contextlib.contextmanager
    def step(self, title: str, page: str) -> Iterator[None]:
        self.number += 1
        print(f"\n{self.number}. {title}", flush=True)
        print(f"   console: {self.console}{page}", flush=True)
        self.pages.append(page)
        began = time.monotonic()
        yield
        took = time.monotonic() - began
        self.durations.append((title.split(":")[0].split(",")[0], took))
        print(f"   ({took:.1f} s)", flush=True)

    @staticmethod
    def say(line: str = "") -> None:
        print(f"   {line}" if line else "", flush=True)


def counted(counter: Counter[str] | dict[str, int], words: dict[str, str] | None = None) -> str:
    """'opted_out 20, past 15' (largest first), or 'none': never an empty '()'."""
    items = [(key, value) for key, value in counter.items() if value]
    if not items:
        return "none"
    items.sort(key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{(words or {}).get(key, key)} {value}" for key, value in items)


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = POLL_SECONDS) -> Any:
    """Poll `probe` until it returns something truthy; DemoError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------------------------------- world


class World:
    """The stack as the demo drives it: Firestore, Pub/Sub, the sandbox's JSON API and the console."""

    def __init__(self, config: StackConfig, timeout: float) -> None:
        self.config, self.timeout = config, timeout
        self.db = clients.firestore()
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only, never through a proxy
        self.clinics: dict[str, dict[str, Any]] = {}

    # ---- Firestore
    def docs(self, collection: str, **where: Any) -> list[tuple[str, dict[str, Any]]]:
        from google.cloud.firestore import FieldFilter

        query: CollectionReference | Query = self.db.collection(collection)
        for name, value in where.items():
            query = query.where(filter=FieldFilter(name, "==", value))
        return [(snapshot.id, snapshot.to_dict() or {}) for snapshot in query.stream()]

    def doc(self, path: str) -> dict[str, Any] | None:
        snapshot = self.db.document(path).get()
        return (snapshot.to_dict() or {}) if snapshot.exists else None

    def ledger(self) -> dict[str, dict[str, Any]]:
        return dict(self.docs("notifications"))

    def wipe(self) -> None:
        """An empty database: the official emulator's wipe endpoint, else every collection the functions
        write, with their subcollections (a waitlist answer left behind would replay the last run's claim)."""
        url = (
            f"http://{self.config.host}:{self.config.firestore_port}/emulator/v1/projects/{self.config.project}"
            "/databases/(default)/documents"
        )
        try:
            if self.http.delete(url, timeout=30).status_code == 200:
                return
        except requests.RequestException:
            pass
        for collection in DEMO_COLLECTIONS:
            self._delete(self.db.collection(collection))
        self._delete(self.db.collection_group("answers"))
        self._delete(self.db.collection_group("history"))  # consents/{patient}/history

    def _delete(self, query: Any) -> None:
        while documents := list(query.limit(400).stream()):
            batch = self.db.batch()
            for snapshot in documents:
                batch.delete(snapshot.reference)
            batch.commit()

    def clinic_name(self, clinic_id: Any) -> str:
        return str(self.clinics.get(str(clinic_id), {}).get("name") or clinic_id)

    # ---- Pub/Sub, as Cloud Scheduler and the booking platform publish
    def publish(self, topic: str, data: dict[str, Any]) -> str:
        publisher = clients.publisher()
        path = publisher.topic_path(self.config.project, topic)
        return str(publisher.publish(path, json.dumps(data).encode()).result(timeout=30))

    # ---- the sandbox's JSON API and the console
    def sandbox(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.config.sandbox_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def console(self, path: str, **form: str) -> dict[str, Any]:
        """POST a console form as the page does, asking for the JSON answer scripts get."""
        response = self.http.post(
            f"{self.config.sandbox_url}{path}", data=form, headers={"Accept": "application/json"}, timeout=60
        )
        if response.status_code >= 400:
            raise DemoError(f"the console refused {path}: {response.status_code} {response.text[:200]}")
        return dict(response.json())

    def messages(self, **query: str) -> list[dict[str, Any]]:
        return list(self.sandbox("GET", "/_sandbox/messages", params=query))


# ------------------------------------------------------------------------------------------ the stack


def run_tasks_at(config: StackConfig, scale: int) -> StackConfig:
    """A fresh Cloud Tasks emulator at this time scale (every other component as it is, or started).

    Fresh because Cloud Tasks remembers a task's name for an hour after it ran, as the cloud does: the
    demo's reseeded appointments have the same ledger keys, hence the same task names, as the last run's.
    """
    scaled = stack_config.load({**os.environ, "MEDSPA_DEMO_TIME_SCALE": str(scale)})
    survivors = ProcessDir(scaled.state_dir).stop(["tasks"])
    if survivors:
        raise DemoError("the Cloud Tasks emulator did not stop")
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet):
            local_stack.up(scaled)
    except local_stack.StackError as exc:
        raise DemoError(f"the stack did not start: {exc}") from exc
    return scaled


def stand_on(config: StackConfig) -> datetime:
    from shared.platform.emulator import set_local_clock

    instant = datetime.combine(datetime.now(UTC).date(), STAND_ON, UTC)
    set_local_clock(config.clock_file, instant)
    return instant


# ---------------------------------------------------------------------------------------------- steps


@dataclass
class Story:
    world: World
    narrator: Narrator
    quick: bool
    scale: int
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    days: dict[str, date] = field(default_factory=dict)  # clinic id → the tick's local day (its tomorrow)
    outage_from: float = 0.0  # when the day's tasks existed, with Twilio's route down (time.monotonic)
    figures: dict[str, Any] = field(default_factory=dict)  # the counts of every step, for the summary line

    @property
    def say(self) -> Callable[[str], None]:
        return self.narrator.say

    # 1 -----------------------------------------------------------------------------------------------
    def seeded(self) -> None:
        world = self.world
        world.wipe()
        world.sandbox("DELETE", "/_sandbox/messages")
        world.sandbox("DELETE", "/_sandbox/faults")
        world.sandbox("DELETE", "/_sandbox/opt-outs")
        data = seed.build_demo_data(self.now)
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):
            if seed.main(["--reset", "--now", self.now.isoformat()]) != 0:
                raise DemoError("seeding failed")
        world.clinics = data["clinics"]
        appointments = data["appointments"]
        self.figures.update({name: len(documents) for name, documents in data.items()})
        self.say(
            f"{len(data['clinics'])} clinics, {len(data['patients'])} patients ({seed.PATIENTS_PER_CLINIC} a clinic), "
            f"{len(appointments)} appointments (last week to three weeks ahead), {len(data['waitlist'])} waitlist "
            f"entries, {len(data['products'])} products"
        )
        for clinic_id, clinic in data["clinics"].items():
            zone = ZoneInfo(clinic["timezone"])
            tomorrow = seed.local_tomorrow(self.now, zone)
            self.days[clinic_id] = tomorrow
            offsets = " + ".join(f"{hours} h" for hours in clinic["reminder_offsets_hours"])
            local_now = self.now.astimezone(zone).strftime("%H:%M")
            self.say(f"  {clinic['name']:<30} {clinic['timezone']:<20} now {local_now}, reminders {offsets} before")
        self.say(
            "every clinic has the same cast: patients who opted out of SMS, of email or of both, one with no "
            "phone, one with no email, one whose number Twilio refuses (21211: email instead), Spanish speakers"
        )

    # 2 -----------------------------------------------------------------------------------------------
    def planned(self) -> dict[str, dict[str, Any]]:
        world = self.world
        outage = {"channel": "sms", "kind": "http", "status": 503, "to": f"{OUTAGE_PREFIX}*"}
        world.sandbox("POST", "/_sandbox/faults", json=outage)
        message_id = world.publish("reminders-tick", {})
        clinics = len(world.clinics)
        wait_for(
            "the fan-out of every clinic (fanout_runs)",
            lambda: len(world.docs("fanout_runs")) >= clinics,
            self.world.timeout,
        )
        self.outage_from = time.monotonic()
        ledger = world.ledger()
        appointments = {doc_id: doc for doc_id, doc in world.docs("appointments")}
        self.say(f"reminders-tick message {message_id} (as Cloud Scheduler's reminders-tick job publishes it)")
        self.say(f"reminder-fanout planned {len(ledger)} messages for each clinic's local tomorrow:")
        self._plan_table(ledger, appointments)
        return ledger

    def _group(self, doc: dict[str, Any], appointments: dict[str, dict[str, Any]]) -> str:
        clinic = self.world.clinics.get(str(doc.get("clinic_id")), {})
        start = doc.get("appointment_start")
        if not isinstance(start, datetime) or not clinic:
            return "other"
        day = start.astimezone(ZoneInfo(clinic["timezone"])).date()
        offset = (day - self.days[str(doc.get("clinic_id"))]).days
        if doc.get("kind") == "followup":
            return "completed a week ago"
        labels = {-1: "today, still ahead", 0: "tomorrow", 1: "the day after tomorrow", 2: "in three days"}
        return labels.get(offset, f"in {offset + 1} days")

    def _plan_table(self, ledger: dict[str, dict[str, Any]], appointments: dict[str, dict[str, Any]]) -> None:
        order = ["today, still ahead", "tomorrow", "the day after tomorrow", "in three days", "completed a week ago"]
        kinds = ["appointment_reminder", "prep_instructions", "followup", "booking_confirmation"]
        table: dict[str, Counter[str]] = defaultdict(Counter)
        skipped: dict[str, Counter[str]] = defaultdict(Counter)
        booked: dict[str, set[str]] = defaultdict(set)
        for doc in ledger.values():
            group = self._group(doc, appointments)
            table[group][str(doc.get("kind"))] += 1
            booked[group].add(str(doc.get("appointment_id")))
            if doc.get("state") == "skipped":
                skipped[group][str(doc.get("reason"))] += 1
        groups = [g for g in order if g in table] + sorted(g for g in table if g not in order)
        used = [k for k in kinds if any(table[g][k] for g in groups)]
        head = f"     {'appointments':<34}" + "".join(f"{KIND_WORDS.get(k, k):>12}" for k in used)
        self.say(head + f"{'messages':>10}   not sent")
        for group in groups:
            row = f"     {group + f' ({len(booked[group])})':<34}"
            row += "".join(f"{table[group][k] or '-':>12}" for k in used)
            self.say(row + f"{sum(table[group].values()):>10}   {counted(skipped[group], REASON_SHORT)}")
        total = Counter[str]()
        for group in groups:
            total.update(table[group])
        not_sent = Counter[str]()
        for group in groups:
            not_sent.update(skipped[group])
        self.say(
            f"     {'total':<34}" + "".join(f"{total[k]:>12}" for k in used) + f"{sum(total.values()):>10}"
            f"   {sum(not_sent.values())}"
        )
        tomorrow = [doc for doc in ledger.values() if self._group(doc, appointments) == "tomorrow"]
        active = {
            clinic_id: sum(
                1
                for doc_id, appointment in appointments.items()
                if appointment.get("clinic_id") == clinic_id
                and appointment.get("status") in ("booked", "confirmed")
                and appointment["start"].astimezone(ZoneInfo(clinic["timezone"])).date() == self.days[clinic_id]
            )
            for clinic_id, clinic in self.world.clinics.items()
        }
        by_offsets: Counter[int] = Counter()
        for clinic_id, count in active.items():
            by_offsets[len(self.world.clinics[clinic_id]["reminder_offsets_hours"])] += count
        reminders = sum(1 for doc in tomorrow if doc.get("kind") == "appointment_reminder")
        formula = " + ".join(f"{count} × {offsets}" for offsets, count in sorted(by_offsets.items(), reverse=True))
        self.say(
            f"   why: tomorrow's {sum(active.values())} booked or confirmed appointments (cancelled ones get nothing) "
            f"× each clinic's reminders = {formula} = {reminders} reminders;"
        )
        self.say(
            "   prep: 48 h before a treatment that needs it (so tomorrow's are late, the day after's on time); "
            "follow-ups: a week after a completed visit;"
        )
        self.say("   the first tick also covers today's appointments still ahead (no run of yesterday is recorded).")
        for reason, count in sorted(not_sent.items(), key=lambda item: -item[1]):
            self.say(f"   not sent, {REASON_SHORT.get(reason, reason)} {count}: {REASON_WORDS.get(reason, reason)}")
        to_send = [doc for doc in ledger.values() if doc.get("state") != "skipped"]
        self.say(f"   to send: {len(to_send)} (by SMS or email: the handler picks the patient's channel when it sends)")
        self.figures.update(planned=len(ledger), not_sent=sum(not_sent.values()), to_send=len(to_send))

    # 3 -----------------------------------------------------------------------------------------------
    def dispatched(self) -> dict[str, dict[str, Any]]:
        world = self.world
        route = next((c["name"] for c in world.clinics.values() if c["phone"].startswith(OUTAGE_PREFIX)), "")
        self.say(
            f"Twilio's route to {OUTAGE_PREFIX} numbers is down ({route}'s patients): every such SMS is answered 503 "
            "(a fault rule, on the Faults page) until one of them has used up the queue's attempts"
        )
        wait_for(
            "an SMS to use up its attempts",
            lambda: (
                time.monotonic() - self.outage_from >= OUTAGE_MIN_SECONDS
                and (world.docs("failed_tasks") or time.monotonic() - self.outage_from >= OUTAGE_MAX_SECONDS)
            ),
            OUTAGE_MAX_SECONDS + 10,
        )
        world.sandbox("DELETE", "/_sandbox/faults")
        outage = time.monotonic() - self.outage_from
        self.say(
            f"the route is back after {outage:.1f} s ({outage * self.scale / 3600:.1f} h of the demo's day); "
            "Cloud Tasks dispatches the rest of the day"
        )
        ledger = self._settle("the day's dispatch")
        to_send = [doc for doc in ledger.values() if doc.get("state") != "skipped"]
        states = Counter(str(doc.get("state")) for doc in to_send)
        delivered = [doc for doc in to_send if doc.get("state") == "delivered"]
        by_channel = Counter(str(doc.get("channel")) for doc in delivered)
        hit = [doc for doc in to_send if int(doc.get("attempts") or 0) > 1 or doc.get("state") == "failed"]
        recovered = [doc for doc in hit if doc.get("state") == "delivered"]
        gave_up = [doc for doc in hit if doc.get("state") == "failed"]
        self.say(f"{len(to_send)} to send: {counted(states)}")
        self.say(
            f"  delivered {len(delivered)}: {by_channel.get('sms', 0)} SMS confirmed by Twilio's status callbacks, "
            f"{by_channel.get('email', 0)} emails by SendGrid's event webhook"
        )
        self.say(
            f"  the outage met {len(hit)} SMS: {len(recovered)} got through on a later attempt "
            f"(Cloud Tasks retried them), {len(gave_up)} gave up after the queue's last attempt"
        )
        self.figures.update(
            delivered=len(delivered),
            delivered_sms=by_channel.get("sms", 0),
            delivered_email=by_channel.get("email", 0),
            failed=states.get("failed", 0),
            outage_met=len(hit),
            recovered=len(recovered),
            gave_up=len(gave_up),
        )
        return ledger

    def _settle(self, what: str) -> dict[str, dict[str, Any]]:
        """Wait until nothing is in flight and the ledger stopped moving (sends and delivery callbacks)."""
        last: dict[str, Any] = {"fingerprint": None, "since": time.monotonic()}

        def settled() -> dict[str, dict[str, Any]] | None:
            ledger = self.world.ledger()
            fingerprint = Counter((doc.get("state"), doc.get("delivery_status")) for doc in ledger.values())
            if fingerprint != last["fingerprint"]:
                last.update(fingerprint=fingerprint, since=time.monotonic())
                return None
            busy = any(doc.get("state") in IN_FLIGHT or doc.get("state") == "sent" for doc in ledger.values())
            return ledger if not busy and time.monotonic() - last["since"] > SETTLED_SECONDS else None

        return wait_for(what, settled, self.world.timeout, interval=0.5)

    # 4 -----------------------------------------------------------------------------------------------
    def recorded(self) -> list[tuple[str, dict[str, Any]]]:
        failed = self.world.docs("failed_tasks", status="open")
        codes = Counter(str(doc.get("error_code")) for _, doc in failed)
        attempts = sorted({int(doc.get("attempts") or 0) for _, doc in failed})
        ledger_failed = Counter(
            str(doc.get("reason")) for doc in self.world.ledger().values() if doc.get("state") == "failed"
        )
        tries = " or ".join(str(n) for n in attempts) or "no"
        self.say(f"failed_tasks: {len(failed)} open ({counted(codes)}), each after {tries} attempts")
        self.say(f"the ledger says failed for {sum(ledger_failed.values())} ({counted(ledger_failed)}), the same keys")
        self.say("in production an operator finds these in the Firestore console (docs/runbook.md)")
        self.figures.update(failed_tasks_open=len(failed), ledger_failed=sum(ledger_failed.values()))
        return failed

    # 5 -----------------------------------------------------------------------------------------------
    def retried(self, failed: list[tuple[str, dict[str, Any]]]) -> None:
        world = self.world
        for doc_id, _ in failed:
            world.console(f"/operations/failed/{doc_id}/status", status="retry")
        self.say(f"set status retry on {len(failed)} (the one-field edit the Firestore console makes)")
        sweep = world.console("/operations/sweep")
        self.say(
            f"'Run the sweep now': published {{}} to {sweep['topic']} (message {sweep['message_id']}), "
            "as the scheduler job does"
        )
        ids = {doc_id for doc_id, _ in failed}
        wait_for(
            "the sweep to mark every retry",
            lambda: all((world.doc(f"failed_tasks/{doc_id}") or {}).get("status") != "retry" for doc_id in ids),
            world.timeout,
        )
        ledger = self._settle("the retried messages")
        after = {doc_id: world.doc(f"failed_tasks/{doc_id}") or {} for doc_id in ids}
        statuses = Counter(str(doc.get("status")) for doc in after.values())
        generations = ", ".join(sorted({str(doc.get("retry_generation")) for doc in after.values()}))
        outcome = Counter(str(ledger.get(doc_id, {}).get("state")) for doc_id in ids)
        self.say(f"retry-sweep re-enqueued them: failed_tasks {counted(statuses)} (retry_generation {generations})")
        self.say(f"their messages now: {counted(outcome)}")
        keys = Counter(ledger_key(message) for message in world.messages(direction="outbound"))
        sent = [key for key, doc in ledger.items() if doc.get("state") in ("sent", "delivered")]
        twice = [key for key in sent if keys.get(key, 0) > 1]
        self.say(f"exactly once: {len(sent)} messages delivered, {len(twice)} of them in the outbox more than once")
        self.figures.update(
            retried=len(ids),
            retried_delivered=outcome.get("delivered", 0),
            delivered_in_the_end=len(sent),
            duplicates=len(twice),
        )
        if statuses.get("retried", 0) != len(ids) or outcome.get("delivered", 0) != len(ids) or twice:
            raise DemoError("the operator's retry did not deliver every failed message exactly once")

    # 6 -----------------------------------------------------------------------------------------------
    def waitlist_filled(self) -> None:
        world = self.world
        code = WAITLIST_CLINIC
        clinic_id = f"clinic-{code}"
        clinic = world.clinics[clinic_id]
        slot = seed.waitlist_slot_id(code)
        appointment = world.doc(f"appointments/{slot}") or {}
        start = appointment["start"].astimezone(ZoneInfo(clinic["timezone"]))
        before = {message["id"] for message in world.messages(channel="sms")}
        cancelled_at = time.monotonic()
        world.publish("appointment-events", {"event": "appointment.cancelled", "appointment_id": slot})
        self.say(
            f"{clinic['name']}: tomorrow's {start:%H:%M} appointment ({slot}) was cancelled; the booking platform "
            "published appointment.cancelled"
        )

        def offers() -> list[dict[str, Any]]:
            found = []
            for message in world.messages(channel="sms", direction="outbound"):
                if message["id"] in before:
                    continue
                doc = world.doc(f"notifications/{ledger_key(message)}") or {}
                if doc.get("kind") == "waitlist_offer":
                    found.append(message)
            return found

        landed = wait_for("the waitlist offer SMS", offers, world.timeout, interval=0.1)
        first = landed[0]
        waited = time.monotonic() - cancelled_at
        answer = world.console(f"/conversations/{thread_id(first)}/reply", body="YES")
        policy = clinic["waitlist"]
        self.say(
            f"waitlist-cancellations offered the slot ({policy['mode']}, a {policy['offer_ttl_minutes']}-minute "
            f"window); the first offer SMS landed {waited:.1f} s after the event"
        )
        self.say(
            f"the patient at {mask_address(first['to'])} replied YES (the webhook answered {answer.get('status')})"
        )
        offer = wait_for(
            "the offer to be filled",
            lambda: next((doc for _, doc in world.docs("slot_offers") if doc.get("status") == "filled"), None),
            world.timeout,
        )
        everyone = offer.get("offered_entry_ids") or []
        closes = offer.get("expires_at")
        when = f" at {closes.astimezone(ZoneInfo(clinic['timezone'])):%H:%M}" if isinstance(closes, datetime) else ""
        # The others hear "taken" when the window closes (an answer may still be on its way; docs/waitlist.md).
        self.say(
            f"slot filled: appointment {offer.get('booked_appointment_id')} booked for the winner; "
            f"{len(everyone)} offered; the others who did not answer are told it was taken when the window "
            f"closes{when}"
        )
        self.figures.update(
            waitlist_offered=len(everyone), waitlist_booked_appointment=offer.get("booked_appointment_id")
        )

    # 7 -----------------------------------------------------------------------------------------------
    def confirmed(self) -> None:
        world = self.world
        clinic_id = f"clinic-{WAITLIST_CLINIC}"
        zone = ZoneInfo(world.clinics[clinic_id]["timezone"])
        patient_id, appointment_id, sms = self._confirmable(clinic_id)
        answer = world.console(f"/conversations/{thread_id(sms)}/reply", body="C")
        confirmed = wait_for(
            "the appointment to be confirmed",
            lambda: (doc := world.doc(f"appointments/{appointment_id}")) and doc.get("confirmed_via") == "sms" and doc,
            world.timeout,
        )
        self.say(
            f"the patient at {mask_address(sms['to'])} answered their reminder with C (the webhook answered "
            f"{answer.get('status')})"
        )
        self.say(
            f"their next appointment, {appointment_id} ({confirmed['start'].astimezone(zone):%a %H:%M}), booked → "
            f"{confirmed.get('status')} (confirmed_via sms); its later reminders no longer ask for C"
        )
        self.figures.update(confirmed_status=confirmed.get("status"), confirmed_via=confirmed.get("confirmed_via"))

    def _confirmable(self, clinic_id: str) -> tuple[str, str, dict[str, Any]]:
        """A patient of the clinic whose next appointment is booked (not yet confirmed) and who got an SMS."""
        world = self.world
        now = self.now + timedelta(minutes=5)
        upcoming: dict[str, tuple[datetime, str, str]] = {}
        for doc_id, doc in world.docs("appointments", clinic_id=clinic_id):
            start = doc.get("start")
            if doc.get("status") in ("booked", "confirmed") and isinstance(start, datetime) and start > now:
                known = upcoming.get(str(doc.get("patient_id")))
                if known is None or start < known[0]:
                    upcoming[str(doc.get("patient_id"))] = (start, doc_id, str(doc.get("status")))
        received = world.messages(channel="sms", direction="outbound")
        for patient_id, (_, appointment_id, status) in sorted(upcoming.items(), key=lambda item: item[1][0]):
            phone = (world.doc(f"patients/{patient_id}") or {}).get("phone")
            sms = [m for m in received if phone and m["to"] == phone]
            if status == "booked" and sms:
                return patient_id, appointment_id, sms[-1]
        raise DemoError(f"no patient of {clinic_id} with a booked next appointment got an SMS")

    # 8 -----------------------------------------------------------------------------------------------
    def reported(self) -> None:
        world = self.world
        message_id = world.publish("reports-tick", {"period": "daily"})
        clinics = len(world.clinics)
        managers = sum(len(clinic.get("manager_emails") or []) for clinic in world.clinics.values())
        reports = wait_for(
            "a report per clinic", lambda: (r := world.docs("reports")) and len(r) >= clinics and r, world.timeout
        )

        def emails() -> list[dict[str, Any]] | None:
            sent = [doc for doc in world.ledger().values() if doc.get("kind") == "report_email"]
            done = [doc for doc in sent if doc.get("state") in ("delivered", "failed", "skipped")]
            return sent if len(sent) >= managers and len(done) == len(sent) else None

        sent = wait_for("the report emails", emails, world.timeout)
        totals = Counter[str]()
        for _, report in reports:
            totals.update({key: value for key, value in (report.get("metrics", {}).get("appointments") or {}).items()})
        days = sorted({str(report.get("start_date")) for _, report in reports})
        self.say(f'reports-tick {{"period": "daily"}} (message {message_id}, as the reports-daily job publishes it)')
        self.say(
            f"report-builder stored {len(reports)} reports of yesterday ({', '.join(days)}, each clinic's own day): "
            f"{totals.get('total', 0)} appointments ({counted({k: v for k, v in totals.items() if k != 'total'})})"
        )
        self.say(f"emailed to {managers} managers: {counted(Counter(str(doc.get('state')) for doc in sent))}")
        self.figures.update(
            reports=len(reports),
            managers=managers,
            report_emails_delivered=sum(1 for doc in sent if doc.get("state") == "delivered"),
        )

    # 9 -----------------------------------------------------------------------------------------------
    def campaigned(self) -> None:
        """Consent by text and from the booking platform, a revocation in free text, then a promotion to the
        clinic's consenting patients: each messaged once inside their window, a click on the tracked link, and
        the report. Later in the day (10:30 in New York), inside the recipients' marketing window."""
        from shared.campaigns.model import Status
        from shared.campaigns.report import CampaignReports
        from shared.platform.clock import system_clock
        from shared.platform.emulator import set_local_clock
        from shared.platform.settings import settings
        from shared.wiring.services import Services

        world = self.world
        clinic_id = f"clinic-{WAITLIST_CLINIC}"
        clinic = world.clinics[clinic_id]
        later = self.now.replace(hour=15, minute=30)  # 10:30 in New York in winter, 11:30 in summer
        set_local_clock(world.config.clock_file, later)
        texted = self._texted(clinic_id)
        joiner, revoker = texted[0], texted[1]
        world.console(f"/conversations/{joiner[1]}/reply", body=CAMPAIGN_KEYWORD)
        wait_for("the JOIN to be recorded", lambda: self._consent(joiner[0]) == "granted", world.timeout)
        self.say(f"a patient at {mask_address(joiner[2])} texted {CAMPAIGN_KEYWORD}: marketing consent recorded")
        # patients whose number took a reminder (a seeded invalid one would fail, as in the cloud)
        others = [patient_id for patient_id, _, _ in texted[1 : 1 + CAMPAIGN_FORMS]]
        for patient_id in others:
            world.publish(
                "appointment-events",
                {
                    "event": "consent.recorded",
                    "event_id": f"demo-form-{patient_id}",
                    "patient_id": patient_id,
                    "clinic_id": clinic_id,
                    "purpose": "marketing",
                    "channel": "sms",
                    "status": "granted",
                    "at": (later - timedelta(days=30)).isoformat(),
                    "source": "booking_form",
                    "wording_version": "booking-form-2026-03",
                },
            )
        wait_for(
            "the booking platform's consents",
            lambda: all(self._consent(patient_id) == "granted" for patient_id in others),
            world.timeout,
        )
        self.say(f"the booking platform published {len(others)} more (consent.recorded, its form's checkbox)")
        world.console(f"/conversations/{revoker[1]}/reply", body="Please stop texting me")
        wait_for("the revocation", lambda: self._consent(revoker[0]) == "revoked", world.timeout)
        self.say(f'the patient at {mask_address(revoker[2])} then texted "Please stop texting me": revoked')

        # the booking platform's settings for the clinic's marketing: its price per SMS segment (Twilio's US rate)
        world.db.document(f"clinics/{clinic_id}").set({"marketing": {"price_per_segment_cents": 0.83}}, merge=True)
        services = Services(settings(), system_clock)
        campaign_id = f"demo-glow-{int(time.time())}"
        campaign = services.campaign_lifecycle.create(
            campaign_id,
            {
                "clinic_id": clinic_id,
                "name": "Winter glow",
                "audience": {"last_visit_within_days": None, "services": [], "tags": []},
                "message": {
                    "template": "Hi {first_name}, our winter glow facial is 20% off at {clinic_name} this week: {link}",
                    "link": f"https://{str(clinic.get('email_from', '@clinic.example.com')).partition('@')[2]}/glow",
                },
                "window": {"start": later - timedelta(minutes=1), "end": later + timedelta(hours=6)},
            },
            by="demo",
        )
        priced = services.campaign_planner.estimate(campaign)
        self.say(
            f"campaign Winter glow: {priced.recipients} recipients ({counted(priced.excluded)} left out), "
            f"{priced.segments} {priced.encoding} segments each at 0.83 cents: estimate {priced.cost_cents} cents"
        )
        services.campaign_planner.schedule(campaign_id, by="demo")
        lifecycle = services.campaign_lifecycle
        wait_for("the campaign to be done", lambda: lifecycle.read(campaign_id).status == Status.DONE, world.timeout)
        sent = [m for m in world.messages(channel="sms") if "winter glow" in str(m.get("body"))]
        link = next(
            word for word in str(sent[0]["body"]).split() if word.startswith(world.config.url("campaign-click"))
        )
        click = world.http.get(link, allow_redirects=False, timeout=30)
        if click.status_code != 302:
            raise DemoError(f"the campaign link answered {click.status_code}, not a redirect")
        reports = CampaignReports(services.store)
        report = wait_for(
            "the campaign's deliveries",
            lambda: (r := reports.build(campaign_id, now=system_clock.now())).delivered == r.sent and r,
            world.timeout,
        )
        self.say(
            f"sent {report.sent} (each once, inside the recipient's window, from the campaigns queue), delivered "
            f"{report.delivered}; one tracked link followed (302, {report.clicks} click counted); cost "
            f"{report.cost_cents or 0} cents"
        )
        self.say("its report is stored (campaign_reports) and emailed to the managers a minute after it is done")
        self.figures.update(
            campaign_recipients=priced.recipients,
            campaign_excluded=sum(priced.excluded.values()),
            campaign_sent=report.sent,
            campaign_delivered=report.delivered,
            campaign_clicks=report.clicks,
            campaign_messages_seen=len(sent),
        )

    # 10 ----------------------------------------------------------------------------------------------
    def followed_up(self) -> None:
        """Three of the clinic's patients visited (two a week ago, one two days ago); one tick plans the
        check-in and the two surveys; one answers 5 (the clinic's review link follows, once), the other 1 (the
        managers are emailed, the front desk has a request) (docs/feedback.md)."""
        from shared.feedback.surveys import low_request_id
        from shared.feedback.tasks import review_key
        from shared.platform.clock import system_clock

        world = self.world
        clinic_id = f"clinic-{WAITLIST_CLINIC}"
        clinic = world.clinics[clinic_id]
        zone = ZoneInfo(clinic["timezone"])
        review_url = "https://g.page/r/demo-glow/review"
        world.db.document(f"clinics/{clinic_id}").set(
            {"feedback": {"checkin_days": 2, "review_url": review_url}}, merge=True
        )
        now = system_clock.now().replace(microsecond=0)
        due = now + timedelta(seconds=FEEDBACK_LEAD_SECONDS)
        # three new patients of the clinic (the seeded ones' visits have follow-ups of their own), numbered after
        # the seeded ones in the same fictional range
        prefix = self._texted(clinic_id)[0][2][:-2]
        stamp = int(time.time())
        visits, ids = {}, {}
        for number, (name, days) in enumerate((("happy", 7), ("unhappy", 7), ("recent", 2)), start=90):
            patient_id = ids[name] = f"demo-patient-{name}-{stamp}"
            world.db.document(f"patients/{patient_id}").set(
                {
                    "clinic_id": clinic_id,
                    "first_name": name.capitalize(),
                    "last_name": "Demo",
                    "phone": f"{prefix}{number}",
                    "preferred_channel": "sms",
                    "locale": "en",
                }
            )
            end = (due.astimezone(zone) - timedelta(days=days)).astimezone(UTC)
            appointment_id = f"demo-visit-{name}-{stamp}"
            world.db.document(f"appointments/{appointment_id}").set(
                {
                    "clinic_id": clinic_id,
                    "patient_id": patient_id,
                    "provider_name": "Dr. Demo",
                    "service_name": "HydraFacial",
                    "start": end - timedelta(hours=1),
                    "end": end,
                    "status": "completed",
                    "price_cents": 19900,
                    "updated_at": end,
                }
            )
            visits[name] = appointment_id
        happy, unhappy, recent = ids["happy"], ids["unhappy"], ids["recent"]
        today = now.astimezone(zone).date()
        world.publish("reminders-tick", {"clinic_id": clinic_id, "date": today.isoformat()})
        phones = {str((world.doc(f"patients/{p}") or {}).get("phone")): p for p in (happy, unhappy, recent)}

        def after_visit() -> dict[str, dict[str, Any]]:
            return {
                phones[m["to"]]: m
                for m in world.messages(channel="sms", direction="outbound")
                if m["to"] in phones and _after_visit(m)
            }

        sent = wait_for(
            "the surveys and the check-in", lambda: len(found := after_visit()) == 3 and found, world.timeout
        )
        surveys = [m for m in sent.values() if "Reply with a number" in str(m.get("body"))]
        self.say(
            f"one tick planned {len(surveys)} surveys (a week after the visit) and {3 - len(surveys)} check-in (two "
            f"days after), each sent at the visit's local time, {due.astimezone(zone):%H:%M:%S}"
        )
        threads = {patient_id: thread_id(m) for patient_id, m in sent.items()}
        world.console(f"/conversations/{threads[happy]}/reply", body="5")
        world.console(f"/conversations/{threads[unhappy]}/reply", body="1")
        review = wait_for(
            "the review link",
            lambda: (
                (entry := world.doc(f"notifications/{review_key(visits['happy'])}"))
                and entry.get("state") in ("sent", "delivered")
                and entry
            ),
            world.timeout,
        )
        request = wait_for(
            "the front desk's request",
            lambda: world.doc(f"patient_requests/{low_request_id(visits['unhappy'])}"),
            world.timeout,
        )
        managers = clinic.get("manager_emails") or []
        alerts = (
            wait_for(
                "the managers' alert",
                lambda: (
                    (
                        found := [
                            m
                            for m in world.messages(channel="email")
                            if "scored their visit 1/5" in str(m.get("subject"))
                        ]
                    )
                    and len(found) >= len(managers)
                    and found
                ),
                world.timeout,
            )
            if managers
            else []
        )
        self.say(f"a patient answered 5: thanked, and the clinic's review link went once ({review.get('channel')})")
        self.say(
            f"another answered 1: {len(alerts)} manager email(s), a {request.get('kind')} request for the front "
            "desk, no review link"
        )
        self.figures.update(
            feedback_surveys=len(surveys),
            feedback_review_links=1,
            feedback_low_alerts=len(alerts),
        )

    # 11 ---------------------------------------------------------------------------------------------
    def grouped(self) -> None:
        """A bridal party of three booked together (docs/groups.md), starting two hours from now: the events
        plan each seat's "starting soon" (the 72 h and 24 h ones are past, covered by it); a bridesmaid cancels
        before it is due and gets nothing; the others each read their own name only."""
        from shared.platform.clock import system_clock

        world = self.world
        clinic_id = f"clinic-{WAITLIST_CLINIC}"
        run = int(time.time())
        start = (system_clock.now() + timedelta(hours=2, seconds=GROUP_LEAD_SECONDS)).replace(microsecond=0)
        group_id, seats = f"demo-party-{run}", {}
        for index, name in enumerate(GROUP_NAMES):
            patient_id = f"demo-party-{run}-{index}"
            phone = f"+1212555{(run + index) % 10_000:04d}"
            world.db.document(f"patients/{patient_id}").set(
                {"clinic_id": clinic_id, "first_name": name, "last_name": "Party", "phone": phone}
            )
            seats[patient_id] = (f"{group_id}-seat-{index}", phone, name)
        members = list(seats)
        world.db.document(f"groups/{group_id}").set(
            {
                "clinic_id": clinic_id,
                "organizer_patient_id": members[0],
                "member_patient_ids": members,
                "start": start,
                "status": "active",
            }
        )
        for patient_id, (appointment_id, _, _) in seats.items():
            world.db.document(f"appointments/{appointment_id}").set(
                {
                    "clinic_id": clinic_id,
                    "patient_id": patient_id,
                    "service_name": "Bridal glow facial",
                    "start": start,
                    "end": start + timedelta(hours=1),
                    "status": "booked",
                    "group_id": group_id,
                }
            )
            world.publish("appointment-events", {"event": "appointment.created", "appointment_id": appointment_id})

        def soon() -> list[dict[str, Any]]:
            docs = [doc for _, doc in world.docs("notifications", group_id=group_id)]
            return [doc for doc in docs if doc.get("offset_hours") == 2]

        wait_for("the party's messages to be planned", lambda: len(soon()) == len(seats), world.timeout)
        self.say(f"a party of {len(seats)} booked together: each seat's 'starting soon' planned (ids only)")
        maid_appointment, maid_phone, _ = seats[members[1]]
        world.db.document(f"appointments/{maid_appointment}").update({"status": "cancelled"})
        self.say("a bridesmaid cancels her own seat before it is due")
        done = ("sent", "delivered", "skipped", "failed")
        wait_for("the party's messages", lambda: all(doc.get("state") in done for doc in soon()), world.timeout)
        sent = [doc for doc in soon() if doc.get("state") in ("sent", "delivered")]
        skipped = [doc for doc in soon() if doc.get("reason") == "cancelled"]
        texts = {phone: name for _, phone, name in seats.values()}
        bodies = [m for m in world.messages(channel="sms", direction="outbound") if m.get("to") in texts]
        crossed = [m for m in bodies if any(n in str(m.get("body")) for n in GROUP_NAMES if n != texts[m["to"]])]
        if len(sent) != len(seats) - 1 or len(skipped) != 1 or crossed or maid_phone in {m["to"] for m in bodies}:
            raise DemoError("the party's messages did not end as planned")
        self.say(
            f"{len(sent)} 'starting soon' texts sent, each naming only its recipient; the cancelled seat's skipped"
        )
        self.figures.update(group_seats=len(seats), group_sent=len(sent), group_seat_cancelled=len(skipped))

    # 12 ---------------------------------------------------------------------------------------------
    def rebooked(self) -> None:
        """Rebooking nudges and "we missed you" (local/demo_rebooking.py, docs/rebooking.md)."""
        from local.demo_rebooking import rebooked

        clinic_id = f"clinic-{WAITLIST_CLINIC}"
        texted = [patient_id for patient_id, _, _ in self._texted(clinic_id)]
        consenting = [patient_id for patient_id in texted if self._consent(patient_id) == "granted"]
        reachable = [
            patient_id
            for patient_id, doc in sorted(self.world.docs("patients", clinic_id=clinic_id))
            if patient_id not in texted
            and doc.get("phone")
            and not (doc.get("sms_opt_out") or doc.get("email_opt_out"))
        ]
        self.figures.update(rebooked(self.world, self.say, wait_for, clinic_id, consenting, reachable[0]))

    # 13 ---------------------------------------------------------------------------------------------
    def recovered(self) -> None:
        """A booking the JOIN patient started on the clinic's booking page and left 70 minutes ago: the
        platform's booking.abandoned plans the clinic's two nudges; the first, already due, goes at once with
        the clinic's discount (the patient gave marketing consent) and a restore link; the patient follows it
        (302 to the clinic's booking page) and completes the booking; the report's figures count it."""
        from shared.booking_recovery.figures import report_figures
        from shared.booking_recovery.tasks import nudge_key
        from shared.platform.clock import system_clock
        from shared.platform.settings import settings
        from shared.reports.periods import period_of
        from shared.wiring.services import Services

        world = self.world
        clinic_id = f"clinic-{WAITLIST_CLINIC}"
        clinic = world.clinics[clinic_id]
        page = f"https://{str(clinic.get('email_from', '@clinic.example.com')).partition('@')[2]}/book?s={{session_id}}"
        world.db.document(f"clinics/{clinic_id}").set(
            {
                "booking_recovery": {"enabled": True, "restore_url": page, "discount_code": "GLOW10"},
                "marketing": {"daily_cap": 2},  # the campaign's text today was one; the discounted nudge is a second
            },
            merge=True,
        )
        patient_id = self._texted(clinic_id)[0][0]  # the patient who texted JOIN in step 9
        now = system_clock.now()
        session_id = f"demo-booking-{int(time.time())}"
        world.db.document(f"booking_sessions/{session_id}").set(
            {
                "clinic_id": clinic_id,
                "patient_id": patient_id,
                "service_name": "HydraFacial",
                "slot_start": now + timedelta(days=2),
                "started_at": now - timedelta(minutes=70),
                "status": "abandoned",
            }
        )
        world.publish("appointment-events", {"event": "booking.abandoned", "session_id": session_id})
        first, second = nudge_key(session_id, 1), nudge_key(session_id, 2)
        wait_for(
            "the first nudge",
            lambda: (world.doc(f"notifications/{first}") or {}).get("state") in ("sent", "delivered"),
            world.timeout,
        )
        phone = str((world.doc(f"patients/{patient_id}") or {}).get("phone"))
        nudge = next(
            m
            for m in world.messages(channel="sms", direction="outbound")
            if m.get("to") == phone and world.config.url("booking-restore") in str(m.get("body"))
        )
        offer = (
            "with the clinic's code (marketing: the patient texted JOIN)"
            if "GLOW10" in str(nudge["body"])
            else "without the code (the patient's marketing cap or window: transactional)"
        )
        self.say(
            f"booking.abandoned for a session started 70 min ago: nudge 1 sent at once to {mask_address(phone)} "
            f"{offer}, nudge 2 planned for tomorrow"
        )
        link = next(w for w in str(nudge["body"]).split() if w.startswith(world.config.url("booking-restore")))
        restored = world.http.get(link, allow_redirects=False, timeout=30)
        if restored.status_code != 302:
            raise DemoError(f"the restore link answered {restored.status_code}, not a redirect")
        self.say(
            f"the patient followed the restore link: 302 to the clinic's booking page ({restored.headers['Location']})"
        )
        world.publish("appointment-events", {"event": "booking.completed", "session_id": session_id})
        wait_for(
            "the completion",
            lambda: (world.doc(f"booking_recoveries/{session_id}") or {}).get("status") == "completed",
            world.timeout,
        )
        services = Services(settings(), system_clock)
        zone = ZoneInfo(str(clinic.get("timezone", "America/New_York")))
        figures = report_figures(services.store, clinic_id, period_of("daily", now.astimezone(zone).date(), zone))
        found = figures.as_doc()
        self.say(
            f"booking.completed: recorded; nudge 2 ({(world.doc(f'notifications/{second}') or {}).get('state')}) "
            f"will find it completed and skip. Report figures: {found['sessions']} session, {found['nudged']} nudged, "
            f"{found['recovered']} recovered"
        )
        self.figures.update(booking_nudged=found["nudged"], booking_recovered=found["recovered"])

    def _texted(self, clinic_id: str) -> list[tuple[str, str, str]]:
        """(patient id, conversation, phone) of the clinic's patients who got an SMS, by patient id."""
        phones = {str(doc.get("phone")): doc_id for doc_id, doc in self.world.docs("patients", clinic_id=clinic_id)}
        found = {}
        for message in self.world.messages(channel="sms", direction="outbound"):
            patient_id = phones.get(str(message.get("to")))
            if patient_id is not None:
                found[patient_id] = (patient_id, thread_id(message), str(message["to"]))
        if len(found) < 1 + CAMPAIGN_FORMS:
            raise DemoError(f"only {len(found)} patients of {clinic_id} got an SMS to answer")
        return [found[patient_id] for patient_id in sorted(found)]

    def _consent(self, patient_id: str) -> str | None:
        current = self.world.doc(f"consents/{patient_id}") or {}
        return (current.get("sms_marketing") or {}).get("status")


def _after_visit(message: dict[str, Any]) -> bool:
    body = str(message.get("body"))
    return "Reply with a number from 1 to 5" in body or "checking in after your visit" in body


def run(quick: bool, timeout: float) -> int:
    base = stack_config.load()
    scale = QUICK_SCALE if quick else (base.demo_time_scale if base.demo_time_scale > 1 else DAY_SCALE)
    started = time.monotonic()
    print(f"medspa-jobs demo{' (quick)' if quick else ''}: project {base.project}, console {base.sandbox_url}/")
    print(f"starting a fresh Cloud Tasks emulator, one day of waiting = {86400 / scale:.0f} s …", flush=True)
    config = run_tasks_at(base, scale)
    os.environ.update(config.function_env())
    clients.reset()
    narrator = Narrator(config.sandbox_url)
    world = World(config, timeout)
    now = stand_on(config)
    print(f"the stack's clock stands on {now:%Y-%m-%d %H:%M} UTC for the demo (back to real time at the end)")
    story = Story(world, narrator, quick, scale, now=now)
    try:
        with narrator.step("Seeded: the demo clinics, their patients and appointments", "/operations#data"):
            story.seeded()
        with narrator.step("Planned: one reminders tick", "/operations/ledger"):
            story.planned()
        with narrator.step("Dispatched: a day of reminders, through a Twilio outage", "/  (and /faults)"):
            story.dispatched()
        with narrator.step("Recorded: what could not be sent", "/operations#failed"):
            failed = story.recorded()
        with narrator.step("Retried by the operator, and recovered", "/operations#failed"):
            if failed:
                story.retried(failed)
            else:
                narrator.say("nothing to retry")
        print("\n   Cloud Tasks back at real time for the waitlist (a fresh emulator) …", flush=True)
        run_tasks_at(base, 1)
        with narrator.step("Waitlist: a cancellation filled by a patient's YES", "/conversations"):
            story.waitlist_filled()
        with narrator.step("Confirmed by text: a patient's C", "/conversations"):
            story.confirmed()
        with narrator.step("Reported: the day's figures emailed to the managers", "/reports"):
            story.reported()
        with narrator.step("Campaign: consent, a promotion to those who gave it, its report", "/campaigns"):
            story.campaigned()
        with narrator.step("Follow-ups: a check-in, surveys, a 5 gets the review link, a 1 alerts", "/conversations"):
            story.followed_up()
        with narrator.step("Group booking: a party's own reminders, a seat cancelled", "/conversations"):
            story.grouped()
        with narrator.step("Rebooking: a nudge 90 days after a Botox visit, and we missed you", "/operations/ledger"):
            story.rebooked()
        with narrator.step("Recovered: an abandoned booking nudged back, completed, counted", "/conversations"):
            story.recovered()
    except DemoError as exc:
        print(f"\ndemo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted", file=sys.stderr)
        return 130
    finally:
        from shared.platform.emulator import set_local_clock

        set_local_clock(config.clock_file, None)
    took = time.monotonic() - started
    print(f"\n== the story took {duration(took)}: " + ", ".join(f"{name} {d:.0f} s" for name, d in narrator.durations))
    print()
    console_pages()
    print("stop the stack: make down   (until then it runs at real time, as `make up` runs it)")
    print(summary_line(story, narrator))
    return 0


def summary_line(story: Story, narrator: Narrator) -> str:
    """The last line: every step (name, console page, seconds) and every count, as one JSON object for
    programs (the tests read it, not the prose). Counts and ids only, never a patient's detail."""
    steps = [
        {"name": name, "page": page, "seconds": round(seconds, 1)}
        for (name, seconds), page in zip(narrator.durations, narrator.pages, strict=True)
    ]
    return SUMMARY_PREFIX + json.dumps({"steps": steps, **story.figures}, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"compress a day into {86400 // QUICK_SCALE} s (CI)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for any one step")
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so the clock is put back, as on Ctrl-C

    signal.signal(signal.SIGTERM, interrupt)
    return run(args.quick, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
