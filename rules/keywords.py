"""What an inbound SMS reply means: crisis, opt-out, opt-in, help, confirm, reschedule,
an ambiguous "cancel", or free text. Pure: text in, intents out.

**Crisis first.** Every text is checked for a crisis before anything else (988 Lifeline
guidance: the crisis answer never waits behind other handling). A text can carry two
intents: "STOP I'm going to kill myself" reads as ``(crisis, opt-out)``: the crisis is
handled first and the revocation is still honoured (FCC 24-24). Crisis wording is matched
in English and Spanish with word-boundary patterns on accent-folded, lower-case text with
apostrophes removed ("I'm" -> "im", "can't" -> "cant", "daño" -> "dano"), including common
misspellings; hyperbole ("this wait is killing me", "me muero de hambre") is not a crisis.

**Opt-out by any reasonable means** (47 CFR 64.1200(a)(10), FCC 24-24; CTIA):

* the whole reply is a CTIA keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE,
  OPTOUT) or a Spanish equivalent (ALTO, PARAR, PARE, BAJA, CANCELAR, BASTA, "no más", …),
  ignoring case, spaces and punctuation ("Stop.", "s t o p", "Opt-Out");
* an unambiguous keyword stands as a sentence of its own ("STOP! I'm going to …"), opens a
  reply written in capitals ("STOP texting…"), or opens or closes a short reply ("please
  stop", "stop it");
* a plain-language revocation anywhere: "no more texts", "don't text me", "take me off your
  list", "wrong number", "no me manden mensajes", "darme de baja", "ya no quiero mensajes".

Words that are also ordinary Spanish ("alto" = high, "baja" = low, "para" = for) opt out
only as the whole reply or a sentence of their own, so "la presión está baja" is free text.

**"Cancel" in a sentence is ambiguous.** A bare CANCEL / CANCELAR is a carrier opt-out word,
but "cancel my appointment" or "necesito cancelar" is neither an opt-out nor a cancellation:
it reads as ``ambiguous-cancel`` and gets one clarifying reply (C / R / STOP). A request for
a new time in a sentence ("I need to reschedule", "quiero cambiar la cita") is a reschedule.

**Danger from others** ("he is going to kill me", "mi esposo me pega") is a crisis too: the
answer carries 911 and staff are alerted.

**YES.** The keyword table makes YES (and Spanish SÍ) an opt-in (CTIA double opt-in
confirmation). What a YES answers depends on conversation state the classifier does not see;
:func:`resolve_reply` decides, in this order: after a STOP it resubscribes like START, except
within :data:`STOP_HOLDS_AGAINST_YES` of that STOP, when it changes nothing (a fresh STOP is
never undone by a "yes" that may answer something else); it confirms a pending double opt-in;
it confirms the appointment of a reminder just sent ("reply C to confirm"); it joins health
tips when the patient has an open invitation (:data:`INTENT_HEALTH_TIPS_OPT_IN`,
``fhir_bridge.optin``); otherwise it is only a reply for the staff inbox, never a consent.
A crisis in the same text is still handled first: a YES is only a keyword as the whole reply.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

INTENT_OPT_OUT: Final = "opt-out"
INTENT_OPT_IN: Final = "opt-in"
INTENT_HELP: Final = "help"
INTENT_CONFIRM: Final = "confirm"
INTENT_RESCHEDULE: Final = "reschedule"
INTENT_CRISIS: Final = "crisis"
INTENT_AMBIGUOUS_CANCEL: Final = "ambiguous-cancel"
INTENT_OTHER: Final = "other"
INTENT_HEALTH_TIPS_OPT_IN: Final = "health-tips-opt-in"
"""A YES answering an open invitation to health tips: the purpose-specific opt-in."""

OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
"""CTIA / FCC 24-24 words that revoke consent per se when they are the whole reply."""

SPANISH_OPT_OUT_KEYWORDS: Final = frozenset(
    {
        "ALTO",
        "PARAR",
        "PARE",
        "PARA",
        "PAREN",
        "DETENER",
        "BAJA",
        "DEBAJA",
        "DARSEDEBAJA",
        "DARMEDEBAJA",
        "DARDEBAJA",
        "CANCELAR",
        "BASTA",
        "YABASTA",
        "NOMAS",
        "NOMASMENSAJES",
        "NOMASTEXTOS",
        "FIN",
        "SALIR",
    }
)
"""Spanish equivalents: revocations "in other languages" (FCC 24-24), as the whole reply."""

MISSPELLED_OPT_OUT_KEYWORDS: Final = frozenset(
    {"STPO", "SOTP", "STIP", "SROP", "UNSUSCRIBE", "UNSUBCRIBE", "UNSUBSCRIBED", "OPTOUTS"}
)

OPT_IN_KEYWORDS: Final = frozenset({"START", "UNSTOP", "YES", "SI"})
HELP_KEYWORDS: Final = frozenset({"HELP", "INFO", "AYUDA", "INFORMACION"})
CONFIRM_KEYWORDS: Final = frozenset(
    {"C", "CONFIRM", "CONFIRMED", "CONFIRMAR", "CONFIRMO", "CONFIRMADO", "CONFIRMADA"}
)
RESCHEDULE_KEYWORDS: Final = frozenset(
    {"R", "RESCHEDULE", "REPROGRAMAR", "REAGENDAR", "CAMBIAR", "CAMBIARCITA", "CAMBIARLACITA"}
)
YES_KEYWORDS: Final = frozenset({"YES", "SI"})
STOP_HOLDS_AGAINST_YES: Final = timedelta(hours=24)
"""A YES this soon after a STOP from the same number neither resubscribes nor opts in."""

SHORT_REPLY_MAX_WORDS: Final = 6
"""A STOP opening or closing a reply this short ("please stop", "stop it") opts out."""

SENTENCE_OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "REVOKE", "ALTO", "BASTA", "YABASTA"}
)
"""Keywords that opt out as a sentence of their own inside a longer reply."""

_SHORT_REPLY_EDGE_WORDS: Final = frozenset({"stop", "stopall", "unsubscribe", "optout", "revoke"})
_NOT_A_REQUEST_BEFORE_STOP: Final = frozenset(
    {"cant", "cannot", "wont", "dont", "didnt", "couldnt", "not", "never", "to", "will"}
)

DEFAULT_CRISIS_TERMS: Final[tuple[str, ...]] = ()
"""Extra crisis phrases a clinic may add (``FHIR_BRIDGE_CRISIS_TERMS``); none by default.
They extend the built-in patterns below, which are always on."""

_SELF = r"my ?s[ae]?l[fv]e?"
_INTENT = (
    r"(?:want|wanna|wana|wanting|going|gonna|gunna|plan|planning|thinking|thought|tried|"
    r"trying|try|urge|urges|might|will|ll|could|should|about|been|keep|need)"
)
_CRISIS_PATTERNS_EN: Final[tuple[str, ...]] = (
    rf"kil+(?:ing|ed|l)? ?{_SELF}",
    rf"(?:shoot|hang|drown|hung)(?:ing)? ?{_SELF}",
    rf"{_INTENT}(?: \w+){{0,2}} (?:hurt|harm|cut|burn|stab|poison|starve)(?:ing)? ?{_SELF}",
    r"self ?harm(?:ing)?",
    r"su?i?[cs]{1,2}i?d\w*",
    r"end(?:ing)? (?:it all|my (?:own )?life|everything|it tonight|it today|it now|it for good)",
    r"tak(?:e|ing) my (?:own )?life",
    r"(?:want|wanna|wana|going|gonna|gunna|ready|about|deserve|rather|just want) (?:to |2 )?die"
    r"(?! (?:of|from) (?:boredom|embarrassment|laughing|laughter|hunger|shame|waiting))",
    r"(?:wish|want) (?:i (?:was|were)|to be) dead",
    r"better off (?:dead|without me)",
    r"(?:dont|do not|no longer) want to (?:live|be alive|be here anymore|wake up|exist)",
    r"(?:no reason|nothing) to live(?: for)?",
    r"(?:cant|cannot|can not) (?:go on|take it any ?more|do this any ?more|live like this)",
    r"over ?dos(?:e|ed|ing)",
    r"(?:took|take|taking|swallowed|ate) (?:all|a bunch|a lot|too many|lots|a handful|"
    r"the whole bottle|whole bottle)(?: \w+){0,3} (?:pills|meds|medication|medications|tablets)",
    r"(?:going|gonna|want|wanna|plan|planning) to (?:kill|shoot|stab|hurt) (?:him|her|them|"
    r"someone|somebody|people|everyone|everybody|my (?:wife|husband|partner|boyfriend|"
    r"girlfriend|kids?|children|family|mom|dad|mother|father|son|daughter|boss))",
    r"(?:he|she|they|hes|shes|theyre|someone|somebody|my (?:husband|wife|partner|boyfriend|"
    r"girlfriend|ex|dad|father|mom|mother|son|daughter)) (?:is |are |s )?(?:(?:going|wants|want|"
    r"trying|tried|threatened|threatening) to|gonna|said (?:hed|shed|theyd|he would|she would)|"
    r"will|ll) (?:kill|hurt|shoot|stab) me",
    r"(?:he|she|they|my (?:husband|wife|partner|boyfriend|girlfriend|ex|dad|father|mom|mother|"
    r"son|daughter))(?: \w+)? (?:hits|beats|hit|beat|chokes|choked|abuses|raped|rapes) me",
    r"(?:hell|shell|theyll) (?:kill|hurt|shoot|stab) me",
    r"chest pains?",
    r"(?:cant|cannot|can not|hard to|trouble|difficulty|struggling to) breath(?:e|ing)?",
    r"heart attack",
    r"stroke",
    r"seizure",
    r"(?:bleeding (?:a lot|heavily|badly|wont stop)|(?:wont|cant|will not) stop bleeding)",
    r"911",
)
_NOT_FOR_FUN_ES = (
    r"(?! de (?:la )?(?:verguenza|risa|hambre|aburrimiento|sed|calor|frio|sueno|ganas))"
)
_CRISIS_PATTERNS_ES: Final[tuple[str, ...]] = (
    r"matarme",
    r"me (?:quiero|kiero|voy a|vaya a|pienso|puedo|quisiera) matar",
    r"(?:quitarme|quitar me) la vida",
    r"me (?:quiero|voy a|kiero) quitar la vida",
    rf"(?:quiero|kiero|quisiera|deseo|ganas de) morir(?:me)?{_NOT_FOR_FUN_ES}",
    rf"me (?:quiero|kiero) morir{_NOT_FOR_FUN_ES}",
    r"no (?:quiero|kiero|deseo) (?:seguir )?(?:vivir|viviendo|existir|despertar)",
    r"no quiero seguir aqui",
    r"(?:acabar|terminar|acabo|termino) con (?:mi vida|todo)",
    r"(?:hacerme|me voy a hacer|me quiero hacer) dano",
    r"(?:cortarme|me corto|cortandome) las venas",
    r"(?:quiero|voy a|pienso|ganas de) lastimarme",
    r"(?:estaria|estar|quiero estar|quisiera estar) muert[oa]",
    r"no aguanto mas",
    r"sobredosis",
    r"(?:tome|me tome|tomo) (?:todas las|muchas|un monton de|demasiadas) "
    r"(?:pastillas|pildoras|medicinas)",
    r"dolor (?:fuerte )?(?:de|en el) pecho",
    r"no puedo respirar",
    r"me falta el aire",
    r"infarto",
    r"ataque (?:al|del) corazon",
    r"derrame cerebral",
    r"convulsion(?:es|ando)?",
    r"sangrando mucho",
    r"(?:el|ella|mi (?:esposo|esposa|marido|pareja|novio|novia|ex|papa|padre|mama|madre|hijo|"
    r"hija)) (?:me (?:va a|quiere) matar|me amenaza|me (?:pega|golpea|golpeo|pego))",
)

_TEXTS = (
    r"(?:texts?|txts?|text messages|text reminders|messages|msgs?|reminders|sms|alerts|text alerts)"
)
_OPT_OUT_PHRASES_EN: Final[tuple[str, ...]] = (
    r"stop (?:texting|txting|texing|messaging|sending|contacting|bugging|spamming|"
    r"the texts|these texts)",
    rf"stop (?:the |these |those |all |all the |all these |your |ur |my )?{_TEXTS}",
    rf"no more {_TEXTS}",
    r"(?:dont|do not|never|pls dont|please dont|quit) (?:text|txt|texting|message|msg|"
    r"messaging|contact|sms)(?:ing)? me",
    rf"(?:dont|do not|no longer) (?:send|want|need) (?:me )?(?:these |your |any |the |any more |"
    rf"anymore )?(?:more )?{_TEXTS}",
    r"(?:take|remove|delete|drop|get) (?:me|my number|my phone number|my cell) (?:off|from|out of)",
    r"opt ?(?:me )?out",
    r"un ?su[bs]{1,2}cri\w*",
    rf"cancel (?:my |the |these |all |all the |your |ur )?(?:{_TEXTS}|subscription)",
    r"wrong (?:number|person|phone)",
    r"leave me alone",
)
_OPT_OUT_PHRASES_ES: Final[tuple[str, ...]] = (
    r"no mas (?:mensajes|mensajitos|textos|msjs?|sms|recordatorios)",
    r"no (?:me )?(?:mandes?|manden|mande|envies|envien|envie|escribas|escriban|escriba|"
    r"textees|texteen|textee)\b(?! (?:la|el|su|mi|una|un) )",
    r"(?:dar|darme|darse|darnos|denme|deme|de me|den me) de baja",
    r"(?:deje|dejen|dejar|dejes|paren|pare|para|parar) de (?:mandar|enviar|escribir|textear)\w*",
    r"(?:quitenme|quiteme|quitame|borrenme|borreme|saquenme|saqueme|eliminenme|eliminen mi numero|"
    r"quiten mi numero|borren mi numero)",
    r"(?:ya )?no (?:quiero|deseo|necesito) (?:recibir )?(?:mas )?(?:mensajes|textos|recordatorios)",
    r"cancelar (?:los |mis |estos |sus |todos los )?(?:mensajes|textos|recordatorios|suscripcion)",
    r"basta (?:de|con) (?:mensajes|textos)",
    r"ya basta",
    r"numero equivocado",
)
_RESCHEDULE_PATTERN: Final = re.compile(
    r"\b(?:re ?schedul\w*|reprogramar\w*|reagendar\w*|cambiar (?:la|mi|de) (?:cita|fecha|hora)|"
    r"(?:another|a different|new) (?:day|time|date)|otra (?:fecha|hora|cita|dia))\b"
)
"""A request for a new time in a sentence ("I need to reschedule", "quiero cambiar la cita"):
staff call back, as for R. It wins over "cancel" ("cancel and reschedule")."""
_AMBIGUOUS_CANCEL_PATTERN: Final = re.compile(
    r"\b(?:cancel\w*|cancle\w*|cancell?ation|cancelacion|anular)\b"
)
_SENTENCE_BREAK: Final = re.compile(r"[^\w\s'\u2019]+")

_SPANISH_MARKERS: Final = frozenset(
    {
        "hola", "gracias", "cita", "citas", "quiero", "necesito", "puedo", "mensajes", "mensaje",
        "textos", "baja", "alto", "parar", "pare", "basta", "cancelar", "ayuda", "confirmar",
        "reprogramar", "cambiar", "por", "favor", "mas", "manden", "envien", "vivir", "morir",
        "morirme", "matarme", "suicidarme", "estoy", "tengo", "manana", "dolor", "que", "cuando",
        "donde", "usted", "mi", "numero", "equivocado", "buenos", "buenas", "dias", "llegar",
        "tarde", "voy", "ya", "esta", "soy", "doctora", "el", "la", "los", "las", "de", "con",
        "muero", "matar", "si", "mis", "su", "una", "hoy", "ahora", "porque",
    }
)  # fmt: skip
_ENGLISH_MARKERS: Final = frozenset(
    {
        "the", "please", "my", "you", "thanks", "thank", "appointment", "want", "need", "can",
        "will", "what", "when", "where", "yes", "help", "im", "is", "are", "to", "and", "this",
        "i", "texts", "texting", "going", "late", "tomorrow", "doctor", "number",
    }
)  # fmt: skip


def _patterns(sources: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(rf"\b(?:{source})\b") for source in sources)


_CRISIS: Final = _patterns((*_CRISIS_PATTERNS_EN, *_CRISIS_PATTERNS_ES))
_OPT_OUT_PHRASES: Final = _patterns((*_OPT_OUT_PHRASES_EN, *_OPT_OUT_PHRASES_ES))
_STOP_RUN: Final = re.compile(r"S+T+O+P+")
_CAPITAL_STOP_FIRST: Final = re.compile(r"\s*STOP\b")

_EXACT_TABLE: Final = (
    (OPT_IN_KEYWORDS, INTENT_OPT_IN),
    (HELP_KEYWORDS, INTENT_HELP),
    (CONFIRM_KEYWORDS, INTENT_CONFIRM),
    (RESCHEDULE_KEYWORDS, INTENT_RESCHEDULE),
)


@dataclass(frozen=True)
class InboundIntent:
    """The meaning of one inbound reply; ``keyword`` is the matched keyword, if any."""

    kind: str
    keyword: str | None = None


@dataclass(frozen=True)
class InboundReading:
    """Every intent of one reply, in the order they are handled (crisis always first), and
    the language the text itself is written in when it shows (``en``/``es``, else ``None``)."""

    intents: tuple[InboundIntent, ...]
    language: str | None = None

    @property
    def primary(self) -> InboundIntent:
        return self.intents[0]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(intent.kind for intent in self.intents)


def fold(text: str) -> str:
    """Lower-case ASCII words separated by single spaces: accents, fullwidth forms and
    apostrophes folded ("¡No MÁS!" -> "no mas", "I\u2019m" -> "im"), anything else a space."""
    text = text.replace("'", "").replace("\u2019", "").replace("`", "").replace("\u00b4", "")
    normalized = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    stripped = "".join(char for char in normalized if not unicodedata.combining(char))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", stripped.lower()).split())


def read_inbound(
    text: str, *, crisis_terms: Sequence[str] = DEFAULT_CRISIS_TERMS
) -> InboundReading:
    """All intents of one inbound SMS, crisis first (see the module docstring)."""
    folded = fold(text)
    words = folded.split()
    intents: list[InboundIntent] = []
    if is_crisis(folded, crisis_terms):
        intents.append(InboundIntent(INTENT_CRISIS, None))
    opt_out = _opt_out(text, folded, words)
    if opt_out is not None:
        intents.append(opt_out)
    if not intents:
        intents.append(_keyword_or_other(folded, words))
    return InboundReading(tuple(intents), detect_language(words))


def classify_inbound(
    text: str, *, crisis_terms: Sequence[str] = DEFAULT_CRISIS_TERMS
) -> InboundIntent:
    """The first intent to act on (a crisis outranks everything, then an opt-out)."""
    return read_inbound(text, crisis_terms=crisis_terms).primary


def is_crisis(folded: str, crisis_terms: Sequence[str] = DEFAULT_CRISIS_TERMS) -> bool:
    """True when folded text (see :func:`fold`) matches a built-in or configured crisis phrase."""
    if any(pattern.search(folded) for pattern in _CRISIS):
        return True
    padded = f" {folded} "
    return any(f" {fold(term)} " in padded for term in crisis_terms if fold(term))


def _opt_out(text: str, folded: str, words: list[str]) -> InboundIntent | None:
    squashed = "".join(words).upper()
    whole = OPT_OUT_KEYWORDS | SPANISH_OPT_OUT_KEYWORDS | MISSPELLED_OPT_OUT_KEYWORDS
    if squashed in whole:
        return InboundIntent(INTENT_OPT_OUT, squashed)
    if _STOP_RUN.fullmatch(squashed):
        return InboundIntent(INTENT_OPT_OUT, "STOP")
    for sentence in _SENTENCE_BREAK.split(text):
        keyword = fold(sentence).replace(" ", "").upper()
        if keyword in SENTENCE_OPT_OUT_KEYWORDS:
            return InboundIntent(INTENT_OPT_OUT, keyword)
    if _CAPITAL_STOP_FIRST.match(text):
        return InboundIntent(INTENT_OPT_OUT, "STOP")
    if 0 < len(words) <= SHORT_REPLY_MAX_WORDS:
        first, last = words[0], words[-1]
        before_last = words[-2] if len(words) > 1 else ""
        if first in _SHORT_REPLY_EDGE_WORDS:
            return InboundIntent(INTENT_OPT_OUT, first.upper())
        if last in _SHORT_REPLY_EDGE_WORDS and before_last not in _NOT_A_REQUEST_BEFORE_STOP:
            return InboundIntent(INTENT_OPT_OUT, last.upper())
    if any(pattern.search(folded) for pattern in _OPT_OUT_PHRASES):
        return InboundIntent(INTENT_OPT_OUT, None)
    return None


def _keyword_or_other(folded: str, words: list[str]) -> InboundIntent:
    squashed = "".join(words).upper()
    for keywords, kind in _EXACT_TABLE:
        if squashed in keywords:
            return InboundIntent(kind, squashed)
    if _RESCHEDULE_PATTERN.search(folded):
        return InboundIntent(INTENT_RESCHEDULE, None)
    if _AMBIGUOUS_CANCEL_PATTERN.search(folded):
        return InboundIntent(INTENT_AMBIGUOUS_CANCEL, None)
    return InboundIntent(INTENT_OTHER, None)


def detect_language(words: Sequence[str]) -> str | None:
    """``es`` or ``en`` when the reply's own words clearly lean one way, else ``None``."""
    spanish = sum(word in _SPANISH_MARKERS for word in words)
    english = sum(word in _ENGLISH_MARKERS for word in words)
    if spanish > english:
        return "es"
    if english > spanish:
        return "en"
    return None


def reply_language(*candidates: str | None, supported: Iterable[str], default: str) -> str:
    """The first candidate whose base tag (``es`` for ``es-MX``) is supported, else ``default``.

    Callers pass candidates in precedence order: the patient's preferred language, the
    language of the last message we sent to the number, the language of the reply itself.
    """
    offered = set(supported)
    for candidate in candidates:
        if candidate:
            base = candidate.replace("_", "-").split("-")[0].lower()
            if base in offered:
                return base
    return default


def resolve_reply(
    intent: InboundIntent,
    *,
    opt_in_pending: bool,
    opted_out: bool,
    awaiting_confirmation: bool,
    invitation_open: bool = False,
    stopped_recently: bool = False,
) -> InboundIntent:
    """Resolve the YES / SÍ ambiguity with conversation state (see the module docstring).

    ``stopped_recently``: the number's STOP is younger than :data:`STOP_HOLDS_AGAINST_YES`;
    ``invitation_open``: an invitation to health tips was sent to it and is still valid.
    """
    if intent.kind != INTENT_OPT_IN or intent.keyword not in YES_KEYWORDS:
        return intent
    if opted_out:
        return InboundIntent(INTENT_OTHER, intent.keyword) if stopped_recently else intent
    if opt_in_pending:
        return intent
    if awaiting_confirmation:
        return InboundIntent(INTENT_CONFIRM, intent.keyword)
    if invitation_open:
        return InboundIntent(INTENT_HEALTH_TIPS_OPT_IN, intent.keyword)
    return InboundIntent(INTENT_OTHER, intent.keyword)
