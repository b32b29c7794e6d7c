"""What a patient's text asks for: pure, one pass over the text, whatever it holds.

Twilio acts on its own keywords before our webhook sees them (docs/waitlist.md, "Inbound SMS"): opt-out
STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT; opt-in START, UNSTOP and YES; help HELP,
INFO. Only a message that is the single word counts, as with Twilio. We record what Twilio did (opt-out
and opt-in) and never use those words as commands of our own; YES keeps its Twilio meaning (opt back
in) and also claims an offered slot, which is the only thing a patient is ever asked to answer YES to.
"""

from __future__ import annotations

import re
from enum import StrEnum

from shared.consent.revocation import MAX_CHARS as MAX_CHARS  # Twilio's longest message body
from shared.consent.revocation import fold

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


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    CLAIM = "claim"
    CONFIRM = "confirm"
    CANCEL_REQUEST = "cancel_request"
    RESCHEDULE_REQUEST = "reschedule_request"
    OTHER = "other"


def keyword(body: str) -> str:
    """The message as Twilio matches a keyword: trimmed, upper case, accents dropped."""
    return fold(body).upper()


def classify(body: str) -> Intent:
    """The intent of one inbound text."""
    word = keyword(body)
    bare = word.strip(".!?,;: ")
    if word in OPT_OUT_WORDS or bare in OPT_OUT_WORDS:  # honour "Stop." too: sending less is always safe
        return Intent.OPT_OUT
    if word in OPT_IN_WORDS:
        return Intent.OPT_IN
    if bare in HELP_WORDS:
        return Intent.HELP
    if bare in CLAIM_WORDS:
        return Intent.CLAIM
    if bare in CONFIRM_WORDS:
        return Intent.CONFIRM
    text = fold(body)
    words = set(_WORD.findall(text))
    if words & _CANCEL_WORDS or any(phrase in text for phrase in _CANT_MAKE):
        return Intent.CANCEL_REQUEST
    if words & _CHANGE_WORDS or any(w.startswith("reschedul") for w in words):
        return Intent.RESCHEDULE_REQUEST
    return Intent.OTHER


def opts_back_in(body: str) -> bool:
    """True for the words Twilio itself treats as opting back in (START, UNSTOP, YES)."""
    return keyword(body) in TWILIO_OPT_IN
