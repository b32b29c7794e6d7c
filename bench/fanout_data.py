"""The benchmarks' clinics, patients and appointments: a pure function of (clinics, appointments, now).

Clinics in six zones, 40 patients each (a tenth prefer email, one in fifty opted out of everything);
each clinic's appointments spread over its local tomorrow (at `now`) from 08:00 to 20:00, a tenth
needing prep, every third one booked, the rest confirmed. `large` clinics take a bigger share, so a
model can include clinic-days big enough to be split into shards. Yesterday's fan-out run of every
clinic is recorded (the steady state: no catch-up), unless `first_day`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Sydney",
)
PATIENTS_PER_CLINIC = 40

Doc = tuple[str, str, dict[str, Any]]  # (collection, id, fields)


def clinic_id(index: int) -> str:
    return f"clinic-{index:04d}"


def sizes(clinics: int, appointments: int, large: int = 0, large_share: float = 0.0) -> list[int]:
    """Appointments per clinic: `large` clinics share `large_share` of them, the rest share the remainder."""
    big_total = int(appointments * large_share) if large else 0
    small = clinics - large
    out = []
    for index in range(clinics):
        if index < large:
            share, count, of = big_total, large, index
        else:
            share, count, of = appointments - big_total, small, index - large
        out.append(share // count + (1 if of < share % count else 0))
    return out


def clinic_docs(index: int) -> list[Doc]:
    cid, zone = clinic_id(index), ZONES[index % len(ZONES)]
    docs: list[Doc] = [
        (
            "clinics",
            cid,
            {
                "name": f"Bench Clinic {index}",
                "timezone": zone,
                "phone": "+12125550100",
                "sms_from": "+12125550199",
                "email_from": "reminders@bench.example.com",
                "reminder_offsets_hours": [24, 2],
                "quiet_hours": {"start": "21:00", "end": "08:00"},
            },
        )
    ]
    for p in range(PATIENTS_PER_CLINIC):
        opted_out = p % 50 == 7
        docs.append(
            (
                "patients",
                f"{cid}-p{p:02d}",
                {
                    "clinic_id": cid,
                    "first_name": "Bench",
                    "last_name": f"Patient {p}",
                    "phone": f"+1212555{p:04d}",
                    "email": f"p{p}@bench.example.com",
                    "preferred_channel": "email" if p % 10 == 3 else "sms",
                    "sms_opt_out": opted_out,
                    "email_opt_out": opted_out,
                },
            )
        )
    return docs


def appointment_docs(index: int, count: int, now: datetime) -> Iterator[Doc]:
    from shared.contract.clinic_time import local_day_range, local_tomorrow

    cid, zone = clinic_id(index), ZoneInfo(ZONES[index % len(ZONES)])
    day = local_tomorrow(now, zone)
    first = local_day_range(day, zone)[0] + timedelta(hours=8)
    span = 12 * 60  # minutes from 08:00 to 20:00
    for i in range(count):
        start = first + timedelta(minutes=(i * span // max(1, count)) // 5 * 5)
        yield (
            "appointments",
            f"{cid}-a{i:05d}",
            {
                "clinic_id": cid,
                "patient_id": f"{cid}-p{i % PATIENTS_PER_CLINIC:02d}",
                "provider_id": f"prov-{i % 4}",
                "provider_name": "Bench Provider",
                "service_name": "Botox",
                "requires_prep": i % 10 == 0,
                "prep_instructions": "",
                "start": start,
                "end": start + timedelta(minutes=30),
                "status": "confirmed" if i % 3 else "booked",
                "price_cents": 42000,
                "updated_at": now - timedelta(days=3, minutes=i % 1440),  # booked days ago
            },
        )


def yesterday_run(index: int, now: datetime) -> Doc:
    """fanout_runs for the clinic's local today: yesterday's tick planned it (the steady state)."""
    from shared.contract.clinic_time import local_date

    cid, zone = clinic_id(index), ZoneInfo(ZONES[index % len(ZONES)])
    day = local_date(now, zone)
    return ("fanout_runs", f"{cid}_{day.isoformat()}", {"clinic_id": cid, "date": day.isoformat(), "created": 0})


def recent_writes(count: int, now: datetime, hours: int = 36) -> Iterator[Doc]:
    """Appointments of other days written in the last `hours` (what the contract audit reads): the booking
    app's steady flow, only the fields the audit asks for. Every 997th breaks the contract."""
    for i in range(count):
        at = now - timedelta(seconds=(i * hours * 3600) // max(1, count))
        fields: dict[str, Any] = {
            "clinic_id": clinic_id(i % 1000),
            "start": now + timedelta(days=2 + i % 20),
            "status": "booked",
            "updated_at": at,
        }
        if i % 997 == 0:
            fields["start"] = "tomorrow at ten"  # a string: the clinic's range query cannot see it
        yield ("appointments", f"recent-{i:06d}", fields)


def world(
    clinics: int, appointments: int, now: datetime, *, large: int = 0, large_share: float = 0.0, first_day: bool = False
) -> Iterator[Doc]:
    for index, count in enumerate(sizes(clinics, appointments, large, large_share)):
        yield from clinic_docs(index)
        yield from appointment_docs(index, count, now)
        if not first_day:
            yield yesterday_run(index, now)
