"""What an inbound SMS reply means: opt-out, opt-in, help, confirm, reschedule or crisis.

Order matters and follows CTIA/FCC practice: an opt-out is honoured first (any
of STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE as the whole
reply, and the unambiguous ones even inside a short reply such as "please stop
texting me"), then anything that sounds like
a crisis is escalated before it could be mistaken for a keyword, then the exact
keywords. Matching ignores case, spaces and punctuation ("Stop.", "s t o p",
"Opt-Out", "STOP ALL").

**YES.** The keyword table makes YES an opt-in (CTIA double opt-in confirmation),
so :func:`classify_inbound` returns ``opt-in`` for it. Whether a YES answers a
pending opt-in or a reminder's "reply C to confirm" depends on conversation
state the classifier does not see; :func:`resolve_reply` decides: a YES with an
opt-in pending (or after an opt-out) is an opt-in, otherwise a YES while a
reminder awaits confirmation is a confirm, otherwise it stays an opt-in (which
changes nothing for a subscribed patient).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

INTENT_OPT_OUT: Final = "opt-out"
INTENT_OPT_IN: Final = "opt-in"
INTENT_HELP: Final = "help"
INTENT_CONFIRM: Final = "confirm"
INTENT_RESCHEDULE: Final = "reschedule"
INTENT_CRISIS: Final = "crisis"
INTENT_OTHER: Final = "other"

OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
OPT_IN_KEYWORDS: Final = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS: Final = frozenset({"HELP", "INFO"})
CONFIRM_KEYWORDS: Final = frozenset({"C", "CONFIRM"})
RESCHEDULE_KEYWORDS: Final = frozenset({"R", "RESCHEDULE"})

SHORT_REPLY_MAX_WORDS: Final = 6
"""An opt-out word inside a reply this short ("please stop texting me") still opts out."""

IN_SENTENCE_OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "REVOKE"}
)
"""Only unambiguous words opt out inside a sentence: "I need to cancel my appointment"
or "see you at the end" are requests for staff, not revocations."""

DEFAULT_CRISIS_TERMS: Final[tuple[str, ...]] = (
    "suicide",
    "suicidal",
    "kill myself",
    "killing myself",
    "end my life",
    "want to die",
    "self harm",
    "self-harm",
    "hurt myself",
    "overdose",
    "overdosed",
    "chest pain",
    "can't breathe",
    "cannot breathe",
    "trouble breathing",
    "heart attack",
    "stroke",
    "bleeding a lot",
    "seizure",
    "911",
)

_EXACT_TABLE: Final = (
    (OPT_IN_KEYWORDS, INTENT_OPT_IN),
    (HELP_KEYWORDS, INTENT_HELP),
    (CONFIRM_KEYWORDS, INTENT_CONFIRM),
    (RESCHEDULE_KEYWORDS, INTENT_RESCHEDULE),
)
_NON_WORD = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class InboundIntent:
    """The meaning of one inbound reply; ``keyword`` is the matched keyword, if any."""

    kind: str
    keyword: str | None = None


def _fold(text: str) -> str:
    """Lower-case ASCII-ish text with accents, fullwidth forms and apostrophes folded."""
    normalized = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    stripped = "".join(char for char in normalized if not unicodedata.combining(char))
    return stripped.lower().replace("'", "").replace("\u2019", "")


def _words(text: str) -> list[str]:
    return [word for word in _NON_WORD.split(_fold(text)) if word]


def _opt_out_keyword(words: list[str]) -> str | None:
    squashed = "".join(words).upper()
    if squashed in OPT_OUT_KEYWORDS:
        return squashed
    if len(words) > SHORT_REPLY_MAX_WORDS:
        return None
    upper = [word.upper() for word in words]
    for first, second in itertools.pairwise(upper):
        if first + second in IN_SENTENCE_OPT_OUT_KEYWORDS:
            return first + second
    for word in upper:
        if word in IN_SENTENCE_OPT_OUT_KEYWORDS:
            return word
    return None


def _crisis_term(words: list[str], crisis_terms: Sequence[str]) -> str | None:
    padded = f" {' '.join(words)} "
    for term in crisis_terms:
        term_words = _words(term)
        if term_words and f" {' '.join(term_words)} " in padded:
            return term
    return None


def classify_inbound(
    text: str, *, crisis_terms: Sequence[str] = DEFAULT_CRISIS_TERMS
) -> InboundIntent:
    """Classify an inbound SMS; see the module docstring for the order of checks."""
    words = _words(text)
    opt_out = _opt_out_keyword(words)
    if opt_out is not None:
        return InboundIntent(INTENT_OPT_OUT, opt_out)
    if _crisis_term(words, crisis_terms) is not None:
        return InboundIntent(INTENT_CRISIS, None)
    squashed = "".join(words).upper()
    for keywords, kind in _EXACT_TABLE:
        if squashed in keywords:
            return InboundIntent(kind, squashed)
    return InboundIntent(INTENT_OTHER, None)


def resolve_reply(
    intent: InboundIntent,
    *,
    opt_in_pending: bool,
    opted_out: bool,
    awaiting_confirmation: bool,
) -> InboundIntent:
    """Resolve the YES ambiguity with conversation state (see the module docstring)."""
    if intent.kind != INTENT_OPT_IN or intent.keyword != "YES":
        return intent
    if opt_in_pending or opted_out:
        return intent
    if awaiting_confirmation:
        return InboundIntent(INTENT_CONFIRM, "YES")
    return intent
