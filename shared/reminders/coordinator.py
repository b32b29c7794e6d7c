"""The reminders tick: its units, enqueued for the cloud (`coordinate_tick`) or run in this process
(`run_tick`: `python -m ops replay-tick` and the tests), both by shared.reminders.fanout.run_unit.

The units are one `ClinicDayTask` per clinic (its local tomorrow, or the tick's date) and, for a tick of
every clinic, `AUDIT_SLICES` `AuditTask`s covering the contract audit's lookback. The cloud's coordinator
makes O(clinics) reads (one query of the clinics) and as many named CreateTask calls, with bounded
concurrency, so it finishes in seconds whatever the day holds. The reminder-fanout-unit function runs
each unit in its own invocation; Cloud Tasks spreads them over instances, retries a unit that failed
(its messages' writes are idempotent: a redelivered unit fills exactly the gap) and records the last
failure in failed_tasks through the unit function's router.

Unit task names come from the clinic, the day and the tick's instant, so a redelivered tick enqueues
nothing new (AlreadyExists), while an operator's later replay (another instant) plans the day again.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from shared.contract.clinic_time import local_tomorrow
from shared.contract.clinics import load_clinics
from shared.contract.events import TickRequest
from shared.contract.models import Clinic
from shared.platform.errors import ConfigError
from shared.reminders.fanout import AUDIT_LOOKBACK, Fanout, check_tick_date, enqueue_units, run_unit
from shared.reminders.fanout_summary import FanoutSummary
from shared.reminders.units import AuditTask, ClinicDayTask

AUDIT_SLICES = 12  # the lookback's audit runs as this many units (3 h of writes each), in parallel


def audit_slices(now: datetime) -> list[AuditTask]:
    """The contract audit of the writes in [now - AUDIT_LOOKBACK, now), cut into AUDIT_SLICES equal slices."""
    step = AUDIT_LOOKBACK / AUDIT_SLICES
    since = now - AUDIT_LOOKBACK
    return [AuditTask(since + step * i, since + step * (i + 1)) for i in range(AUDIT_SLICES)]


def tick_units(request: TickRequest, clinics: list[Clinic], now: datetime) -> list[ClinicDayTask | AuditTask]:
    """The tick's units: each clinic's day, and the audit's slices when the tick is every clinic's."""
    units: list[ClinicDayTask | AuditTask] = [
        ClinicDayTask(clinic.id, request.date or local_tomorrow(now, clinic.zone), now) for clinic in clinics
    ]
    if request.clinic_id is None:
        units += audit_slices(now)
    return units


def coordinate_tick(request: TickRequest, fanout: Fanout, *, now: datetime) -> FanoutSummary:
    """Enqueue every unit of the tick; the summary counts units (created, already there, failed)."""
    if fanout.units is None:
        raise ConfigError("the coordinator needs a unit queue (Fanout.units)", code="no_unit_queue")
    check_tick_date(request.date, now)
    report = FanoutSummary(trigger="tick")
    clinics = load_clinics(fanout.store, request.clinic_id, report)
    enqueue_units(fanout.units, tick_units(request, clinics, now), report)
    report.clinics = len(clinics)
    return report


def run_tick(request: TickRequest, fanout: Fanout, *, now: datetime) -> FanoutSummary:
    """Every unit of the tick run here, one after another, as the unit function runs each; in one process a
    large day is planned whole rather than split (nothing is enqueued as a unit)."""
    check_tick_date(request.date, now)
    report = FanoutSummary(trigger="tick")
    clinics = load_clinics(fanout.store, request.clinic_id, report)
    here = dataclasses.replace(fanout, units=None)
    for unit in tick_units(request, clinics, now):
        report.merge(run_unit(unit, here))
    report.clinics = len(clinics)
    return report
