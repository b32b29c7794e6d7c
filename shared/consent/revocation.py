"""Whether a patient's free text revokes their consent to be texted: pure, bounded, one pass per phrase.

A revocation "by any reasonable means" must be honoured (docs/consent.md, "Revocation by text"), so the
verdict has three answers:

- REVOKE: certain. The FCC's words (stop, quit, end, revoke, opt out, cancel, unsubscribe) alone or with
  courtesy words only ("Stop please", "STOP!!!", "🛑 stop"); a stop word aimed at the messages ("stop
  texting me", "no more texts", "cancel my subscription", "don't text me", "remove me from your list");
  the Spanish ones ("no más", "alto", "parar", "baja", "cancelar suscripción", "no me manden más
  mensajes", "dejen de escribirme").
- UNCERTAIN: reads like a wish to stop but not certainly ("not interested", "leave me alone", "wrong
  number", "please no more messages?" (a question), "stop" in a sentence that does not say what, "Cancel
  please" and "Cancelar" as the whole text (a clinic's patient may mean the appointment), 🛑 alone). The caller opts out
  conservatively and lets the front desk look.
- NONE: anything else, among them "cancel my appointment" (a cancel request: shared.waitlist.keywords),
  "can you stop by at 3?", "I had to stop taking it", "the price is alto", "remove me from the waitlist".

The text is cut to MAX_CHARS, folded once (lower case, accents and apostrophes dropped), split into
sentences at , . ! ? ; and line ends; each check is a substring test of a fixed phrase or a look at a
fixed window of words: linear in the text, no backtracking pattern.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

MAX_CHARS = 1600  # Twilio's longest message body

STOP_EMOJI = frozenset("🛑⛔🚫✋")
_SENTENCE = re.compile(r"[^,.!?;\n]+[,.!?;\n]*")
_WORD = re.compile(r"[a-z0-9]+")

# A sentence that is one of these, once courtesy words are set aside, revokes ("cancel": see verdict()).
ALONE = frozenset(
    {
        "stop",
        "stopall",
        "quit",
        "end",
        "revoke",
        "optout",
        "opt out",
        "unsubscribe",
        "unsub",
        "no more",
        "no mas",
        "parar",
        "para",
        "pare",
        "paren",
        "alto",
        "baja",
        "detener",
        "desuscribir",
        "desuscribirme",
    }
)
COURTESY = frozenset(
    "please pls plz now thanks thank you thx ty ok okay it all asap right away immediately just i said "
    "hey hi hello yes sorry por favor gracias ya ahora hola si lo siento".split()
)
# Certain anywhere in a sentence (downgraded to UNCERTAIN in a question).
CERTAIN = (
    "unsubscribe",
    "opt out",
    "optout",
    "opt me out",
    "revoke",
    "remove me",
    "remove my number",
    "take me off",
    "delete my number",
    "dont text",
    "dont message",
    "dont contact",
    "dont send",
    "do not text",
    "do not message",
    "do not contact",
    "do not send",
    "never text",
    "never message",
    "never contact",
    "no me manden",
    "no me envien",
    "no me escriban",
    "no me mandes",
    "no me envies",
    "no me escribas",
    "no me contacten",
    "dejen de",
    "deja de mandar",
    "deja de enviar",
    "deja de escrib",
    "dejar de recibir",
    "de baja",
    "cancelar suscripcion",
    "cancelar mi suscripcion",
    "desuscrib",
    "borrenme",
    "sacame de",
    "saquenme de",
)
# Words that aim a stop word at the messages: a trigger, then at most WINDOW connecting words, then one of them.
MESSAGES = frozenset(
    "text texts texting txt txts message messages messaging msg msgs sms notifications alerts reminders "
    "promotions promos subscription mensajes mensaje textos texto notificaciones recordatorios promociones "
    "suscripcion sending contacting calling emailing".split()
)
CONNECTORS = frozenset(
    "the these those this all my your me any more them sending getting receiving with "
    "los las sus tus mis mas recibir de".split()
)
TRIGGERS = (
    ("stop",),
    ("quit",),
    ("end",),
    ("cancel",),
    ("cancelar",),
    ("parar",),
    ("paren",),
    ("detener",),
    ("no", "more"),
    ("no", "mas"),
    ("dont", "want"),
    ("do", "not", "want"),
    ("no", "longer", "want"),
    ("no", "quiero"),
)
WINDOW = 3
UNCERTAIN_PHRASES = (
    "not interested",
    "no longer interested",
    "leave me alone",
    "wrong number",
    "wrong person",
    "lose my number",
    "too many text",
    "too many message",
    "so many text",
    "so many message",
    "spam",
    "harass",
    "no me interesa",
    "numero equivocado",
    "dejenme en paz",
    "dejame en paz",
    "no me molesten",
    "no molesten",
)
# Uncertain only as a whole sentence (within one, "early enough", "basta con llegar").
UNCERTAIN_ALONE = frozenset({"enough", "enough already", "basta", "ya basta"})
NOT_ABOUT_MESSAGES = ("waitlist", "wait list", "lista de espera")  # "remove me from the waitlist"
NEGATIONS = frozenset({"dont", "not", "never", "didnt", "doesnt"})  # before a stop word: the opposite
STOP_ELSEWHERE = frozenset({"by", "in", "at", "over", "from", "for", "here", "there"})  # "can you stop by?"


class Verdict(StrEnum):
    REVOKE = "revoke"
    UNCERTAIN = "uncertain"
    NONE = "none"


def fold(text: str) -> str:
    """Lower case, accents dropped, whitespace collapsed (bounded input: at most MAX_CHARS characters)."""
    plain = unicodedata.normalize("NFKD", text[:MAX_CHARS]).encode("ascii", "ignore").decode("ascii")
    return " ".join(plain.replace("’", "'").lower().split())


def verdict(text: str) -> Verdict:
    """Whether `text` revokes consent to be texted: certainly, perhaps, or not at all."""
    bounded = text[:MAX_CHARS]
    folded = fold(bounded).replace("'", "")
    every = _WORD.findall(folded)
    if _core(every) in (["cancel"], ["cancelar"]):  # the whole text; in a longer one it is the appointment
        return Verdict.REVOKE if every == ["cancel"] else Verdict.UNCERTAIN
    found = Verdict.NONE
    for match in _SENTENCE.finditer(folded):
        words = _WORD.findall(match.group())
        if words:
            found = max(found, _sentence(words, question="?" in match.group()), key=_RANK.__getitem__)
    if found == Verdict.NONE and any(char in STOP_EMOJI for char in bounded):
        return Verdict.UNCERTAIN if not _WORD.search(folded) else found
    return found


_RANK = {Verdict.NONE: 0, Verdict.UNCERTAIN: 1, Verdict.REVOKE: 2}


def _sentence(words: list[str], *, question: bool) -> Verdict:
    spoken = " ".join(_core(words))
    if spoken in ALONE:
        return Verdict.REVOKE
    if spoken in UNCERTAIN_ALONE:
        return Verdict.UNCERTAIN
    joined = f" {' '.join(words)} "
    if any(f" {place} " in joined for place in NOT_ABOUT_MESSAGES):
        return Verdict.NONE
    certain = _aimed_at_messages(words) or any(f" {phrase}" in joined for phrase in CERTAIN)
    if certain:
        return Verdict.UNCERTAIN if question else Verdict.REVOKE
    if any(f" {phrase}" in joined for phrase in UNCERTAIN_PHRASES):
        return Verdict.UNCERTAIN
    return Verdict.UNCERTAIN if _loose_stop(words) else Verdict.NONE


def _core(words: list[str]) -> list[str]:
    """The words that say something: courtesy words and immediate repeats set aside ("stop stop, please")."""
    return [
        word for index, word in enumerate(words) if word not in COURTESY and (index == 0 or word != words[index - 1])
    ]


def _aimed_at_messages(words: list[str]) -> bool:
    """A trigger ("stop", "no more", "no quiero" …), at most WINDOW connecting words ("sending me the"),
    then a word for the messages."""
    for index in range(len(words)):
        if index and words[index - 1] in NEGATIONS:  # "don't stop the reminders"
            continue
        for trigger in TRIGGERS:
            end = index + len(trigger)
            if tuple(words[index:end]) == trigger and _names_messages(words[end : end + WINDOW + 1]):
                return True
    return False


def _names_messages(following: list[str]) -> bool:
    for word in following:
        if word in MESSAGES:
            return True
        if word not in CONNECTORS:
            return False
    return False


def _loose_stop(words: list[str]) -> bool:
    """ "stop" in a longer sentence that does not say what, nor means "stop by" or "stop taking"."""
    for index, word in enumerate(words):
        if word != "stop" or (index and words[index - 1] in NEGATIONS):
            continue
        following = words[index + 1] if index + 1 < len(words) else ""
        if following in STOP_ELSEWHERE or following.endswith("ing"):
            continue
        return True
    return False
