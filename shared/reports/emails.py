"""Sending a stored report to a clinic's managers, and the reorder alert to its inventory contacts.

The task handler's service behind report_email and inventory_alert. Each recipient is one message with
its own ledger key (clinic + period + date + recipient, shared.reports.tasks), sent through
shared.messaging.sender like every other message: a re-run, a redelivered task or a retry after a
partial failure sends nothing twice. The email is rendered from the stored document, so every attempt
sends the same thing. The recipients are the clinic's as it stands at send time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.contract.models import CLINICS, Clinic, FieldProblem
from shared.messaging.channels import EMAIL, Recipient
from shared.messaging.ledger import Ledger
from shared.messaging.sender import MessageSender, Wording
from shared.platform.clock import Clock
from shared.platform.errors import PermanentError, RetryableError
from shared.platform.store import Store
from shared.reports import render
from shared.reports.purchase_orders import PurchaseOrders
from shared.reports.report_docs import Reports
from shared.reports.tasks import InventoryAlertTask, ReportEmailTask
from shared.tasks.declaration import Reopen
from shared.tasks.router import Attempt, Outcome, Status


class StaffEmails:
    """The service behind report_email and inventory_alert."""

    def __init__(self, *, store: Store, ledger: Ledger, sender: MessageSender, clock: Clock) -> None:
        self.store, self.ledger, self.sender, self.clock = store, ledger, sender, clock

    def _clinic(self, clinic_id: str) -> Clinic:
        doc = self.store.get(f"{CLINICS}/{clinic_id}")
        if doc is None:
            raise PermanentError("clinic not found", code="clinic_missing")
        return Clinic.from_doc(doc.id, doc.data)

    def deliver_report(self, task: ReportEmailTask, attempt: Attempt) -> Outcome:
        report = Reports(self.store).load(task.report_id)
        if report is None:
            raise PermanentError("the report to email does not exist", code="report_missing")
        if report.clinic_id != task.clinic_id:
            raise PermanentError("the report belongs to another clinic", code="payload_mismatch")
        if task.as_of is not None and (not report.partial or report.generated_at != task.as_of):
            # A partial report rebuilt since (complete now, or a later partial): that build's own task sends it.
            return Outcome(Status.SKIPPED, reason="superseded")
        if task.as_of is None and report.partial:
            raise PermanentError("the stored report is partial; the complete one is not built", code="report_partial")
        clinic = self._clinic(task.clinic_id)
        email = render.report_email(report, clinic.name)
        fields = {"kind": task.type, "clinic_id": clinic.id, "report_id": task.report_id}
        managers = (clinic.manager_emails, clinic.problems_of("manager_emails"))
        return self._send_all(clinic, managers, task.recipient_key, fields, email, attempt, "no_managers")

    def deliver_to_managers(
        self,
        clinic_id: str,
        key_of: Callable[[str], str],
        fields: dict[str, Any],
        email_of: Callable[[Clinic], render.Email],
        attempt: Attempt,
    ) -> Outcome:
        """Another domain's report (a campaign's) to the clinic's managers, exactly as a clinic report goes."""
        clinic = self._clinic(clinic_id)
        managers = (clinic.manager_emails, clinic.problems_of("manager_emails"))
        fields = {**fields, "clinic_id": clinic.id}
        return self._send_all(clinic, managers, key_of, fields, email_of(clinic), attempt, "no_managers")

    def manager_keys(self, clinic_id: str, key_of: Callable[[str], str]) -> list[str]:
        """The ledger keys deliver_to_managers writes for this clinic's managers (the retry sweep reopens them)."""
        clinic = self._clinic(clinic_id)
        return _keys(key_of, clinic.manager_emails, clinic.problems_of("manager_emails"))

    def deliver_inventory_alert(self, task: InventoryAlertTask, attempt: Attempt) -> Outcome:
        doc = PurchaseOrders(self.store).read(task.order_id)
        if doc is None:
            raise PermanentError("the purchase order draft does not exist", code="order_missing")
        if doc.get("clinic_id") != task.clinic_id:
            raise PermanentError("the purchase order belongs to another clinic", code="payload_mismatch")
        clinic = self._clinic(task.clinic_id)
        email = render.inventory_email(doc.data, clinic.name)
        fields = {"kind": task.type, "clinic_id": clinic.id, "order_id": task.order_id}
        contacts = (clinic.inventory_emails, clinic.problems_of("inventory_emails"))
        return self._send_all(clinic, contacts, task.recipient_key, fields, email, attempt, "no_inventory_contacts")

    def _send_all(
        self,
        clinic: Clinic,
        recipients: tuple[Sequence[str], Sequence[FieldProblem]],  # the valid addresses, the skipped entries
        key_of: Callable[[str], str],
        fields: dict[str, Any],
        email: render.Email,
        attempt: Attempt,
        nobody: str,
    ) -> Outcome:
        """One message per recipient; every recipient is tried before a failure is raised for the retry. An
        address that is not one is skipped and, once the others are sent, failed permanently (failed_tasks,
        masked): fixing it and retrying the record sends to it alone."""
        valid, skipped = recipients
        addresses = list(dict.fromkeys(address.strip().lower() for address in valid))
        if not addresses and not skipped:
            return Outcome(Status.SKIPPED, reason=nobody)
        if not clinic.email_from:
            raise PermanentError("the clinic has no email_from to send from", code="no_sender")
        entries = self.ledger.read_many([key_of(address) for address in addresses])
        wording = Wording(sms=None, email=lambda: email, attachments=email.attachments)
        statuses: list[str] = []
        retry: RetryableError | None = None
        permanent: PermanentError | None = None
        for address in addresses:
            key = key_of(address)
            to = Recipient(EMAIL, address, clinic.email_from, clinic.smoke_test)
            try:
                outcome = self.sender.deliver(
                    key, entries.get(key), {**fields, "send_at": self.clock.now()}, [to], wording, attempt
                )
            except RetryableError as exc:
                retry = retry or exc
                continue
            except PermanentError as exc:
                permanent = permanent or exc
                continue
            statuses.append(outcome.status)
        if retry is not None:
            raise retry
        if permanent is not None:
            raise permanent
        if skipped:
            raise PermanentError(
                f"{len(skipped)} address(es) skipped, the others sent: "
                + "; ".join(f"{p.field} {p.problem}" for p in skipped[:5]),
                code="invalid_recipient",
            )
        sent = statuses.count(Status.SENT)
        return Outcome(
            Status.SENT if sent else Status.DUPLICATE,
            reason=f"{sent} sent, {len(statuses) - sent} already sent",
            channel=EMAIL,
        )

    def reopen(self, keys: Sequence[str]) -> Reopen:
        """The retry sweep's hook: reopen each recipient's message; in flight wins, then anything reopened."""
        verdicts = [self.ledger.reopen(key) for key in keys]
        if Reopen.IN_FLIGHT in verdicts:
            return Reopen.IN_FLIGHT
        if verdicts and all(verdict == Reopen.ALREADY_DONE for verdict in verdicts):
            return Reopen.ALREADY_DONE
        return Reopen.REOPENED

    def report_keys(self, task: ReportEmailTask) -> list[str]:
        return self.manager_keys(task.clinic_id, task.recipient_key)

    def alert_keys(self, task: InventoryAlertTask) -> list[str]:
        clinic = self._clinic(task.clinic_id)
        return _keys(task.recipient_key, clinic.inventory_emails, clinic.problems_of("inventory_emails"))


def _keys(key_of: Callable[[str], str], addresses: Sequence[str], skipped: Sequence[FieldProblem]) -> list[str]:
    """The ledger keys the retry sweep reopens: each address's, and one per entry still skipped, which no
    message ever has, so a retry of a record whose address is still bad runs and records it again rather
    than finding everything sent."""
    return [key_of(address) for address in addresses] + [key_of(f"(skipped) {p.field}") for p in skipped]
