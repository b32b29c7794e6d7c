"""The claim link of an email offer: GET shows the offer and a button (reads only, so a mail scanner that
follows links claims nothing); POST claims exactly as a YES text does (shared.waitlist.claims).

A forged or malformed token → 403, an expired one → 410, a token used before → 409: each decided before
anything is written. The page says what happened in the patient's language, never the treatment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.contract.models import CLINICS, PATIENTS, Clinic, Patient
from shared.messaging.delivery import ClinicCache
from shared.messaging.templates import format_local, locale_for
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument
from shared.platform.html_templates import render_html
from shared.platform.store import Store
from shared.waitlist import entries as entries_module
from shared.waitlist import offers as offers_module
from shared.waitlist import tokens
from shared.waitlist.claims import Claims
from shared.waitlist.offers import SlotOffer
from shared.waitlist.templates import reply_text

TEMPLATES = Path(__file__).resolve().parent / "pages"  # the claim page (Jinja2, autoescaped)
STATUS = {"won": 200, "taken": 200, "expired": 410, "conflict": 409, "no_offer": 404, "reused": 409}


@dataclass(frozen=True)
class Page:
    status: int
    outcome: str  # offer (GET, still open) | won | taken | expired | conflict | no_offer | reused | refused codes
    message: str
    token: str | None = None  # set: the page carries the claim button

    def html(self, title: str) -> str:
        return render_html(
            TEMPLATES, "claim_page.html", title=title, outcome=self.outcome, message=self.message, token=self.token
        )


REFUSED = {
    "malformed_token": (403, "This link is not valid. Please call the clinic."),
    "forged_token": (403, "This link is not valid. Please call the clinic."),
    "expired_token": (410, "This offer has ended. You stay on the waitlist."),
}


class ClaimLinks:
    def __init__(
        self, *, store: Store, clock: Clock, claims: Claims, token_key: bytes, clinics: ClinicCache | None = None
    ) -> None:
        self.store, self.clock, self.claims, self.token_key = store, clock, claims, token_key
        self.clinics = clinics or ClinicCache()

    def _verify(self, token: object) -> tokens.ClaimToken | Page:
        try:
            return tokens.verify(self.token_key, token, self.clock.now())
        except tokens.TokenRefused as exc:
            status, message = REFUSED.get(exc.code, REFUSED["malformed_token"])
            log.warning("claim link refused", error_code=exc.code)
            return Page(status, exc.code, message)

    def _context(self, claim: tokens.ClaimToken) -> tuple[SlotOffer | None, Clinic | None, Patient | None]:
        paths = [offers_module.path(claim.offer_id), entries_module.path(claim.entry_id)]
        docs = self.store.get_all(paths)
        offer_doc = docs.get(paths[0])
        offer = SlotOffer.from_doc(offer_doc) if offer_doc else None
        if offer is None:
            return None, None, None
        clinic = self.clinics.get(offer.clinic_id)
        patient = None
        entry_doc = docs.get(paths[1])
        read = [f"{CLINICS}/{offer.clinic_id}"] if clinic is None else []
        patient_id = entry_doc.get("patient_id") if entry_doc else None
        if isinstance(patient_id, str):
            read.append(f"{PATIENTS}/{patient_id}")
        more = self.store.get_all(read) if read else {}
        try:
            if clinic is None and (clinic_doc := more.get(f"{CLINICS}/{offer.clinic_id}")) is not None:
                clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
                self.clinics.put(clinic)
            if isinstance(patient_id, str) and (patient_doc := more.get(f"{PATIENTS}/{patient_id}")) is not None:
                patient = Patient.from_doc(patient_doc.id, patient_doc.data)
        except InvalidDocument as exc:
            log.warning("document breaks the contract; claim page kept plain", doc_id=exc.doc_id, field=exc.field)
        return offer, clinic, patient

    def _page(
        self, status: int, outcome: str, clinic: Clinic | None, patient: Patient | None, start: datetime | None
    ) -> Page:
        if clinic is None:
            return Page(status, outcome, "This offer is not available.")
        kind = {"reused": "expired", "offer": "other"}.get(outcome, outcome)
        return Page(status, outcome, reply_text(kind, clinic=clinic, patient=patient, start=start))

    def show(self, token: object) -> tuple[Page, str]:
        """GET: what the link offers, with the button while it is open (reads only)."""
        claim = self._verify(token)
        if isinstance(claim, Page):
            return claim, "Waitlist offer"
        offer, clinic, patient = self._context(claim)
        title = clinic.name if clinic else "Waitlist offer"
        if offer is None or clinic is None:
            return Page(404, "no_offer", "This offer is not available."), title
        if not offer.is_open:
            outcome = "taken" if offer.status == offers_module.State.FILLED else "expired"
            return self._page(STATUS[outcome], outcome, clinic, patient, offer.start), title
        locale = locale_for(patient, clinic) if patient else clinic.locale
        when = format_local(offer.start, clinic.zone, locale)
        message = f"{clinic.name}: {when}. This link books it once; the first patient to book gets it."
        return Page(200, "offer", message, token=str(token)), title

    def claim(self, token: object) -> tuple[Page, str]:
        """POST: claim the slot as the token's waitlist entry."""
        claim = self._verify(token)
        if isinstance(claim, Page):
            return claim, "Waitlist offer"
        result = self.claims.claim(claim.offer_id, claim.entry_id, channel="link")
        offer, clinic, patient = self._context(claim)
        title = clinic.name if clinic else "Waitlist offer"
        outcome = "reused" if result.replay else result.outcome
        log.info("claim link answered", offer_id=claim.offer_id, outcome=outcome)
        start = offer.start if offer else None
        if outcome == "reused":
            return Page(409, "reused", "This link has already been used."), title
        return self._page(STATUS.get(outcome, 200), outcome, clinic, patient, start), title
