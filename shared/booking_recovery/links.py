"""A nudge's restore link, `{BOOKING_RESTORE_URL}/{token}`, and the redirect behind it (booking-restore).

The token (shared.platform.signed_tokens, kind "b1", key BOOKING_LINK_KEY from Secret Manager) names the
session id and the nudge's number, nothing else (no PHI in the URL), and expires at the slot's start: after it
there is nothing to restore. Following it: verify → read the session and its clinic → count the click on the
session's recovery record → 302 to the clinic's booking page (`booking_recovery.restore_url` with the session's
id). A forged or malformed token answers 404, an expired one 410, with a plain page and before anything is
read; a session or a clinic that is gone, or a clinic whose recovery is off, answers 404. Never a 5xx for what
the link holds (docs/booking-recovery.md, "The restore link").
"""

from __future__ import annotations

from shared.booking_recovery.recoveries import Recoveries
from shared.booking_recovery.sessions import BookingSession
from shared.booking_recovery.sessions import path as session_path
from shared.booking_recovery.tasks import MAX_NUDGES
from shared.campaigns.links import REFUSED_STATUS, Answer, LinkRefused, check_link
from shared.contract.ids import is_doc_id
from shared.contract.models import CLINICS, Clinic
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, PermanentError, RetryableError
from shared.platform.signed_tokens import SignedTokens, TokenRefused
from shared.platform.store import Store

RESTORE_TOKENS = SignedTokens(version="b1", what="booking restore token", key_name="BOOKING_LINK_KEY", ids=2)
NUDGE_NUMBERS = tuple(str(n) for n in range(1, MAX_NUDGES + 1))


class RestoreLinks:
    """Signs a nudge's restore link (the task handler) and follows it (booking-restore)."""

    def __init__(self, *, store: Store, clock: Clock, restore_url: str, key: bytes) -> None:
        self.store, self.clock, self.restore_url, self.key = store, clock, restore_url.rstrip("/"), key

    def link_for(self, session: BookingSession, nudge: int) -> str:
        if not is_doc_id(session.id) or str(nudge) not in NUDGE_NUMBERS:
            raise PermanentError("a restore link names a session id and a nudge", code="invalid_link_ids")
        return f"{self.restore_url}/{RESTORE_TOKENS.sign(self.key, (session.id, str(nudge)), session.slot_start)}"

    def follow(self, token: object, *, record: bool = True) -> Answer:
        """Verify, count the click (with `record`), and answer the redirect or the page that says why not."""
        try:
            (session_id, nudge), _ = RESTORE_TOKENS.verify(self.key, token, self.clock.now())
            if not is_doc_id(session_id) or nudge not in NUDGE_NUMBERS:
                raise TokenRefused("booking restore token malformed", code="malformed_token")
        except TokenRefused as exc:
            log.warning("booking restore link refused", error_code=exc.code)
            return Answer(REFUSED_STATUS.get(exc.code, 404), exc.code)
        found = self.store.get(session_path(session_id))
        try:
            session = BookingSession.from_doc(found.id, found.data) if found is not None else None
            clinic_doc = self.store.get(f"{CLINICS}/{session.clinic_id}") if session is not None else None
            clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data) if clinic_doc is not None else None
        except InvalidDocument as exc:
            log.warning("booking restore link names a broken document", **exc.where())
            return Answer(404, "invalid_document")
        if session is None or clinic is None:
            log.warning("booking restore link names no session", session_id=session_id, error_code="no_session")
            return Answer(404, "no_session")
        try:
            link = check_link(
                clinic.booking_recovery.restore_link(session.id) if clinic.booking_recovery.enabled else None
            )
        except LinkRefused as exc:
            log.warning("clinic has no booking page to restore to", clinic_id=clinic.id, error_code=exc.code)
            return Answer(404, "no_link")
        if record:
            self._count(session, nudge)
        return Answer(302, "redirected", link)

    def _count(self, session: BookingSession, nudge: str) -> None:
        """One more click on the session's links; a click the store could not count still redirects."""
        try:
            Recoveries(self.store, self.clock).clicked(session)
        except RetryableError as exc:
            log.warning("booking restore click not counted", session_id=session.id, error_code=exc.code)
            return
        log.info("booking restore link followed", session_id=session.id, nudge=nudge)
