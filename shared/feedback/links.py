"""The survey page of an emailed follow-up (docs/feedback.md): `{FEEDBACK_PAGE_URL}?t={token}`, served by
the public function feedback-page.

The token (shared.platform.signed_tokens, kind "f1", key FEEDBACK_LINK_KEY from Secret Manager) names the
appointment only and expires 30 days after the follow-up's planned send time. GET shows the one question
and five buttons and writes nothing (a mail scanner that follows links answers nothing); POST records the
score exactly as a texted one (shared.feedback.surveys), its ref "link-<score>", so pressing the same
button twice records it once. A forged or malformed token answers 403, an expired one 410, a score that
is not 1 to 5 400 with the question again: each a page, never a 5xx, and decided before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shared.contract.ids import is_doc_id
from shared.contract.models import CLINICS, PATIENTS, SCORES, Clinic, Patient
from shared.feedback.scores import Recorded, Scores, Survey
from shared.feedback.surveys import Surveys
from shared.messaging.templates import locale_for
from shared.platform import log
from shared.platform.clock import Clock
from shared.platform.errors import InvalidDocument, PermanentError
from shared.platform.html_templates import render_html
from shared.platform.signed_tokens import SignedTokens, TokenRefused
from shared.platform.store import Store

TEMPLATES = Path(__file__).resolve().parent / "pages"
LINK_TOKENS = SignedTokens(version="f1", what="feedback link token", key_name="FEEDBACK_LINK_KEY", ids=1)
REFUSED = {"malformed_token": 403, "forged_token": 403, "expired_token": 410}

_WORDS = {
    "en": {
        "title": "How was your visit?",
        "question": "Hi {first}, how was your visit to {clinic}? Choose a number from 1 to 5.",
        "scale": "1 = poor, 5 = excellent",
        "thanks": "Thank you for your feedback!",
        "sorry": "Thank you for telling us. We're sorry your visit fell short; {clinic} will contact you. "
        "You can also call {phone}.",
        "again": "Please choose one number from 1 to 5.",
        "invalid_link": "This link is not valid. Please call the clinic.",
        "expired": "This survey has closed. Thank you all the same.",
        "no_survey": "This survey is not available.",
    },
    "es": {
        "title": "¿Qué tal su visita?",
        "question": "Hola {first}, ¿qué tal su visita a {clinic}? Elija un número del 1 al 5.",
        "scale": "1 = mala, 5 = excelente",
        "thanks": "¡Gracias por su opinión!",
        "sorry": "Gracias por contárnoslo. Lamentamos que su visita no fuera como esperaba; {clinic} le contactará. "
        "También puede llamar al {phone}.",
        "again": "Por favor elija un solo número del 1 al 5.",
        "invalid_link": "Este enlace no es válido. Por favor llame a la clínica.",
        "expired": "Esta encuesta ha terminado. Gracias de todos modos.",
        "no_survey": "Esta encuesta no está disponible.",
    },
}


@dataclass(frozen=True)
class Page:
    status: int
    outcome: str  # question | scored | changed | invalid_score | no_survey | refused codes
    message: str
    title: str = _WORDS["en"]["title"]
    token: str | None = None  # set: the page carries the five buttons
    locale: str = "en"

    def html(self) -> str:
        words = _WORDS.get(self.locale, _WORDS["en"])
        return render_html(
            TEMPLATES,
            "feedback_page.html",
            lang=self.locale,
            title=self.title,
            outcome=self.outcome,
            message=self.message,
            token=self.token,
            scores=SCORES,
            scale=words["scale"],
        )

    def response(self) -> tuple[str, int, dict[str, str]]:
        headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
        return self.html(), self.status, {**headers, "Content-Type": "text/html; charset=utf-8"}


def parse_score(raw: object) -> int | None:
    """A submitted score: "1" to "5", else None."""
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) == 1 and int(raw) in SCORES:
        return int(raw)
    return None


class FeedbackLinks:
    """Signs survey links (the task handler, as a follow-up email renders) and answers them (feedback-page)."""

    def __init__(
        self, *, store: Store, clock: Clock, page_url: str, key: bytes, surveys: Surveys | None = None
    ) -> None:
        self.store, self.clock, self.page_url, self.key = store, clock, page_url.rstrip("/"), key
        self.surveys, self.scores = surveys, Scores(store, clock)

    def link_for(self, appointment_id: str, expires: datetime) -> str:
        if not is_doc_id(appointment_id):
            raise PermanentError("a survey link names an appointment id", code="invalid_link_ids")
        return f"{self.page_url}/?t={LINK_TOKENS.sign(self.key, (appointment_id,), expires)}"

    def _open(self, token: object) -> tuple[Survey, Clinic, Patient | None] | Page:
        try:
            (appointment_id,), _ = LINK_TOKENS.verify(self.key, token, self.clock.now())
            if not is_doc_id(appointment_id):
                raise TokenRefused("feedback link token malformed", code="malformed_token")
        except TokenRefused as exc:
            log.warning("feedback link refused", error_code=exc.code)
            words = _WORDS["en"]
            return Page(
                REFUSED.get(exc.code, 403),
                exc.code,
                words["expired" if exc.code == "expired_token" else "invalid_link"],
            )
        survey = self.scores.read(appointment_id)
        if survey is None:
            log.warning("feedback link names no survey", appointment_id=appointment_id, error_code="no_survey")
            return Page(404, "no_survey", _WORDS["en"]["no_survey"])
        docs = self.store.get_all([f"{CLINICS}/{survey.clinic_id}", f"{PATIENTS}/{survey.patient_id}"])
        clinic_doc, patient_doc = docs.get(f"{CLINICS}/{survey.clinic_id}"), docs.get(f"{PATIENTS}/{survey.patient_id}")
        try:
            if clinic_doc is None:
                raise PermanentError("the survey's clinic does not exist", code="clinic_missing")
            clinic = Clinic.from_doc(clinic_doc.id, clinic_doc.data)
            patient = Patient.from_doc(patient_doc.id, patient_doc.data) if patient_doc else None
        except (InvalidDocument, PermanentError) as exc:
            log.warning("survey page kept plain", appointment_id=appointment_id, error_code=exc.code)
            return Page(404, "no_survey", _WORDS["en"]["no_survey"])
        return survey, clinic, patient

    def show(self, token: object) -> Page:
        """GET: the question and the five buttons (reads only)."""
        opened = self._open(token)
        if isinstance(opened, Page):
            return opened
        _, clinic, patient = opened
        return self._question(200, "question", clinic, patient, str(token))

    def submit(self, token: object, raw_score: object) -> Page:
        """POST: record the pressed button's score."""
        opened = self._open(token)
        if isinstance(opened, Page):
            return opened
        survey, clinic, patient = opened
        score = parse_score(raw_score)
        if score is None:
            log.warning("survey page sent no score", appointment_id=survey.appointment_id, error_code="invalid_score")
            return self._question(400, "invalid_score", clinic, patient, str(token), again=True)
        if self.surveys is None:
            raise PermanentError("the survey page cannot record without the surveys", code="not_wired")
        answer = self.surveys.answer(survey.appointment_id, clinic, score, source="link", ref=f"link-{score}")
        locale = locale_for(patient, clinic) if patient else clinic.locale
        words = _WORDS.get(locale, _WORDS["en"])
        low = answer.survey is not None and answer.survey.low and answer.outcome != Recorded.CHANGED
        message = (words["sorry"] if low else words["thanks"]).format(clinic=clinic.name, phone=clinic.phone)
        outcome = "changed" if answer.outcome == Recorded.CHANGED else "scored"
        return Page(200, outcome, message, title=clinic.name, locale=locale)

    def _question(
        self, status: int, outcome: str, clinic: Clinic, patient: Patient | None, token: str, *, again: bool = False
    ) -> Page:
        locale = locale_for(patient, clinic) if patient else clinic.locale
        words = _WORDS.get(locale, _WORDS["en"])
        question = words["question"].format(first=patient.first_name if patient else "", clinic=clinic.name)
        message = f"{words['again']} {question}" if again else question
        return Page(status, outcome, message, title=clinic.name, token=token, locale=locale)
