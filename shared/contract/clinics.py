"""The clinics a run works on, read one way by every run (reports, inventory, the reminders fan-out): the
clinic named (unknown → rejected) or every clinic whose document keeps the contract, the others counted
and logged in the run's summary; and the clinic settings a run skips rather than refuses."""

from __future__ import annotations

from shared.contract.events import EventRejected
from shared.contract.models import CLINICS, Clinic
from shared.platform import log
from shared.platform.errors import InvalidDocument
from shared.platform.run_summary import RunSummary
from shared.platform.store import Store


def named_clinic(store: Store, clinic_id: str) -> Clinic:
    """The clinic an event or a task names: unknown → EventRejected, breaking the contract → InvalidDocument."""
    doc = store.get(f"{CLINICS}/{clinic_id}")
    if doc is None:
        raise EventRejected(f"clinic {clinic_id} does not exist", code="unknown_clinic")
    return Clinic.from_doc(doc.id, doc.data)


def load_clinics(store: Store, clinic_id: str | None, summary: RunSummary) -> list[Clinic]:
    """The one clinic asked for (named_clinic), or every valid clinic (invalid ones counted in `summary`)."""
    if clinic_id is not None:
        return [named_clinic(store, clinic_id)]
    found = []
    for doc in store.query(CLINICS):
        try:
            found.append(Clinic.from_doc(doc.id, doc.data))
        except InvalidDocument as exc:
            summary.invalid_document(exc)
    return found


def skipped_settings(clinic: Clinic, name: str, summary: RunSummary, *, code: str = "invalid_recipient") -> int:
    """A clinic setting skipped rather than refused (a bad staff address, the currency): logged masked and
    counted in `summary`; a skipped address is also recorded in failed_tasks by the email task."""
    skipped = clinic.problems_of(name)
    for problem in skipped:
        log.warning(
            "clinic setting skipped; the rest of the clinic goes on",
            clinic_id=clinic.id,
            field=problem.field,
            problem=problem.problem,
            error_code=code,
        )
    if skipped:
        summary.problems[code] += len(skipped)
    return len(skipped)
