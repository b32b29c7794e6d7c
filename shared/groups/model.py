"""Group bookings (docs/groups.md): the `groups/{id}` document the booking platform writes, and which
messages each seat of a group gets. Pure, except `read_group(s)`: one (batched) read.

A group is a clinic, an organizer, a start, a status (active | cancelled) and its members' patient ids;
each seat is an appointment carrying `group_id`. The organizer's seat gets a 72 h message, every seat
(the organizer's included) a 24 h reminder, and every seat a "starting soon" message 2 h before its own
start. The offsets are planned by shared.reminders.plan like any reminder (quiet hours, DST, catch-up),
one ledger entry per seat and offset, and each message is rendered from its recipient's own patient and
appointment documents only: nothing of one member ever reaches another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.contract.ids import is_doc_id
from shared.contract.models import Appointment, DocReader
from shared.platform.errors import InvalidDocument
from shared.platform.store import Store

GROUPS = "groups"
GROUP_STATUSES = ("active", "cancelled")
ORGANIZER_HOURS = 72  # the organizer's own message
MEMBER_HOURS = 24  # every seat's reminder
STARTING_SOON_HOURS = 2  # every seat's "starting soon"
ORGANIZER_OFFSETS = (ORGANIZER_HOURS, MEMBER_HOURS, STARTING_SOON_HOURS)
MEMBER_OFFSETS = (MEMBER_HOURS, STARTING_SOON_HOURS)
GROUP_OFFSETS = ORGANIZER_OFFSETS  # every offset a group message may carry
MAX_MEMBERS = 50
# What each offset's message says (shared/messaging/templates.py copy names).
WORDING = {ORGANIZER_HOURS: "group_organizer", MEMBER_HOURS: "group_member", STARTING_SOON_HOURS: "group_soon"}

# Why a seat gets no group messages: the codes of skips, rejected events and fan-out problems.
GROUP_MISSING = "group_missing"
GROUP_INVALID = "group_invalid"
GROUP_WITHOUT_MEMBERS = "group_without_members"
ORGANIZER_NOT_MEMBER = "organizer_not_member"
GROUP_CANCELLED = "group_cancelled"
GROUP_OTHER_CLINIC = "group_other_clinic"
NOT_A_MEMBER = "not_a_member"
LEFT_GROUP = "left_group"
NOT_ORGANIZER = "not_organizer"
_FIELD_CODES = {"member_patient_ids": GROUP_WITHOUT_MEMBERS, "organizer_patient_id": ORGANIZER_NOT_MEMBER}


@dataclass(frozen=True)
class Group:
    id: str
    clinic_id: str
    organizer_patient_id: str
    start: datetime
    status: str
    member_patient_ids: tuple[str, ...]

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    def offsets_for(self, patient_id: str) -> tuple[int, ...]:
        """The offsets (hours before the seat's start) a seat of this patient gets; () when none."""
        if not self.is_active or patient_id not in self.member_patient_ids:
            return ()
        return ORGANIZER_OFFSETS if patient_id == self.organizer_patient_id else MEMBER_OFFSETS

    @classmethod
    def from_doc(cls, doc_id: str, data: Any) -> Group:
        r = DocReader(GROUPS, doc_id, data)
        members = r.raw("member_patient_ids", required=False)
        if not isinstance(members, list) or not members:
            r.fail("member_patient_ids", "must list the members' patient ids")
        if len(members) > MAX_MEMBERS or not all(is_doc_id(m) for m in members):
            r.fail("member_patient_ids", f"must list at most {MAX_MEMBERS} patient ids")
        organizer = r.text("organizer_patient_id")
        if organizer not in members:
            r.fail("organizer_patient_id", "must be one of member_patient_ids")
        return cls(
            id=doc_id,
            clinic_id=r.text("clinic_id"),
            organizer_patient_id=organizer,
            start=r.instant("start"),
            status=r.choice("status", GROUP_STATUSES),
            member_patient_ids=tuple(dict.fromkeys(members)),
        )


Read = Group | str  # a group, or the code of why there is none usable


def parse_group(doc_id: str, data: Any) -> Read:
    """A group document as read: the group, or a code (`group_missing`, `group_without_members`,
    `organizer_not_member`, `group_invalid`)."""
    if data is None:
        return GROUP_MISSING
    try:
        return Group.from_doc(doc_id, data)
    except InvalidDocument as exc:
        return _FIELD_CODES.get(exc.field, GROUP_INVALID)


def read_groups(store: Store, group_ids: Iterable[str]) -> dict[str, Read]:
    """The groups named by these ids, in one batched read."""
    wanted = sorted({g for g in group_ids if is_doc_id(g)})
    docs = store.get_all([f"{GROUPS}/{g}" for g in wanted]) if wanted else {}
    return {g: parse_group(g, doc.data if (doc := docs.get(f"{GROUPS}/{g}")) is not None else None) for g in wanted}


def seat_problem(group: Read | None, appointment: Appointment) -> str | None:
    """Why this seat gets no group messages (a code), or None."""
    if group is None:
        return GROUP_MISSING
    if isinstance(group, str):
        return group
    if group.id != appointment.group_id:
        return LEFT_GROUP
    if group.clinic_id != appointment.clinic_id:
        return GROUP_OTHER_CLINIC
    if appointment.patient_id not in group.member_patient_ids:
        return NOT_A_MEMBER
    if not group.is_active:
        return GROUP_CANCELLED
    return None


def seat_offsets(group: Read | None, appointment: Appointment) -> tuple[int, ...]:
    """The offsets this seat gets now: none when the group is unusable or cancelled."""
    if seat_problem(group, appointment) is not None or not isinstance(group, Group):
        return ()
    return group.offsets_for(appointment.patient_id)


def send_problem(group: Read | None, appointment: Appointment, offset_hours: int | None) -> str | None:
    """At send time: why this seat's message of `offset_hours` must not go out any more, or None."""
    problem = seat_problem(group, appointment)
    if problem is not None:
        return problem
    if offset_hours not in seat_offsets(group, appointment):
        return NOT_ORGANIZER  # the organizer changed since it was planned: only theirs gets the 72 h message
    return None
