"""Realistic demo data for the local stack: clinics, patients, appointments and waitlist entries.

    python -m local.seed [--now ISO] [--reset] [--seed N]

Every document obeys the Firestore contract (docs/architecture.md, "Firestore contract"): timestamps are
aware UTC datetimes, computed from each clinic's local wall time with zoneinfo. The clinics, treatments,
patients' names and roles, appointment slots and products are data, in local/seed_data.toml; the documents
are a pure function of that file and (now, seed): `build_demo_data` builds them, `write_demo_data` writes
them with batched writes. Document
ids are stable and relative to "now" (`appt-nyc-p01-03` = the 3rd appointment on the clinic's local day
+1), and the set of ids depends only on the seed, so re-running on another day overwrites the same
documents instead of piling up new ones. `--reset` first deletes every document of the seeded collections.

What the data exercises, in every clinic:
- local tomorrow (the clinic's own calendar day, 23 or 25 hours long on a DST change): an appointment
  at 07:30, whose 24 h and 2 h reminders both fall in the default quiet hours, one at 08:30, one needing
  prep, a cancelled one, one late in the evening (20:30), and one for each kind of hard-to-reach patient;
- patients who opted out of SMS, of email, of everything, who have no phone (email only), no email,
  who speak Spanish, and one whose number Twilio rejects as invalid (21211);
- every appointment status: completed and no-show ones 7 days ago (follow-ups) and yesterday (daily
  report), booked/confirmed/cancelled ones over the next three weeks;
- waitlist entries with and without a preferred provider; in every clinic two of them (patients 10 and 11,
  both reachable by SMS) fit tomorrow's cancelled 11:00 slot (`waitlist_slot_id`), so publishing its
  appointment.cancelled event fills it from the waitlist (docs/waitlist.md, "Demo").
- products for the morning reorder check: one below its reorder point, one exactly at it, two above,
  and an inactive one below it (never reordered); each clinic has an inventory contact.

Refuses to write unless the emulator variables are set (shared.platform.emulator.on_emulator): `--reset` against a
real project would delete its clinics. The printed summary holds counts, dates and ids only, never a
patient's name, phone or email (docs/architecture.md, "IDs-only payloads").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tomllib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

UTC = timezone.utc
SEEDED_COLLECTIONS = ("clinics", "patients", "appointments", "waitlist", "products")
MAX_BATCH_WRITES = 500  # Firestore's limit of writes in one batch
FUTURE_DAYS = 21  # appointments are seeded for the coming three weeks
PATIENTS_PER_CLINIC = 12
INVALID_PHONE = "+15550000"  # well-formed E.164 but not a real number: Twilio answers 21211
SEED_DATA = Path(__file__).with_name("seed_data.toml")

Data = dict[str, dict[str, dict[str, Any]]]


# --------------------------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class Service:
    name: str
    kind: str  # which provider performs it: "injector", "skin" or "laser"
    minutes: int
    price_cents: int  # US-dollar base price; scaled per clinic currency
    prep_en: str = ""
    prep_es: str = ""


@dataclass(frozen=True)
class ClinicSpec:
    code: str  # short code used in every id: clinic-<code>, pat-<code>-001, appt-<code>-…
    name: str
    timezone: str
    phone: str
    sms_from: str
    email_domain: str
    locale: str
    reminder_offsets_hours: tuple[int, ...]
    quiet_hours: tuple[str, str]
    waitlist: tuple[str, int, int]  # mode, wave_size, offer_ttl_minutes
    price_factor: float  # US-dollar base price → the clinic currency's minor units
    patient_phone_prefix: str  # fictional/obviously fake range; patient n gets prefix + f"{n:02d}"
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    providers: tuple[tuple[str, str], ...]  # (kind, display name) for "injector", "skin", "laser"
    spanish_patients: tuple[int, ...]  # patient numbers (1-based) whose locale is "es"


def _load(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


# The clinics, patients and appointments themselves are data: local/seed_data.toml.
_DATA = _load(SEED_DATA)
SERVICES = tuple(Service(**service) for service in _DATA["services"])
_NAMES = {pool: (tuple(names["first"]), tuple(names["last"])) for pool, names in _DATA["name_pools"].items()}
_HISPANIC_FIRST, _HISPANIC_LAST = _NAMES["hispanic"]
CLINIC_SPECS = tuple(
    ClinicSpec(
        code=clinic["code"],
        name=clinic["name"],
        timezone=clinic["timezone"],
        phone=clinic["phone"],
        sms_from=clinic["sms_from"],
        email_domain=clinic["email_domain"],
        locale=clinic["locale"],
        reminder_offsets_hours=tuple(clinic["reminder_offsets_hours"]),
        quiet_hours=(clinic["quiet_hours"][0], clinic["quiet_hours"][1]),
        waitlist=(clinic["waitlist"]["mode"], clinic["waitlist"]["wave_size"], clinic["waitlist"]["offer_ttl_minutes"]),
        price_factor=float(clinic["price_factor"]),
        patient_phone_prefix=clinic["patient_phone_prefix"],
        first_names=_NAMES[clinic["names"]][0],
        last_names=_NAMES[clinic["names"]][1],
        providers=tuple((provider["kind"], provider["name"]) for provider in clinic["providers"]),
        spanish_patients=tuple(clinic["spanish_patients"]),
    )
    for clinic in _DATA["clinics"]
)
# Patient n (1-based) has the same role in every clinic, so tests and demos can find each case.
PATIENT_ROLES = {int(number): role for number, role in _DATA["patient_roles"].items()}
# Local tomorrow, in every clinic: (wall time, patient number, status, service name or None = drawn).
TOMORROW_SLOTS = tuple(
    (slot["at"], slot["patient"], slot["status"], slot.get("service")) for slot in _DATA["slots"]["tomorrow"]
)
TODAY_SLOTS = tuple(_DATA["slots"]["today"])
WEEK_AGO_SLOTS = tuple((slot["at"], slot["status"]) for slot in _DATA["slots"]["week_ago"])
YESTERDAY_SLOTS = tuple((slot["at"], slot["status"]) for slot in _DATA["slots"]["yesterday"])
HOURLY_SLOTS = tuple(f"{hour:02d}:00" for hour in range(9, 19))  # 09:00 … 18:00, no provider overlaps
WAITLIST_PATIENTS = tuple(_DATA["slots"]["waitlist_patients"])
# (name, sku, unit, on_hand, reorder_point, reorder_qty, active): the reorder check's cases, in every clinic.
PRODUCTS = tuple(
    (p["name"], p["sku"], p["unit"], p["on_hand"], p["reorder_point"], p["reorder_qty"], p["active"])
    for p in _DATA["products"]
)
SERVICES_BY_NAME = {service.name: service for service in SERVICES}


WAITLIST_FILLS = 2  # the first entries fit tomorrow's cancelled slot: its service, its provider or any
MAX_OFFERS_PER_DAY = 3
MIN_LEAD_MINUTES = 120
_CANCELLED_SLOT = next(i for i, slot in enumerate(TOMORROW_SLOTS, 1) if slot[2] == "cancelled")


def waitlist_slot_id(code: str) -> str:
    """Tomorrow's cancelled appointment in clinic `code`: the slot the demo's waitlist fills."""
    return f"appt-{code}-p01-{_CANCELLED_SLOT:02d}"


# ------------------------------------------------------------------------------------------------ time
def local_to_utc(day: date, wall: str, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock time `wall` ("HH:MM") on `day` in `zone`; refuses a time in a DST gap."""
    hour, minute = (int(part) for part in wall.split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ValueError(f"{wall} does not exist on {day} in {zone.key} (DST gap)")
    return instant


def local_today(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()


def local_tomorrow(now: datetime, zone: ZoneInfo) -> date:
    """The clinic's next local calendar day (what reminder_fanout calls "tomorrow")."""
    return local_today(now, zone) + timedelta(days=1)


# ------------------------------------------------------------------------------------------------ build
def build_demo_data(now: datetime, seed: int = 7) -> Data:
    """collection → doc id → fields, deterministic for (now, seed). `now` must be timezone-aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    now = now.astimezone(UTC)
    data: Data = {name: {} for name in SEEDED_COLLECTIONS}
    used_emails: set[str] = set()
    for spec in CLINIC_SPECS:
        # One generator per clinic: adding a clinic never changes another clinic's data.
        rng = random.Random(f"medspa-seed:{seed}:{spec.code}")
        clinic_id = f"clinic-{spec.code}"
        data["clinics"][clinic_id] = _clinic(spec)
        patients = _patients(spec, clinic_id, rng, used_emails)
        data["patients"].update(patients)
        data["appointments"].update(_appointments(spec, clinic_id, patients, now, rng))
        data["waitlist"].update(_waitlist(spec, clinic_id, now, rng, data["appointments"][waitlist_slot_id(spec.code)]))
        data["products"].update(_products(spec, clinic_id))
    return data


def _clinic(spec: ClinicSpec) -> dict[str, Any]:
    mode, wave_size, ttl = spec.waitlist
    return {
        "name": spec.name,
        "timezone": spec.timezone,
        "phone": spec.phone,
        "sms_from": spec.sms_from,
        "email_from": f"reminders@{spec.email_domain}",
        "manager_emails": [f"manager@{spec.email_domain}", f"frontdesk@{spec.email_domain}"],
        "inventory_emails": [f"inventory@{spec.email_domain}"],
        "locale": spec.locale,
        "reminder_offsets_hours": list(spec.reminder_offsets_hours),
        "quiet_hours": {"start": spec.quiet_hours[0], "end": spec.quiet_hours[1]},
        "waitlist": {
            "mode": mode,
            "wave_size": wave_size,
            "offer_ttl_minutes": ttl,
            "max_offers_per_day": MAX_OFFERS_PER_DAY,
            "min_lead_minutes": MIN_LEAD_MINUTES,
        },
    }


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _patients(spec: ClinicSpec, clinic_id: str, rng: random.Random, used_emails: set[str]) -> dict[str, dict[str, Any]]:
    firsts = rng.sample(spec.first_names, PATIENTS_PER_CLINIC)
    lasts = rng.sample(spec.last_names, PATIENTS_PER_CLINIC)
    out: dict[str, dict[str, Any]] = {}
    for number in range(1, PATIENTS_PER_CLINIC + 1):
        role = PATIENT_ROLES[number]
        first, last = firsts[number - 1], lasts[number - 1]
        if spec.code == "nyc" and number in spec.spanish_patients:
            first, last = rng.choice(_HISPANIC_FIRST), rng.choice(_HISPANIC_LAST)
        domain = rng.choice(("example.com", "example.org"))
        email = f"{_ascii(first)}.{_ascii(last)}@{domain}"
        while email in used_emails:  # unique across the whole data set
            email = email.replace("@", f"{rng.randint(1, 99)}@", 1)
        used_emails.add(email)
        phone: str | None = f"{spec.patient_phone_prefix}{number:02d}"
        sms_opt_out = email_opt_out = False
        preferred = "sms"
        if role == "email_preferred":
            preferred = "email"
        elif role == "sms_opt_out":
            sms_opt_out, preferred = True, "email"
        elif role == "email_only":
            phone, preferred = None, "email"
        elif role == "all_opt_out":
            sms_opt_out = email_opt_out = True
        elif role == "invalid_phone":
            phone = INVALID_PHONE
        elif role == "email_opt_out":
            email_opt_out = True
        out[f"pat-{spec.code}-{number:03d}"] = {
            "clinic_id": clinic_id,
            "first_name": first,
            "last_name": last,
            "phone": phone,
            "email": None if role == "no_email" else email,
            "locale": "es" if number in spec.spanish_patients else "en",
            "preferred_channel": preferred,
            "sms_opt_out": sms_opt_out,
            "email_opt_out": email_opt_out,
        }
    return out


def _appointments(
    spec: ClinicSpec,
    clinic_id: str,
    patients: dict[str, dict[str, Any]],
    now: datetime,
    rng: random.Random,
) -> dict[str, dict[str, Any]]:
    """Every random draw happens whatever `now` is, so the set of ids depends on the seed only."""
    zone = ZoneInfo(spec.timezone)
    today = local_today(now, zone)
    # (day offset, wall time, patient number, status or None = by time, service name or None = drawn)
    plan: list[tuple[int, str, int, str | None, str | None]] = []
    for offset, slots in ((-7, WEEK_AGO_SLOTS), (-1, YESTERDAY_SLOTS)):
        numbers = rng.sample(range(1, PATIENTS_PER_CLINIC + 1), len(slots))
        plan += [(offset, wall, n, status, None) for (wall, status), n in zip(slots, numbers, strict=True)]
    for offset in range(-6, -1):
        plan += _random_day(rng, offset, 1, 3, ("completed", "no_show", "cancelled"), (75, 10, 15))
    numbers = rng.sample(range(1, PATIENTS_PER_CLINIC + 1), len(TODAY_SLOTS))
    plan += [(0, wall, n, None, None) for wall, n in zip(TODAY_SLOTS, numbers, strict=True)]
    plan += [(1, wall, n, status, service) for wall, n, status, service in TOMORROW_SLOTS]
    for offset in range(2, FUTURE_DAYS + 1):
        plan += _random_day(rng, offset, 1, 4, ("booked", "confirmed", "cancelled"), (55, 35, 10))

    providers = {kind: (f"prov-{spec.code}-{i:02d}", name) for i, (kind, name) in enumerate(spec.providers, 1)}
    out: dict[str, dict[str, Any]] = {}
    per_day: Counter[int] = Counter()
    for offset, wall, number, fixed_status, service_name in plan:
        service = SERVICES_BY_NAME[service_name] if service_name else rng.choice(SERVICES)
        patient_id = f"pat-{spec.code}-{number:03d}"
        start = local_to_utc(today + timedelta(days=offset), wall, zone)
        end = start + timedelta(minutes=service.minutes)
        status = fixed_status or ("completed" if end <= now else "confirmed")
        price = round(service.price_cents * spec.price_factor * rng.uniform(0.9, 1.2) / 500) * 500
        booked_days_before = rng.randint(1, 28)
        booked_minute = rng.randint(0, 24 * 60 - 1)
        change_fraction = rng.random()
        created_at = min(now, start) - timedelta(days=booked_days_before, minutes=booked_minute)
        if status == "booked":
            updated_at = created_at
        elif status in ("completed", "no_show"):
            updated_at = min(now, end + timedelta(minutes=15))
        else:  # confirmed or cancelled somewhere between booking and the appointment (or now)
            updated_at = created_at + (min(now, start) - created_at) * change_fraction
        prep = service.prep_es if patients[patient_id]["locale"] == "es" else service.prep_en
        provider_id, provider_name = providers[service.kind]
        per_day[offset] += 1
        sign = "p" if offset >= 0 else "m"
        out[f"appt-{spec.code}-{sign}{abs(offset):02d}-{per_day[offset]:02d}"] = {
            "clinic_id": clinic_id,
            "patient_id": patient_id,
            "provider_id": provider_id,
            "provider_name": provider_name,
            "service_name": service.name,
            "requires_prep": bool(prep),
            "prep_instructions": prep,
            "start": start,
            "end": end,
            "status": status,
            "price_cents": int(price),
            "created_at": created_at,
            "updated_at": updated_at,
        }
    return out


def _random_day(
    rng: random.Random, offset: int, low: int, high: int, statuses: Sequence[str], weights: Sequence[int]
) -> list[tuple[int, str, int, str | None, str | None]]:
    count = rng.randint(low, high)
    walls = sorted(rng.sample(HOURLY_SLOTS, count))
    numbers = rng.sample(range(1, PATIENTS_PER_CLINIC + 1), count)
    chosen = rng.choices(statuses, weights=weights, k=count)
    return [(offset, wall, n, status, None) for wall, n, status in zip(walls, numbers, chosen, strict=True)]


def _waitlist(
    spec: ClinicSpec, clinic_id: str, now: datetime, rng: random.Random, slot: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    zone = ZoneInfo(spec.timezone)
    tomorrow = local_tomorrow(now, zone)
    providers = {kind: f"prov-{spec.code}-{i:02d}" for i, (kind, _name) in enumerate(spec.providers, 1)}
    out: dict[str, dict[str, Any]] = {}
    for index, number in enumerate(WAITLIST_PATIENTS, 1):
        service = rng.choice(SERVICES)  # drawn whatever happens next: the later draws stay the same
        if index <= WAITLIST_FILLS:
            service = SERVICES_BY_NAME[slot["service_name"]]
        weeks = rng.randint(1, 3)
        waited = timedelta(days=rng.randint(1, 20), minutes=rng.randint(0, 24 * 60 - 1))
        out[f"wl-{spec.code}-{index:02d}"] = {
            "clinic_id": clinic_id,
            "patient_id": f"pat-{spec.code}-{number:03d}",
            "service_name": service.name,
            "provider_id": providers[service.kind] if index == 2 else None,  # None = any provider
            "earliest": local_to_utc(tomorrow, "00:00", zone),
            "latest": local_to_utc(tomorrow + timedelta(weeks=weeks), "21:00", zone),
            "status": "removed" if (spec.code == "lon" and index == 3) else "waiting",
            "created_at": now - waited,
        }
    return out


def _products(spec: ClinicSpec, clinic_id: str) -> dict[str, dict[str, Any]]:
    return {
        f"prod-{spec.code}-{n:02d}": {
            "clinic_id": clinic_id,
            "name": name,
            "sku": sku,
            "unit": unit,
            "on_hand": on_hand,
            "reorder_point": point,
            "reorder_qty": qty,
            "active": active,
        }
        for n, (name, sku, unit, on_hand, point, qty, active) in enumerate(PRODUCTS, 1)
    }


# ------------------------------------------------------------------------------------------------ summary
def summarize(data: Data, now: datetime, seed: int) -> str:
    """Counts, dates and ids only: never a patient's name, phone or email."""
    lines = [f"seed={seed} now={now.astimezone(UTC).isoformat()}"]
    lines += [f"  {name:<13} {len(data[name]):>4}" for name in SEEDED_COLLECTIONS]
    statuses = Counter(appt["status"] for appt in data["appointments"].values())
    lines.append("  statuses      " + ", ".join(f"{s} {statuses[s]}" for s in sorted(statuses)))
    for clinic_id, clinic in data["clinics"].items():
        zone = ZoneInfo(clinic["timezone"])
        tomorrow = local_tomorrow(now, zone)
        appts = [
            a
            for a in data["appointments"].values()
            if a["clinic_id"] == clinic_id and a["start"].astimezone(zone).date() == tomorrow
        ]
        active = sum(a["status"] in ("booked", "confirmed") for a in appts)
        start, end = local_to_utc(tomorrow, "00:00", zone), local_to_utc(tomorrow + timedelta(days=1), "00:00", zone)
        hours = (end - start) / timedelta(hours=1)
        lines.append(
            f"  {clinic_id:<11} {clinic['timezone']:<20} local tomorrow {tomorrow.isoformat()}"
            f" ({hours:g} h): {len(appts)} appointments, {active} to remind"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ write
def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def delete_collections(client: Any, collections: Iterable[str] = SEEDED_COLLECTIONS) -> int:
    """Delete every document of `collections` (a plain stream + batched deletes); returns the count."""
    deleted = 0
    for name in collections:
        refs = [snapshot.reference for snapshot in client.collection(name).stream()]
        for chunk in _chunks(refs, MAX_BATCH_WRITES):
            batch = client.batch()
            for ref in chunk:
                batch.delete(ref)
            batch.commit()
            deleted += len(chunk)
    return deleted


def write_demo_data(client: Any, data: Data) -> int:
    """Set every document (overwriting), at most MAX_BATCH_WRITES per batch; returns the batch count."""
    writes = [(name, doc_id, fields) for name in SEEDED_COLLECTIONS for doc_id, fields in data[name].items()]
    batches = 0
    for chunk in _chunks(writes, MAX_BATCH_WRITES):
        batch = client.batch()
        for name, doc_id, fields in chunk:
            batch.set(client.collection(name).document(doc_id), fields)
        batch.commit()
        batches += 1
    return batches


# ------------------------------------------------------------------------------------------------ CLI
def parse_now(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--now needs a UTC offset, e.g. {text}Z or {text}+00:00")
    return instant.astimezone(UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--now", type=parse_now, help="ISO instant with offset (default: the local stack's clock)")
    parser.add_argument("--reset", action="store_true", help="delete every doc of the seeded collections first")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    args = parser.parse_args(argv)

    from shared.platform.emulator import EMULATOR_VARIABLES, on_emulator

    if not on_emulator():
        missing = [name for name in EMULATOR_VARIABLES if not os.environ.get(name, "").strip()]
        print(f"refusing to seed: not on the local emulators ({', '.join(missing)} unset)", file=sys.stderr)
        return 2

    from shared.platform import clients
    from shared.platform.clock import system_clock

    now = args.now or system_clock.now()
    data = build_demo_data(now, args.seed)
    client = clients.firestore()
    if args.reset:
        print(f"reset: deleted {delete_collections(client)} documents from {', '.join(SEEDED_COLLECTIONS)}")
    batches = write_demo_data(client, data)
    print(f"wrote {sum(len(docs) for docs in data.values())} documents in {batches} batch(es)")
    print(summarize(data, now, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
