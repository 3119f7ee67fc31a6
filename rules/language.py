"""Which language a patient's messages are written in.

Read from ``Patient.communication`` the way EHRs actually fill it:

* entries with ``preferred: true`` first, then the others in order;
* ``language.coding[].code`` as a BCP-47 tag (``urn:ietf:bcp:47``; ``es-MX``, ``ES_mx``,
  ``es-419``) or an ISO 639-2/3 code (``spa``, ``eng``, ``chi``), parsed and normalised by
  ``langcodes``; codings from a local code system are read by their ``display`` first;
* ``language.coding[].display`` and ``language.text`` as a language name in English or in
  the language itself (``Spanish``, ``Español``, ``espanol``, ``castellano``, ``Inglés``,
  ``Tiếng Việt``, ``中文``), from the table below.

A tag matches a supported language by RFC 4647 lookup (``es-MX`` -> ``es-MX``, then
``es``). The first entry in a supported language wins; its ``source`` says whether it was
the preferred one. An entry in a recognised but unsupported language is skipped with the
note ``unsupported:<code>`` (so a patient who prefers Vietnamese but also lists English
gets English); nothing usable -> the default language, with the first note. Notes carry
language codes only, never the patient's text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Final

import langcodes
from langcodes.tag_parser import LanguageTagError

from rules.memo import ContentMemo, content_key

SOURCES: Final = ("patient.communication.preferred", "patient.communication", "default")

#: Code systems whose codes are language tags (BCP-47 or ISO 639). A coding with no
#: system is read the same way; codings from other (local) systems are read by display.
TAG_SYSTEMS: Final = frozenset(
    {
        "",
        "urn:ietf:bcp:47",
        "urn:ietf:rfc:3066",
        "urn:ietf:rfc:5646",
        "urn:iso:std:iso:639-1",
        "urn:iso:std:iso:639-2",
        "urn:iso:std:iso:639-3",
        "http://terminology.hl7.org/CodeSystem/iso639-1",
        "http://terminology.hl7.org/CodeSystem/iso639-2",
        "http://hl7.org/fhir/ValueSet/languages",
        "http://hl7.org/fhir/ValueSet/all-languages",
    }
)

#: Language names as EHRs write them in ``text``/``display``: the English name and the
#: autonym (accents and case are ignored), for the languages most spoken at home in the US
#: (US Census ACS "language spoken at home") plus the supported ones' common variants.
#: Recognising an unsupported language only changes the trace note, never the outcome.
LANGUAGE_NAMES: Final[Mapping[str, str]] = {
    # English
    "english": "en",
    "ingles": "en",
    "anglais": "en",
    "englisch": "en",
    # Spanish
    "spanish": "es",
    "espanol": "es",
    "castellano": "es",
    "castilian": "es",
    "spanish castilian": "es",
    "espagnol": "es",
    "spanisch": "es",
    # Others (recognised so the trace can say which unsupported language was asked for)
    "vietnamese": "vi",
    "tieng viet": "vi",
    "chinese": "zh",
    "mandarin": "cmn",
    "cantonese": "yue",
    "中文": "zh",
    "汉语": "zh",
    "漢語": "zh",
    "普通话": "cmn",
    "國語": "cmn",
    "廣東話": "yue",
    "粤语": "yue",
    "tagalog": "fil",
    "filipino": "fil",
    "korean": "ko",
    "한국어": "ko",
    "arabic": "ar",
    "العربية": "ar",
    "french": "fr",
    "francais": "fr",
    "haitian creole": "ht",
    "haitian": "ht",
    "kreyol": "ht",
    "kreyol ayisyen": "ht",
    "russian": "ru",
    "русский": "ru",
    "portuguese": "pt",
    "portugues": "pt",
    "german": "de",
    "deutsch": "de",
    "italian": "it",
    "italiano": "it",
    "polish": "pl",
    "polski": "pl",
    "japanese": "ja",
    "日本語": "ja",
    "hindi": "hi",
    "urdu": "ur",
    "gujarati": "gu",
    "bengali": "bn",
    "punjabi": "pa",
    "persian": "fa",
    "farsi": "fa",
    "ukrainian": "uk",
    "armenian": "hy",
    "somali": "so",
    "amharic": "am",
    "nepali": "ne",
    "burmese": "my",
    "hmong": "hmn",
    "khmer": "km",
    "cambodian": "km",
    "lao": "lo",
    "laotian": "lo",
    "navajo": "nv",
    "swahili": "sw",
    "greek": "el",
    "hebrew": "he",
    "thai": "th",
    "american sign language": "ase",
    "asl": "ase",
}

_NOT_A_LANGUAGE: Final = frozenset({"und", "mul", "mis", "zxx"})
_TAG_SHAPE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class LanguageDecision:
    """The language to write in, where it came from, and what was skipped (for the trace)."""

    language: str
    source: str
    note: str | None = None


@dataclass(frozen=True)
class StatedLanguage:
    """One ``Patient.communication`` entry, read: its normalised tag (or ``None``)."""

    tag: str | None
    preferred: bool

    @property
    def base(self) -> str | None:
        """The primary language subtag (``es`` for ``es-MX``)."""
        return self.tag.split("-")[0].lower() if self.tag else None


def preferred_language(
    patient: Mapping[str, Any] | None,
    supported: Sequence[str],
    default: str,
) -> LanguageDecision:
    """The supported language the patient reads best, else ``default`` with a note."""
    note: str | None = None
    for stated in stated_languages(patient):
        if stated.tag is None:
            note = note or "unrecognized-language"
            continue
        match = lookup(stated.tag, supported)
        if match is not None:
            source = (
                "patient.communication.preferred" if stated.preferred else "patient.communication"
            )
            return LanguageDecision(match, source, note)
        note = note or f"unsupported:{stated.base}"
    return LanguageDecision(default, "default", note)


_DECISIONS: Final[ContentMemo[LanguageDecision]] = ContentMemo()


def remembered_language(
    patient: Mapping[str, Any] | None, supported: Sequence[str], default: str
) -> LanguageDecision:
    """:func:`preferred_language`, remembered by what it reads (``Patient.communication``,
    by content, and the settings): a day's patients state a handful of languages."""
    if not isinstance(patient, (dict, Mapping)):
        return preferred_language(patient, supported, default)
    communication = content_key(patient.get("communication"))
    if communication is None:
        return preferred_language(patient, supported, default)
    key = (communication, tuple(supported), default)
    found = _DECISIONS.get(key)
    if found is None:
        found = _DECISIONS.put(key, preferred_language(patient, supported, default))
    return found


def stated_languages(patient: Mapping[str, Any] | None) -> list[StatedLanguage]:
    """The patient's communication entries, preferred first, each read to a tag if possible."""
    if not isinstance(patient, (dict, Mapping)):
        return []
    entries = [
        c
        for c in patient.get("communication") or ()
        if isinstance(c, (dict, Mapping))
        and isinstance(c.get("language"), (dict, Mapping))
        and c["language"]
    ]
    entries.sort(key=lambda entry: entry.get("preferred") is not True)
    return [
        StatedLanguage(language_tag(entry.get("language")), entry.get("preferred") is True)
        for entry in entries
    ]


def language_tag(concept: Any) -> str | None:
    """A normalised BCP-47 tag for a ``language`` CodeableConcept, or ``None``."""
    for reader, value in _readings(concept):
        tag = _tag_of_code(value) if reader == "code" else _tag_of_name(value)
        if tag is not None:
            return tag
    return None


def lookup(tag: str, supported: Sequence[str]) -> str | None:
    """RFC 4647 lookup: the supported entry matching ``tag`` or a truncation of it."""
    return _lookup(tag, tuple(supported))


@lru_cache(maxsize=1024)
def _lookup(tag: str, supported: tuple[str, ...]) -> str | None:
    wanted = {_normal(entry): entry for entry in supported}
    parts = _normal(tag).split("-")
    while parts:
        found = wanted.get("-".join(parts))
        if found is not None:
            return found
        parts.pop()
    return None


def _readings(concept: Any) -> Iterator[tuple[str, Any]]:
    """Ways to read the concept, most trustworthy first: ``("code"|"name", value)``."""
    if not isinstance(concept, (dict, Mapping)):
        return
    for coding in concept.get("coding") or ():
        if not isinstance(coding, (dict, Mapping)):
            continue
        code, display = ("code", coding.get("code")), ("name", coding.get("display"))
        if str(coding.get("system") or "") in TAG_SYSTEMS:
            yield from (code, display)
        else:
            yield from (display, code)
    yield "name", concept.get("text")
    yield "code", concept.get("text")


def _tag_of_code(code: Any) -> str | None:
    if not isinstance(code, str):
        return None
    return _tag_of_text(code)


@lru_cache(maxsize=1024)
def _tag_of_text(code: str) -> str | None:
    """A normalised tag for a code's text, worked out once per distinct text."""
    if not _TAG_SHAPE.match(code.strip()):
        return None
    try:
        language = langcodes.Language.get(code.strip(), normalize=True)
    except (LanguageTagError, ValueError):
        return None
    primary = language.language
    if (
        not primary
        or primary in _NOT_A_LANGUAGE
        or "qaa" <= primary <= "qtz"
        or not primary.isalpha()
        or not language.is_valid()
    ):
        return None
    return str(language.to_tag())


def _tag_of_name(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    folded = _fold(text)
    names = _folded_names()
    if folded in names:
        return names[folded]
    words = folded.split()
    # "Spanish (Mexico)", "Chinese, Mandarin", "Haitian Creole speaker": longest name first.
    for width in (3, 2, 1):
        for start in range(len(words) - width + 1):
            found = names.get(" ".join(words[start : start + width]))
            if found is not None:
                return found
    return None


@cache
def _folded_names() -> dict[str, str]:
    return {_fold(name): tag for name, tag in LANGUAGE_NAMES.items()}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", bare).split())


def _normal(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()
