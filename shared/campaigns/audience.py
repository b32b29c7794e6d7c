"""Who a campaign reaches: one page at a time of the clinic's patients (by id), filtered and checked.

A patient is in the audience when they match the campaign's filter (a tag, a service taken, a completed
visit within N days: each only when the campaign sets it) and may get a marketing SMS: an explicit
marketing consent for SMS, not opted out, a number to text. Everyone else is counted by reason, never
listed: the report says how many were excluded and why.

Round trips per page: one query of patients; when the filter names services or a last visit, one query
of appointments per 30 patients; one batched read of their consents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.campaigns.model import Audience
from shared.consent.consents import Consents
from shared.contract.models import APPOINTMENTS, PATIENTS, Patient
from shared.platform import log
from shared.platform.errors import InvalidDocument
from shared.platform.store import DOC_ID, Doc, Store

PAGE_SIZE = 200
IN_LIMIT = 30  # Firestore's `in` takes at most 30 values


class Excluded:
    """Why a patient of the clinic is not messaged."""

    NOT_IN_FILTER = "not_in_filter"  # the tags, services or last visit do not match
    SMS_OPT_OUT = "sms_opt_out"
    NO_PHONE = "no_phone"
    NO_MARKETING_CONSENT = "no_marketing_consent"
    INVALID_PATIENT = "invalid_patient"  # the patient's document breaks the contract


@dataclass(frozen=True)
class Recipient:
    patient_id: str
    phone: str
    first_name: str
    basis: str  # "consent:<event_id>"


@dataclass
class Page:
    recipients: list[Recipient] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)
    after: str = ""  # the last patient id read: the next page's cursor
    last: bool = True  # no patient after this page


def _visits(store: Store, patient_ids: Sequence[str]) -> dict[str, list[tuple[str, datetime]]]:
    """Each patient's completed appointments, (service, start)."""
    visits: dict[str, list[tuple[str, datetime]]] = {}
    for at in range(0, len(patient_ids), IN_LIMIT):
        for doc in store.query(
            APPOINTMENTS,
            where=[("patient_id", "in", list(patient_ids[at : at + IN_LIMIT]))],
            fields=["patient_id", "service_name", "start", "status"],
        ):
            start = doc.get("start")
            if doc.get("status") == "completed" and isinstance(start, datetime):
                visits.setdefault(str(doc.get("patient_id")), []).append((str(doc.get("service_name", "")), start))
    return visits


def _matches(audience: Audience, tags: Any, visits: list[tuple[str, datetime]], now: datetime) -> bool:
    if audience.tags and not (isinstance(tags, list) and set(audience.tags) & {t for t in tags if isinstance(t, str)}):
        return False
    if audience.services and not any(service in audience.services for service, _ in visits):
        return False
    if audience.last_visit_within_days is not None:
        since = now - timedelta(days=audience.last_visit_within_days)
        return any(since <= start <= now for _, start in visits)
    return True


class Audiences:
    def __init__(self, store: Store, consents: Consents) -> None:
        self.store, self.consents = store, consents

    def page(
        self, clinic_id: str, audience: Audience, now: datetime, *, after: str = "", limit: int = PAGE_SIZE
    ) -> Page:
        """The recipients among the clinic's next `limit` patients after id `after`."""
        where: list[Any] = [("clinic_id", "==", clinic_id)]
        if after:
            where.append((DOC_ID, ">", after))
        docs: list[Doc] = list(self.store.query(PATIENTS, where=where, order_by=[(DOC_ID, "asc")], limit=limit))
        page = Page(after=docs[-1].id if docs else after, last=len(docs) < limit)
        needs_visits = bool(audience.services) or audience.last_visit_within_days is not None
        visits = _visits(self.store, [doc.id for doc in docs]) if needs_visits and docs else {}
        candidates: list[Patient] = []
        for doc in docs:
            try:
                patient = Patient.from_doc(doc.id, doc.data)
            except InvalidDocument as broken:
                log.warning("patient breaks the contract; not messaged", **broken.where())
                page.excluded[Excluded.INVALID_PATIENT] += 1
                continue
            if not _matches(audience, doc.get("tags"), visits.get(doc.id, []), now):
                page.excluded[Excluded.NOT_IN_FILTER] += 1
            elif patient.sms_opt_out:
                page.excluded[Excluded.SMS_OPT_OUT] += 1
            elif not patient.has_sms_number:
                page.excluded[Excluded.NO_PHONE] += 1
            else:
                candidates.append(patient)
        states = self.consents.current_many([patient.id for patient in candidates]) if candidates else {}
        for patient in candidates:
            basis = states[patient.id].marketing_basis("sms")
            if basis is None or patient.phone is None:
                page.excluded[Excluded.NO_MARKETING_CONSENT] += 1
                continue
            page.recipients.append(Recipient(patient.id, patient.phone, patient.first_name, basis))
        return page

    def count(self, clinic_id: str, audience: Audience, now: datetime) -> tuple[int, Counter[str]]:
        """How many the campaign would reach now, and how many are excluded by reason (every page)."""
        total, excluded, after = 0, Counter[str](), ""
        while True:
            page = self.page(clinic_id, audience, now, after=after)
            total += len(page.recipients)
            excluded.update(page.excluded)
            if page.last:
                return total, excluded
            after = page.after
