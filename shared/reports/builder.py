"""report_builder's reports service: a tick → for each clinic (or the one named), its period's report
stored in reports/{id}, then one report_email task for the task handler when the clinic has managers.

The period is the clinic's own: its local yesterday, or its last full Monday–Sunday week, as seen at the
tick's time (the CloudEvent's, so a redelivered tick builds the same period), or the period containing
the tick's date. Clinics are built a few at a time; each is a unit of its own. A transient failure is
counted and raised after the rest, so the redelivered event redoes it: a rebuilt report overwrites the
same document, and the email task's name and ledger keys make sure no manager is mailed twice.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contract.clinics import load_clinics, skipped_settings
from shared.contract.events import EventRejected, ReportTick
from shared.contract.models import Clinic
from shared.platform import log
from shared.platform.errors import InvalidDocument
from shared.platform.masking import mask_email
from shared.platform.run_summary import RunSummary
from shared.platform.store import Store
from shared.reports.journeys import PROVIDERS, Provider, journey_figures
from shared.reports.metrics import MetricsReader
from shared.reports.periods import Period, ReportPeriod, last_full_period, period_of
from shared.reports.report_docs import Reports
from shared.reports.tasks import ReportEmailTask
from shared.tasks.queue import TaskQueue, TaskSpec

CLINIC_CONCURRENCY = 4  # clinics built at once: ~35 small queries each, so 1,000 clinics fit one run


@dataclass(frozen=True)
class ReportBuilder:
    store: Store
    tasks: TaskQueue
    queue: str  # the reports queue the email tasks go on
    journeys: Sequence[Provider] = PROVIDERS  # the patient-journey flows' sections (shared/reports/journeys.py)

    def run_tick(self, tick: ReportTick, *, now: datetime) -> RunSummary:
        if tick.date is not None and tick.date > now.date() + timedelta(days=1):
            raise EventRejected(f"report date {tick.date} is in the future", code="date_in_future")
        report = RunSummary(trigger="reports")
        targets = load_clinics(self.store, tick.clinic_id, report)
        kind = Period(tick.period)
        periods = {
            clinic.id: (
                period_of(kind, tick.date, clinic.zone) if tick.date else last_full_period(kind, now, clinic.zone)
            )
            for clinic in targets
        }
        unfinished = [clinic.id for clinic in targets if periods[clinic.id].start < now < periods[clinic.id].end]
        if unfinished and not tick.partial and len(unfinished) == len(targets):
            # Partial figures emailed as if final are worse than none: only an explicit ask builds them.
            raise EventRejected(
                f'the {kind.value} period of {tick.date} has not ended yet; send "partial": true to build it anyway',
                code="period_not_ended",
            )

        def one(clinic: Clinic) -> RunSummary:
            return self.build(clinic, periods[clinic.id], now=now, partial=tick.partial)

        with ThreadPoolExecutor(max_workers=CLINIC_CONCURRENCY) as pool:
            # Each clinic runs in a copy of this context, so its log lines keep the event's id.
            for future in [pool.submit(contextvars.copy_context().run, one, clinic) for clinic in targets]:
                report.merge(future.result())
        report.counts["clinics"] = len(targets)
        return report

    def build(
        self, clinic: Clinic, period: ReportPeriod, *, now: datetime, email: bool = True, partial: bool = False
    ) -> RunSummary:
        """One clinic's report: computed, stored (overwriting), and its email task queued when it has managers.
        A period that has not ended is refused unless `partial`: then the doc and the email say so."""
        report = RunSummary(trigger="reports")
        if period.start >= now:
            report.problems["period_not_started"] += 1
            return report
        unfinished = now < period.end
        if unfinished and not partial:
            report.problems["period_not_ended"] += 1
            log.warning(
                'report period has not ended; refused (a tick with "partial": true builds it anyway)',
                clinic_id=clinic.id,
                period=period.kind.value,
                start_date=period.start_date,
                error_code="period_not_ended",
            )
            return report
        try:
            with log.bound(clinic_id=clinic.id, period=period.kind.value, start_date=period.start_date):
                metrics = MetricsReader(self.store).build(clinic.id, period)
                journeys = journey_figures(self.store, clinic.id, period, self.journeys)
                recipients = [mask_email(address) for address in clinic.manager_emails] if email else []
                skipped_settings(clinic, "currency", report, code="invalid_setting")
                doc_id = Reports(self.store).save(
                    clinic.id,
                    period,
                    metrics,
                    generated_at=now,
                    emailed_to=recipients,
                    currency=clinic.currency,
                    locale=clinic.locale,
                    partial=unfinished,
                    journeys=journeys,
                )
                report.counts["reports"] += 1
                report.counts["empty_reports"] += metrics.empty
                report.ids.append(doc_id)
                if not email:
                    return report
                skipped = skipped_settings(clinic, "manager_emails", report)
                if not clinic.manager_emails and not skipped:
                    report.counts["no_managers"] += 1
                    return report
                task = ReportEmailTask(
                    clinic_id=clinic.id,
                    period=period.kind.value,
                    date=period.start_date,
                    as_of=now if unfinished else None,
                )
                spec = TaskSpec(queue=self.queue, business_key=task.failure_key, payload=task.to_json())
                report.counts["emails_queued" if self.tasks.create(spec) else "emails_already_queued"] += 1
        except InvalidDocument as exc:
            report.invalid_document(exc)
        except Exception as exc:  # noqa: BLE001 - counted, logged, raised after the other clinics
            log.exception("report failed; the redelivered tick redoes it", exc, clinic_id=clinic.id)
            report.fail(f"{clinic.id}: {type(exc).__name__}")
        return report
