"""What a patient's text asks for: pure, one pass over the text, whatever it holds.

Twilio acts on its own keywords before our webhook sees them (docs/waitlist.md, "Inbound SMS"): opt-out
STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT; opt-in START, UNSTOP and YES; help HELP,
INFO. Only a message that is the single word counts, as with Twilio. We record what Twilio did (opt-out
and opt-in) and never use those words as commands of our own; YES keeps its Twilio meaning (opt back
in) and also claims an offered slot, which is the only thing a patient is ever asked to answer YES to.
Any other text that revokes consent (shared.consent.revocation: "stop texting me", "no más") is an
opt-out Twilio did not see; one that may revoke is an uncertain opt-out. The clinic's marketing keyword
(JOIN) opts in to marketing; START never does. A bare number is a survey score (docs/feedback.md): 1 to 5
is one, any other number or a number written in words ("five", "cinco") is NOT_A_SCORE; the inbound
webhook treats either as plain text when the patient has no survey open.
"""

from __future__ import annotations

import re
from enum import StrEnum

from shared.consent import revocation
from shared.consent.revocation import MAX_CHARS as MAX_CHARS  # Twilio's longest message body
from shared.consent.revocation import Verdict, fold

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_WORDS = frozenset({"START", "UNSTOP"})  # and YES, which is a claim here (see CLAIM_WORDS)
HELP_WORDS = frozenset({"HELP", "INFO"})
CLAIM_WORDS = frozenset({"YES", "Y", "SI"})
CONFIRM_WORDS = frozenset({"C", "CONFIRM", "CONFIRMAR"})
TWILIO_OPT_IN = frozenset({"START", "UNSTOP", "YES"})

_WORD = re.compile(r"[a-z']+")
_CANCEL_WORDS = frozenset({"cancel", "cancelar", "cancellation", "cancelacion", "anular"})
_CHANGE_WORDS = frozenset(
    {"reschedule", "rebook", "change", "move", "postpone", "reprogramar", "cambiar", "mover", "aplazar", "posponer"}
)
_CANT_MAKE = ("can't make", "cant make", "cannot make", "no puedo ir", "no podre ir")
_NUMBER = re.compile(r"[0-9]{1,6}")
_NUMBER_WORDS = frozenset(
    "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN CERO UNO UNA DOS TRES CUATRO CINCO SEIS SIETE OCHO "
    "NUEVE DIEZ".split()
)
SCORE_RANGE = range(1, 6)


class Intent(StrEnum):
    OPT_OUT = "opt_out"  # a certain revocation: Twilio's word, or free text (shared.consent.revocation)
    UNCERTAIN_OPT_OUT = "uncertain_opt_out"  # reads like a revocation, not certainly: opted out, front desk looks
    OPT_IN = "opt_in"
    MARKETING_OPT_IN = "marketing_opt_in"  # the clinic's marketing keyword (JOIN)
    HELP = "help"
    CLAIM = "claim"
    CONFIRM = "confirm"
    SCORE = "score"  # a bare 1-5: a survey's answer (docs/feedback.md)
    NOT_A_SCORE = "not_a_score"  # a bare number that is no score: 0, 7, "five"
    CANCEL_REQUEST = "cancel_request"
    RESCHEDULE_REQUEST = "reschedule_request"
    OTHER = "other"


def keyword(body: str) -> str:
    """The message as Twilio matches a keyword: trimmed, upper case, accents dropped."""
    return fold(body).upper()


def classify(body: str, marketing_keyword: str | None = None) -> Intent:
    """The intent of one inbound text (`marketing_keyword`: the clinic's, e.g. JOIN)."""
    word = keyword(body)
    bare = word.strip(".!?,;: ")
    if word in OPT_OUT_WORDS or bare in OPT_OUT_WORDS:  # honour "Stop." too: sending less is always safe
        return Intent.OPT_OUT
    if word in OPT_IN_WORDS:
        return Intent.OPT_IN
    if bare in HELP_WORDS:
        return Intent.HELP
    if marketing_keyword and bare == marketing_keyword:
        return Intent.MARKETING_OPT_IN
    if bare in CLAIM_WORDS:
        return Intent.CLAIM
    if bare in CONFIRM_WORDS:
        return Intent.CONFIRM
    if _NUMBER.fullmatch(bare) or bare in _NUMBER_WORDS:
        return Intent.SCORE if score(body) is not None else Intent.NOT_A_SCORE
    judged = revocation.verdict(body)
    if judged != Verdict.NONE:
        return Intent.OPT_OUT if judged == Verdict.REVOKE else Intent.UNCERTAIN_OPT_OUT
    text = fold(body)
    words = set(_WORD.findall(text))
    if words & _CANCEL_WORDS or any(phrase in text for phrase in _CANT_MAKE):
        return Intent.CANCEL_REQUEST
    if words & _CHANGE_WORDS or any(w.startswith("reschedul") for w in words):
        return Intent.RESCHEDULE_REQUEST
    return Intent.OTHER


def score(body: str) -> int | None:
    """The survey score a text is (a bare 1 to 5, "5!" too), else None."""
    bare = keyword(body).strip(".!?,;: ")
    if not _NUMBER.fullmatch(bare):
        return None
    value = int(bare)
    return value if value in SCORE_RANGE else None


def answered_by_twilio(body: str) -> bool:
    """True when Twilio answered the text itself: one of its opt-out words, alone (it matches no other form)."""
    return keyword(body) in OPT_OUT_WORDS


def opts_back_in(body: str) -> bool:
    """True for the words Twilio itself treats as opting back in (START, UNSTOP, YES)."""
    return keyword(body) in TWILIO_OPT_IN
