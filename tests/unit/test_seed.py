"""The demo seed: contract-shaped, deterministic, per-clinic local time, every case the demo needs."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from local import seed
from local.seed import INVALID_PHONE, build_demo_data, local_to_utc, local_tomorrow, summarize

UTC = timezone.utc
NOW = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # eve of New York's fall-back day
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@pytest.fixture(scope="module")
def data():
    return build_demo_data(NOW, seed=7)


def by_clinic(docs: dict[str, dict], clinic_id: str) -> dict[str, dict]:
    return {doc_id: doc for doc_id, doc in docs.items() if doc["clinic_id"] == clinic_id}


def tomorrows(data, clinic_id: str, now: datetime = NOW) -> list[dict]:
    zone = ZoneInfo(data["clinics"][clinic_id]["timezone"])
    day = local_tomorrow(now, zone)
    return [a for a in by_clinic(data["appointments"], clinic_id).values() if a["start"].astimezone(zone).date() == day]


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_and_now_give_identical_data(data):
    assert build_demo_data(NOW, seed=7) == data


def test_another_seed_gives_other_data(data):
    assert build_demo_data(NOW, seed=8) != data


def test_ids_depend_on_the_seed_only_so_a_rerun_overwrites(data):
    later = build_demo_data(NOW + timedelta(days=3, hours=5), seed=7)
    for name in seed.SEEDED_COLLECTIONS:
        assert set(later[name]) == set(data[name]), name


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        build_demo_data(datetime(2026, 10, 31, 15, 0))


def test_cli_now_needs_an_offset():
    assert seed.parse_now("2026-10-31T15:00:00Z") == NOW
    assert seed.parse_now("2026-10-31T11:00:00-04:00") == NOW
    with pytest.raises(Exception, match="offset"):
        seed.parse_now("2026-10-31T15:00:00")


# ------------------------------------------------------------------------------------------ contract
def test_every_seeded_doc_parses_with_the_contract_models(data):
    from shared.contract.models import Appointment, Clinic, Patient, Product, WaitlistEntry

    parsers = {
        "clinics": Clinic.from_doc,
        "patients": Patient.from_doc,
        "appointments": Appointment.from_doc,
        "waitlist": WaitlistEntry.from_doc,
        "products": Product.from_doc,
    }
    for name, parse in parsers.items():
        assert data[name], name
        for doc_id, fields in data[name].items():
            parse(doc_id, fields)  # raises InvalidDocument naming the field


CONTRACT_FIELDS = {
    "clinics": {
        "name",
        "timezone",
        "phone",
        "sms_from",
        "email_from",
        "manager_emails",
        "inventory_emails",
        "locale",
        "reminder_offsets_hours",
        "quiet_hours",
        "waitlist",
    },
    "patients": {
        "clinic_id",
        "first_name",
        "last_name",
        "phone",
        "email",
        "locale",
        "preferred_channel",
        "sms_opt_out",
        "email_opt_out",
    },
    "appointments": {
        "clinic_id",
        "patient_id",
        "provider_id",
        "provider_name",
        "service_name",
        "requires_prep",
        "prep_instructions",
        "start",
        "end",
        "status",
        "price_cents",
        "created_at",
        "updated_at",
    },
    "waitlist": {
        "clinic_id",
        "patient_id",
        "service_name",
        "provider_id",
        "earliest",
        "latest",
        "status",
        "created_at",
    },
}


CONTRACT_FIELDS["products"] = {
    "clinic_id",
    "name",
    "sku",
    "unit",
    "on_hand",
    "reorder_point",
    "reorder_qty",
    "active",
}


def test_fields_are_exactly_the_contracts(data):
    for name, fields in CONTRACT_FIELDS.items():
        for doc_id, doc in data[name].items():
            assert set(doc) == fields, doc_id


def test_clinic_fields(data):
    clinics = data["clinics"]
    assert len(clinics) >= 4
    zones = {c["timezone"] for c in clinics.values()}
    assert {"America/New_York", "Europe/London", "Asia/Kolkata"} <= zones
    assert zones & {"Australia/Lord_Howe", "America/Los_Angeles"}
    for doc_id, clinic in clinics.items():
        assert doc_id.startswith("clinic-")
        assert E164.match(clinic["phone"]), doc_id
        assert E164.match(clinic["sms_from"]) or re.fullmatch(r"MG[0-9a-f]{32}", clinic["sms_from"]), doc_id
        assert clinic["manager_emails"] and all("@" in m for m in clinic["manager_emails"])
        assert set(clinic["quiet_hours"]) == {"start", "end"}
        assert set(clinic["waitlist"]) == {
            "mode",
            "wave_size",
            "offer_ttl_minutes",
            "max_offers_per_day",
            "min_lead_minutes",
        }
        assert clinic["waitlist"]["mode"] in ("broadcast", "sequential")
        ZoneInfo(clinic["timezone"])
    values = list(clinics.values())
    assert any(c["sms_from"].startswith("MG") for c in values)
    assert any(c["locale"] == "es" for c in values)
    assert any(c["reminder_offsets_hours"] == [48, 24, 2] for c in values)
    assert any(c["reminder_offsets_hours"] == [24, 2] for c in values)
    assert any(c["quiet_hours"] == {"start": "21:00", "end": "08:00"} for c in values)
    assert any(c["quiet_hours"] != {"start": "21:00", "end": "08:00"} for c in values)
    assert {c["waitlist"]["mode"] for c in values} == {"broadcast", "sequential"}


def test_us_numbers_are_fictional_and_emails_are_example_domains(data):
    for doc_id, patient in data["patients"].items():
        phone = patient["phone"]
        if phone and phone.startswith("+1") and phone != INVALID_PHONE:
            assert re.fullmatch(r"\+1\d{3}55501\d{2}", phone), doc_id
        if patient["email"]:
            assert patient["email"].endswith(("@example.com", "@example.org")), doc_id
    for clinic in data["clinics"].values():
        if clinic["phone"].startswith("+1"):
            assert re.fullmatch(r"\+1\d{3}55501\d{2}", clinic["phone"])
    emails = [p["email"] for p in data["patients"].values() if p["email"]]
    assert len(emails) == len(set(emails))


def test_timestamps_are_aware_utc_and_ordered(data):
    for doc_id, appt in data["appointments"].items():
        for key in ("start", "end", "created_at", "updated_at"):
            assert appt[key].utcoffset() == timedelta(0), (doc_id, key)
        assert appt["start"] < appt["end"], doc_id
        assert appt["created_at"] <= appt["updated_at"] <= NOW, doc_id
        assert appt["created_at"] <= appt["start"], doc_id
        assert isinstance(appt["price_cents"], int) and appt["price_cents"] > 0
    for doc_id, entry in data["waitlist"].items():
        for key in ("earliest", "latest", "created_at"):
            assert entry[key].utcoffset() == timedelta(0), (doc_id, key)
        assert entry["created_at"] <= NOW < entry["latest"]
        assert entry["earliest"] < entry["latest"]


def test_references_resolve_within_the_clinic(data):
    patients, clinics = data["patients"], data["clinics"]
    for doc_id, patient in patients.items():
        assert patient["clinic_id"] in clinics, doc_id
    for name in ("appointments", "waitlist"):
        for doc_id, doc in data[name].items():
            assert doc["clinic_id"] in clinics, doc_id
            assert patients[doc["patient_id"]]["clinic_id"] == doc["clinic_id"], doc_id
            if doc["provider_id"] is not None:
                assert doc["provider_id"].startswith(doc["clinic_id"].replace("clinic-", "prov-")), doc_id


def test_a_provider_is_never_double_booked(data):
    by_provider: dict[str, list[tuple[datetime, datetime]]] = {}
    for appt in data["appointments"].values():
        if appt["status"] != "cancelled":
            by_provider.setdefault(appt["provider_id"], []).append((appt["start"], appt["end"]))
    for provider, slots in by_provider.items():
        slots.sort()
        for (_, end), (next_start, _) in zip(slots, slots[1:], strict=False):
            assert end <= next_start, provider


def test_prep_instructions_only_with_requires_prep(data):
    appts = list(data["appointments"].values())
    assert any(a["requires_prep"] for a in appts) and not all(a["requires_prep"] for a in appts)
    for appt in appts:
        assert bool(appt["prep_instructions"]) == appt["requires_prep"]
    assert any(a["prep_instructions"] == "Avoid retinoids for 3 days before your peel." for a in appts)
    spanish = {pid for pid, p in data["patients"].items() if p["locale"] == "es"}
    assert any(a["requires_prep"] and a["patient_id"] in spanish and "Evite" in a["prep_instructions"] for a in appts)


# ------------------------------------------------------------------------------------------ appointments
def test_every_clinic_has_appointments_on_its_local_tomorrow(data):
    for clinic_id, clinic in data["clinics"].items():
        zone = ZoneInfo(clinic["timezone"])
        appts = tomorrows(data, clinic_id)
        active = [a for a in appts if a["status"] in ("booked", "confirmed")]
        assert len(active) >= 5, clinic_id
        local_starts = sorted(a["start"].astimezone(zone).time() for a in active)
        # an early one whose 2 h reminder falls before the quiet hours end, and a late one
        quiet_end = datetime.strptime(clinic["quiet_hours"]["end"], "%H:%M").time()
        early = datetime.combine(date(2000, 1, 1), local_starts[0]) - timedelta(hours=2)
        assert early.time() < quiet_end, clinic_id
        assert local_starts[-1].hour >= 20, clinic_id
        assert any(a["status"] == "cancelled" for a in appts), clinic_id
        assert any(a["requires_prep"] for a in active), clinic_id


def test_every_status_appears_in_every_clinic(data):
    for clinic_id in data["clinics"]:
        statuses = Counter(a["status"] for a in by_clinic(data["appointments"], clinic_id).values())
        assert set(statuses) == {"booked", "confirmed", "cancelled", "completed", "no_show"}, clinic_id


def test_statuses_agree_with_the_clock(data):
    for doc_id, appt in data["appointments"].items():
        if appt["status"] in ("completed", "no_show"):
            assert appt["end"] <= NOW, doc_id
        if appt["status"] in ("booked", "confirmed"):
            assert appt["end"] > NOW, doc_id


def test_completed_appointments_seven_days_ago_for_followups(data):
    for clinic_id, clinic in data["clinics"].items():
        zone = ZoneInfo(clinic["timezone"])
        week_ago = NOW.astimezone(zone).date() - timedelta(days=7)
        done = [
            a
            for a in by_clinic(data["appointments"], clinic_id).values()
            if a["status"] == "completed" and a["start"].astimezone(zone).date() == week_ago
        ]
        assert len(done) >= 2, clinic_id


def test_appointments_span_the_coming_three_weeks(data):
    for clinic_id, clinic in data["clinics"].items():
        zone = ZoneInfo(clinic["timezone"])
        today = NOW.astimezone(zone).date()
        days = {
            (a["start"].astimezone(zone).date() - today).days
            for a in by_clinic(data["appointments"], clinic_id).values()
        }
        assert min(days) == -7 and max(days) == 21, clinic_id
        assert len([d for d in days if d > 1]) >= 15, clinic_id


def test_appointment_times_are_the_clinics_wall_clock_across_dst(data):
    # New York falls back on 2026-11-01: tomorrow's 07:30 is EST (UTC-5), last week's 09:00 was EDT.
    assert data["appointments"]["appt-nyc-p01-01"]["start"] == datetime(2026, 11, 1, 12, 30, tzinfo=UTC)
    assert data["appointments"]["appt-nyc-m07-01"]["start"] == datetime(2026, 10, 24, 13, 0, tzinfo=UTC)
    nyc = ZoneInfo("America/New_York")
    offsets = {a["start"].astimezone(nyc).utcoffset() for a in by_clinic(data["appointments"], "clinic-nyc").values()}
    assert offsets == {timedelta(hours=-4), timedelta(hours=-5)}
    # Kolkata is UTC+5:30: local 07:30 is 02:00 UTC.
    mum = data["appointments"]["appt-mum-p01-01"]["start"]
    assert mum == datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    for appt in data["appointments"].values():
        zone = ZoneInfo(data["clinics"][appt["clinic_id"]]["timezone"])
        assert appt["start"].astimezone(zone).minute in (0, 30)


def test_local_tomorrow_is_computed_per_clinic_zone():
    now = datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # 09:00 Mar 7 in New York, 01:00 Mar 8 on Lord Howe
    data = build_demo_data(now, seed=7)
    expected = {
        "clinic-nyc": date(2026, 3, 8),  # the spring-forward day: 23 hours long
        "clinic-lon": date(2026, 3, 8),
        "clinic-mum": date(2026, 3, 8),
        "clinic-la": date(2026, 3, 8),
        "clinic-lhi": date(2026, 3, 9),
    }
    for clinic_id, day in expected.items():
        zone = ZoneInfo(data["clinics"][clinic_id]["timezone"])
        assert local_tomorrow(now, zone) == day
        assert {a["start"].astimezone(zone).date() for a in tomorrows(data, clinic_id, now)} == {day}
        assert len(tomorrows(data, clinic_id, now)) == len(seed.TOMORROW_SLOTS)
    # 07:30 on the spring-forward day is EDT (UTC-4)
    assert data["appointments"]["appt-nyc-p01-01"]["start"] == datetime(2026, 3, 8, 11, 30, tzinfo=UTC)
    # Lord Howe is UTC+11 in March (daylight time, +30 min): 07:30 → 20:30 UTC the day before
    assert data["appointments"]["appt-lhi-p01-01"]["start"] == datetime(2026, 3, 8, 20, 30, tzinfo=UTC)


def test_local_to_utc_refuses_a_wall_time_in_the_dst_gap():
    with pytest.raises(ValueError, match="DST gap"):
        local_to_utc(date(2026, 3, 8), "02:30", ZoneInfo("America/New_York"))
    # Lord Howe springs forward by 30 minutes: 02:00–02:30 does not exist, 02:45 is UTC+11.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    with pytest.raises(ValueError, match="DST gap"):
        local_to_utc(date(2026, 10, 4), "02:15", lord_howe)
    assert local_to_utc(date(2026, 10, 4), "02:45", lord_howe) == datetime(2026, 10, 3, 15, 45, tzinfo=UTC)
    assert local_to_utc(date(2026, 10, 4), "01:45", lord_howe) == datetime(2026, 10, 3, 15, 15, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ patients
def test_about_twelve_patients_per_clinic(data):
    for clinic_id in data["clinics"]:
        assert 10 <= len(by_clinic(data["patients"], clinic_id)) <= 15


def test_every_clinic_has_each_hard_to_reach_patient(data):
    for clinic_id in data["clinics"]:
        patients = list(by_clinic(data["patients"], clinic_id).values())
        assert any(p["sms_opt_out"] and not p["email_opt_out"] and p["email"] for p in patients), clinic_id
        assert any(p["phone"] is None and p["email"] and p["preferred_channel"] == "email" for p in patients)
        assert any(p["sms_opt_out"] and p["email_opt_out"] for p in patients), clinic_id
        assert any(p["phone"] == INVALID_PHONE for p in patients), clinic_id
        assert any(p["email"] is None and p["phone"] for p in patients), clinic_id
        assert any(p["email_opt_out"] and not p["sms_opt_out"] for p in patients), clinic_id
        assert any(
            p["preferred_channel"] == "sms" and not p["sms_opt_out"] and p["phone"] and p["phone"] != INVALID_PHONE
            for p in patients
        ), clinic_id
        for p in patients:
            assert p["phone"] is None or E164.match(p["phone"])


def test_spanish_speaking_patients_exist(data):
    spanish = [p for p in data["patients"].values() if p["locale"] == "es"]
    assert {p["clinic_id"] for p in spanish} >= {"clinic-nyc", "clinic-la"}
    assert all(p["locale"] in ("en", "es") for p in data["patients"].values())


def test_the_hard_cases_have_appointments_tomorrow(data):
    for clinic_id in data["clinics"]:
        patients = data["patients"]
        booked = [patients[a["patient_id"]] for a in tomorrows(data, clinic_id) if a["status"] != "cancelled"]
        assert any(p["phone"] == INVALID_PHONE for p in booked), clinic_id
        assert any(p["phone"] is None for p in booked), clinic_id
        assert any(p["sms_opt_out"] and p["email_opt_out"] for p in booked), clinic_id
        assert any(p["sms_opt_out"] and not p["email_opt_out"] for p in booked), clinic_id


def test_waitlist_entries(data):
    for clinic_id in data["clinics"]:
        entries = list(by_clinic(data["waitlist"], clinic_id).values())
        assert len(entries) >= 2
        assert any(e["provider_id"] is None for e in entries)
        assert any(e["status"] == "waiting" for e in entries)
    statuses = Counter(e["status"] for e in data["waitlist"].values())
    assert statuses["waiting"] > len(data["waitlist"]) / 2


def test_tomorrows_cancelled_slot_can_be_filled_from_the_waitlist(data):
    from shared.contract.models import Appointment, Clinic, Patient, WaitlistEntry
    from shared.messaging.channels import SMS, recipients

    for clinic_id, clinic_doc in data["clinics"].items():
        code = clinic_id.removeprefix("clinic-")
        slot = Appointment.from_doc(seed.waitlist_slot_id(code), data["appointments"][seed.waitlist_slot_id(code)])
        clinic = Clinic.from_doc(clinic_id, clinic_doc)
        assert slot.status == "cancelled" and slot.start.astimezone(clinic.zone).date() == local_tomorrow(
            NOW, clinic.zone
        )
        fitting = []
        for entry_id, doc in by_clinic(data["waitlist"], clinic_id).items():
            entry = WaitlistEntry.from_doc(entry_id, doc)
            patient = Patient.from_doc(entry.patient_id, data["patients"][entry.patient_id])
            busy = [
                a
                for a in data["appointments"].values()
                if a["patient_id"] == patient.id
                and a["status"] in ("booked", "confirmed")
                and a["start"] < slot.end
                and slot.start < a["end"]
            ]
            if (
                entry.status == "waiting"
                and entry.service_name == slot.service_name
                and entry.provider_id in (None, slot.provider_id)
                and entry.earliest <= slot.start
                and slot.end <= entry.latest
                and SMS in [r.channel for r in recipients(patient, clinic)]
                and patient.id != slot.patient_id
                and not busy
            ):
                fitting.append(entry_id)
        assert len(fitting) >= seed.WAITLIST_FILLS, clinic_id


# ------------------------------------------------------------------------------------------ summary and CLI
def test_summary_has_counts_and_dates_but_no_phi(data):
    text = summarize(data, NOW, 7)
    assert f"appointments   {len(data['appointments'])}" in text
    assert "clinic-lhi" in text and "2026-11-02" in text and "(25 h)" in text
    for patient in data["patients"].values():
        for key in ("first_name", "last_name", "phone", "email"):
            if patient[key]:
                assert patient[key] not in text, key


class FakeBatch:
    def __init__(self, store: FakeClient) -> None:
        self.store = store
        self.ops: list[tuple[str, tuple[str, str], dict]] = []  # (set or delete, (collection, id), fields)

    def set(self, ref, fields):
        self.ops.append(("set", ref, fields))

    def delete(self, ref):
        self.ops.append(("delete", ref, {}))

    def commit(self):
        assert len(self.ops) <= seed.MAX_BATCH_WRITES
        self.store.batch_sizes.append(len(self.ops))
        for op, (name, doc_id), fields in self.ops:
            if op == "set":
                self.store.docs.setdefault(name, {})[doc_id] = fields
            else:
                self.store.docs.get(name, {}).pop(doc_id, None)


class FakeSnapshot:
    def __init__(self, reference) -> None:
        self.reference = reference


class FakeCollection:
    def __init__(self, store: FakeClient, name: str) -> None:
        self.store, self.name = store, name

    def document(self, doc_id):
        return (self.name, doc_id)

    def stream(self):
        return iter([FakeSnapshot((self.name, d)) for d in list(self.store.docs.get(self.name, {}))])


class FakeClient:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, dict]] = {}
        self.batch_sizes: list[int] = []

    def batch(self):
        return FakeBatch(self)

    def collection(self, name):
        return FakeCollection(self, name)


def test_writes_overwrite_in_batches_of_at_most_500(data, monkeypatch):
    assert seed.MAX_BATCH_WRITES == 500
    client = FakeClient()
    total = sum(len(docs) for docs in data.values())
    seed.write_demo_data(client, data)
    assert all(size <= 500 for size in client.batch_sizes) and sum(client.batch_sizes) == total
    monkeypatch.setattr(seed, "MAX_BATCH_WRITES", 100)  # exercise the chunking
    client.batch_sizes.clear()
    assert seed.write_demo_data(client, data) == -(-total // 100)
    assert client.docs == data
    assert max(client.batch_sizes) == 100 and sum(client.batch_sizes) == total


def test_reset_deletes_every_doc_of_the_seeded_collections_only(data, monkeypatch):
    client = FakeClient()
    seed.write_demo_data(client, data)
    client.docs["appointments"]["appt-booked-by-the-app"] = {"status": "booked"}
    client.docs["notifications"] = {"n1": {"state": "sent"}}
    monkeypatch.setattr(seed, "MAX_BATCH_WRITES", 100)
    deleted = seed.delete_collections(client)
    assert deleted == sum(len(docs) for docs in data.values()) + 1
    assert all(not client.docs[name] for name in seed.SEEDED_COLLECTIONS)
    assert client.docs["notifications"] == {"n1": {"state": "sent"}}


def test_main_refuses_outside_the_emulators(monkeypatch, capsys):
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("CLOUD_TASKS_EMULATOR_HOST", raising=False)
    monkeypatch.setattr("shared.platform.clients.firestore", lambda: pytest.fail("must not connect"))
    assert seed.main(["--reset", "--now", "2026-10-31T15:00:00Z"]) == 2
    assert "FIRESTORE_EMULATOR_HOST" in capsys.readouterr().err


def test_main_writes_and_prints_the_summary(monkeypatch, capsys, data):
    client = FakeClient()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.setenv("CLOUD_TASKS_EMULATOR_HOST", "127.0.0.1:2")
    monkeypatch.setattr("shared.platform.clients.firestore", lambda: client)
    assert seed.main(["--reset", "--now", "2026-10-31T15:00:00Z", "--seed", "7"]) == 0
    assert client.docs == data
    out = capsys.readouterr().out
    assert "reset: deleted 0 documents" in out and "clinic-nyc" in out


def test_every_clinic_has_products_below_at_and_above_the_reorder_point_and_an_inventory_contact(data):
    from shared.contract.models import Product

    for clinic_id, clinic in data["clinics"].items():
        assert clinic["inventory_emails"] and all(
            e.endswith(".example.com") or ".example." in e for e in clinic["inventory_emails"]
        )
        products = [Product.from_doc(i, p) for i, p in by_clinic(data["products"], clinic_id).items()]
        active = [p for p in products if p.active]
        assert any(p.on_hand < p.reorder_point for p in active), clinic_id
        assert any(p.on_hand == p.reorder_point for p in active), clinic_id
        assert any(p.on_hand > p.reorder_point for p in active), clinic_id
        assert any(not p.active and p.on_hand <= p.reorder_point for p in products), clinic_id
        assert sum(p.needs_reorder for p in products) == 2, clinic_id
