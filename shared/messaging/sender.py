"""Sending one message exactly as the ledger allows: reconcile, claim, send over the channels in order,
record. Every message type (appointment reminders, waitlist offers and results, report emails) goes
through `MessageSender.deliver` once its service has decided the message must go and rendered it.

- a duplicate (the ledger already says sent, delivered, skipped or failed) sends nothing;
- an earlier attempt whose provider answer was lost (`unconfirmed`) is first looked for: a delivery
  callback recorded for that generation (Twilio status callbacks, SendGrid's event webhook), or the SMS
  in Twilio's message list. Evidence can lag, so it is awaited for `unconfirmed_wait` after the answer was
  lost (the task is retried meanwhile); only then, still absent, is the message sent again. On the
  queue's last attempt it is never sent blind: it stays unconfirmed and is recorded in failed_tasks;
- the recipient rejected on one channel (invalid number, replied STOP, not mobile) → the next channel;
  Twilio's 21610 also records the patient's SMS opt-out;
- a transient failure releases the claim for the retry, or on the queue's last attempt marks the
  message failed; a permanent one marks it failed; an answer lost marks it unconfirmed;
- with `evidence` (shared.consent.evidence.SendRecords), every patient message's outcome (sent, skipped,
  failed, unconfirmed) is also written to its send record, with the purpose and basis its fields name
  (transactional when they name none): the compliance evidence that outlives the ledger;
- a message of the smoke test's clinic (`smoke_test` on its content) goes out only through the test
  providers: SMS with Twilio's test credentials (none configured: a permanent failure, never the live
  ones), email in SendGrid's sandbox mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

from shared.messaging.channels import EMAIL, SMS, Channel, Recipient
from shared.messaging.ledger import PROVIDER_REASON, AlreadyDone, Claim, Entry, Ledger, StaleClaim, State
from shared.messaging.opt_outs import OptOuts
from shared.messaging.providers import (
    EmailSender,
    OutgoingEmail,
    OutgoingSms,
    RecipientRejected,
    SendUnconfirmed,
    SmsSender,
)
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import FailedEarlier, PermanentError, RetryableError
from shared.tasks.router import Attempt, Outcome, Status

if TYPE_CHECKING:
    from shared.consent.evidence import SendOutcome, SendRecords

DEFAULT_UNCONFIRMED_WAIT = timedelta(seconds=60)
PROVIDER_CLOCK_SLACK = timedelta(seconds=5)  # Twilio's clock, and its whole-second date_created


class SentNotRecorded(RetryableError):
    """The provider accepted the message but the ledger write failed: retried, never re-sent blind."""

    def __init__(self, channel: Channel) -> None:
        super().__init__(f"{channel} message sent but not recorded", retry_after_seconds=30, code="sent_not_recorded")


class Withdrawn(Exception):  # noqa: N818 - a verdict, not an error: the message must not go out after all
    """Raised by a `before_send` check after the claim: the claim is given back and nothing is sent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Rendered(Protocol):
    """An email as a template renders it (shared.messaging.templates.Message and its kin)."""

    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def html(self) -> str: ...


@dataclass(frozen=True)
class SmsContent:
    recipient: Recipient
    body: str


@dataclass(frozen=True)
class EmailContent:
    recipient: Recipient
    email: Rendered
    attachments: tuple[tuple[str, str, bytes], ...] = ()


Content = SmsContent | EmailContent


@dataclass(frozen=True)
class Wording:
    """What one message says on each channel, rendered only for the channel it goes out on."""

    sms: Callable[[], str] | None  # None: a message that is never an SMS (staff emails)
    email: Callable[[], Rendered]
    attachments: tuple[tuple[str, str, bytes], ...] = ()

    def content(self, recipient: Recipient) -> Content:
        """What to send to this recipient on its channel."""
        if recipient.channel == EMAIL:
            return EmailContent(recipient, self.email(), self.attachments)
        return SmsContent(recipient, self.sms_body())

    def sms_body(self) -> str:
        if self.sms is None:
            raise PermanentError("this message has no SMS wording", code="no_channel")
        return self.sms()


class MessageSender:
    def __init__(
        self,
        *,
        ledger: Ledger,
        sms: SmsSender,
        email: EmailSender,
        clock: Clock,
        opt_outs: OptOuts,
        status_callback_url: str = "",
        unconfirmed_wait: timedelta = DEFAULT_UNCONFIRMED_WAIT,
        test_sms: SmsSender | None = None,
        evidence: SendRecords | None = None,
    ) -> None:
        """`test_sms` sends the smoke test clinic's SMS (Twilio's test credentials); without it they fail.
        `evidence` records each patient message's outcome (docs/compliance.md)."""
        self.ledger, self.sms, self.email, self.clock, self.opt_outs = ledger, sms, email, clock, opt_outs
        self.status_callback_url, self.unconfirmed_wait = status_callback_url, unconfirmed_wait
        self.test_sms, self.evidence = test_sms, evidence

    def sms_sender(self, recipient: Recipient) -> SmsSender:
        """The live sender, or for the smoke test's clinic the test one: never the live one, whatever is configured."""
        if not recipient.smoke_test:
            return self.sms
        if self.test_sms is None:
            raise PermanentError(
                "smoke-test clinic and no Twilio test sender; never sent with the live credentials",
                code="twilio_test_credentials_missing",
            )
        return self.test_sms

    def skip(self, key: str, entry: Entry | None, reason: str, fields: Mapping[str, Any]) -> Outcome:
        """Record that the message `key` must not go out (a duplicate if another attempt settled it first)."""
        state = self.ledger.skip(key, entry, reason, fields)
        if state != State.SKIPPED:
            return Outcome(Status.DUPLICATE, reason=reason)
        self._record(key, fields, "skipped", reason=reason)
        return Outcome(Status.SKIPPED, reason=reason)

    def _record(self, key: str, fields: Mapping[str, Any], outcome: SendOutcome | str, **details: str | None) -> None:
        """The send record of this outcome (`details`: channel, reason, provider_message_id). Its write failing
        never undoes or repeats the message: logged (no PHI), and the ledger still says what happened."""
        if self.evidence is None:
            return
        try:
            self.evidence.record(key, fields, outcome, **details)
        except Exception as exc:  # noqa: BLE001 - the message's own outcome stands; the gap is logged
            log.error("send record not written", dedup_key=key, outcome=str(outcome), error=type(exc).__name__)

    def _recorded(self, key: str, fields: Mapping[str, Any], outcome: Outcome) -> Outcome:
        """A message that went: its send record, then the outcome as it was."""
        self._record(
            key,
            fields,
            "sent",
            channel=outcome.channel or None,
            reason=outcome.reason or None,
            provider_message_id=outcome.provider_message_id or None,
        )
        return outcome

    def deliver(
        self,
        key: str,
        entry: Entry | None,
        fields: Mapping[str, Any],
        recipients: Sequence[Recipient],
        wording: Wording,
        attempt: Attempt,
        *,
        patient_id: str | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> Outcome:
        """Send the message `key` to the first of `recipients` (preferred first) that takes it; `entry` is the
        ledger doc as read. `before_send` runs once the claim is held, just before the provider call, and may
        raise Withdrawn (a campaign stopped meanwhile: docs/campaigns.md, "Pause and cancel")."""
        if entry is not None and entry.is_done:
            return duplicate_of(entry)
        proven = self._proven(entry) if entry is not None else None
        if proven is not None:
            return self._recorded(key, fields, proven)
        # A lost answer, or a sender that died mid-send (its lease ran out): the message may already exist.
        abandoned = entry is not None and entry.state == State.SENDING and not entry.live_claim(self.clock.now())
        if entry is not None and (entry.state == State.UNCONFIRMED or abandoned):
            found = self._reconcile(entry, recipients, wording)
            if found is not None:
                return self._recorded(key, fields, found)
            if entry.state == State.UNCONFIRMED:
                self._await_evidence(entry, attempt)
        try:
            claim = self.ledger.claim(key, entry, fields)
        except AlreadyDone as done:
            return duplicate_of(done.entry)
        except RetryableError:
            raise  # on the last attempt the router records it: the concurrent winner may still give it back
        try:
            if before_send is not None:
                before_send()
            return self._send_all(claim, recipients, wording, patient_id, fields)
        except Withdrawn as withdrawn:
            try:
                self.ledger.release(claim, withdrawn.reason)
            except StaleClaim:
                pass  # a takeover moved on meanwhile; it runs the same check
            raise
        except StaleClaim as stale:
            log.warning("a takeover finished this message first; its result stands", dedup_key=key, error=str(stale))
            return Outcome(Status.SUPERSEDED)
        except SentNotRecorded:
            raise  # the provider has it: never released, the retry (or a takeover) reconciles
        except SendUnconfirmed as exc:
            try:
                self.ledger.mark_unconfirmed(claim, channel=exc.channel, reason=exc.code)
            except StaleClaim:
                pass  # a takeover moved on meanwhile; the retry sees its result
            else:
                self._record(key, fields, "unconfirmed", channel=exc.channel, reason=exc.code)
            raise
        except RetryableError as exc:
            self._give_back(claim, fields, exc.code, attempt)
            raise
        except PermanentError as exc:
            self.ledger.fail(claim, exc.code)
            self._record(key, fields, "failed", reason=exc.code)
            raise
        except Exception as exc:
            self._give_back(claim, fields, type(exc).__name__, attempt)
            raise

    def _give_back(self, claim: Claim, fields: Mapping[str, Any], code: str, attempt: Attempt) -> None:
        """A transient failure: the retry claims again; on the last attempt the ledger says failed."""
        try:
            if attempt.last:
                self.ledger.fail(claim, code)
                self._record(claim.key, fields, "failed", reason=code)
            else:
                self.ledger.release(claim, code)
        except StaleClaim:
            pass  # a takeover already moved it on; its result stands

    def _send_all(
        self,
        claim: Claim,
        recipients: Sequence[Recipient],
        wording: Wording,
        patient_id: str | None,
        fields: Mapping[str, Any],
    ) -> Outcome:
        rejected: RecipientRejected | None = None
        for recipient in recipients:
            channel = recipient.channel
            try:
                provider_id = self._send(claim, wording.content(recipient))
            except RecipientRejected as rejection:
                rejected = rejection
                if rejection.reason == "sms_opted_out" and patient_id:
                    self.opt_outs.set_sms_opt_out(patient_id, True, source="twilio_21610")
                log.warning(
                    "recipient rejected; trying the next channel",
                    channel=channel,
                    error_code=rejection.code,
                    dedup_key=claim.key,
                )
                continue
            try:
                # its send record in the same commit: one round trip, and never "sent" without its evidence
                record = None
                if self.evidence is not None:
                    record = self.evidence.write_for(
                        claim.key, fields, "sent", channel=channel, provider_message_id=provider_id
                    )
                self.ledger.mark_sent(claim, channel=channel, provider_message_id=provider_id, also=record)
            except StaleClaim:
                raise
            except Exception as exc:
                # Sent, but the ledger could not say so: mark it unconfirmed if the store lets us (the retry then
                # finds the message), and never release the claim, which would send it again.
                try:
                    self.ledger.mark_unconfirmed(claim, channel=channel, reason="sent_not_recorded")
                except Exception:  # noqa: BLE001,S110 - the lease runs out and the takeover reconciles
                    pass
                raise SentNotRecorded(channel) from exc
            return Outcome(Status.SENT, channel=channel, provider_message_id=provider_id)
        if rejected is None:
            raise PermanentError("no channel to send on", code="no_channel")
        raise rejected

    def _send(self, claim: Claim, content: Content) -> str:
        to = content.recipient
        if isinstance(content, SmsContent):
            callback = None
            if self.status_callback_url:
                callback = f"{self.status_callback_url}?{urlencode({'ledger': claim.key, 'g': claim.generation})}"
            return self.sms_sender(to).send_sms(
                OutgoingSms(to=to.to, sender=to.sender, body=content.body, status_callback=callback)
            )
        return self.email.send_email(
            OutgoingEmail(
                to=to.to,
                sender=to.sender,
                subject=content.email.subject,
                text=content.email.text,
                html=content.email.html,
                reference=f"{claim.key}:{claim.generation}",
                attachments=content.attachments,
                sandbox_mode=to.smoke_test,
            )
        )

    def _await_evidence(self, entry: Entry, attempt: Attempt) -> None:
        """Not found yet: wait for late evidence (a retry), never send blind on the last attempt."""
        if attempt.last:
            raise RetryableError(
                "the provider's answer was lost and the message was not found; not sent again on the last attempt",
                code="send_unconfirmed",
            )
        since = entry.unconfirmed_at
        if since is not None:
            remaining = since + self.unconfirmed_wait - self.clock.now()
            if remaining > timedelta(0):
                raise RetryableError(
                    "waiting for the provider's evidence of an unconfirmed send",
                    retry_after_seconds=int(remaining.total_seconds()) + 1,
                    code="awaiting_provider_evidence",
                    throttled=True,
                )

    def _proven(self, entry: Entry) -> Outcome | None:
        """A provider callback recorded for the claim's own generation proves the message went (its sender
        died before saying so, or its answer was lost): confirm it instead of waiting on a lease."""
        report = entry.proven_by_callback()
        if report is None:
            return None
        evidence = report.message_id
        channel = SMS if evidence[:2] in ("SM", "MM") else EMAIL
        if self.ledger.confirm(entry, channel=channel, provider_message_id=evidence, proven=True):
            return Outcome(Status.SENT, reason="confirmed_by_callback", channel=channel, provider_message_id=evidence)
        return None

    def _reconcile(self, entry: Entry, recipients: Sequence[Recipient], wording: Wording) -> Outcome | None:
        """An earlier attempt's answer was lost (or its sender died): is the message in the provider's list?"""
        channel = entry.channel
        by_sms = next((recipient for recipient in recipients if recipient.channel == SMS), None)
        # An answer lost names its channel; a sender that died may have been on any of them.
        if by_sms is not None and (channel == SMS or entry.state != State.UNCONFIRMED):
            body = wording.sms_body()
            since = entry.claimed_at or self.clock.now() - timedelta(days=1)
            lost = entry.unconfirmed_at if entry.state == State.UNCONFIRMED else None
            until = (lost or self.clock.now()) + PROVIDER_CLOCK_SLACK
            # Twilio's list does not return a message's StatusCallback (where our ledger key rides), so the body
            # is what identifies ours: every message to one patient reads its own words (an appointment's
            # reminders say "tomorrow at …" / "in 2 hours, …"), and ours was also created while our request
            # was out and is no other ledger doc's message.
            candidates = [
                m
                for m in self.sms_sender(by_sms).find_sent(to=by_sms.to, sender=by_sms.sender, since=since)
                if m.body == body and (m.sent_at is None or since - PROVIDER_CLOCK_SLACK <= m.sent_at <= until)
            ]
            taken = self.ledger.messages_of_others(entry.key, [m.sid for m in candidates])
            for message in candidates:
                if message.sid not in taken and self.ledger.confirm(
                    entry, channel=SMS, provider_message_id=message.sid
                ):
                    return Outcome(
                        Status.SENT, reason="found_at_provider", channel=SMS, provider_message_id=message.sid
                    )
        log.info("unconfirmed send not found; sending again", dedup_key=entry.key, channel=channel or None)
        return None


def duplicate_of(entry: Entry) -> Outcome:
    """Nothing to send. A failure this sender decided (not a provider's callback) is raised again, so the
    router records it if the attempt that decided it died before its failed_tasks write."""
    if entry.state == State.FAILED and not entry.reason.startswith(PROVIDER_REASON):
        raise FailedEarlier("the message failed on an earlier attempt; not sent", code=entry.reason or None)
    return Outcome(Status.DUPLICATE, reason=entry.state.value)
