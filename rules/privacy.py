"""Minimum necessary: spot sensitive care so outreach can say less about it.

An SMS preview on a lock screen is read by whoever holds the phone. When an
appointment, prescription or stay concerns mental health, substance use,
HIV/STI, reproductive or sexual health, genetic testing, cancer care,
gender-affirming care or violence and abuse, the message must not name the
specialty, reason, medication or a revealing clinic name. This module only
*detects*; templates decide what a neutral message looks like.

Detection reads everything a human reading the record would, per resource
(including the referenced Location, HealthcareService, Practitioner,
PractitionerRole, Organization and Medication resources the caller passes in):

* ``meta.security`` (v3-Confidentiality R/V and v3-ActCode sensitivity labels),
  also on contained resources;
* every coding anywhere in the resource, matched against configurable value sets
  and the RxNorm ingredient codes of the drug lists;
* every free-text string (displays, ``text``, ``note``, ``description``,
  ``comment``, ``patientInstruction``, dosage text, names, aliases, addresses,
  the XHTML narrative with its tags stripped) except identifiers, URLs, systems,
  references, dates and ``meta`` - lower-cased and accent-folded, then matched
  with one word-start-anchored regular expression per category (English and
  Spanish) and one whole-word expression per drug list (ingredients and brands,
  shipped as ``valuesets/drugs-*.yaml`` with their source and date);
* revealing Locations (by configured id or name pattern).

Anything that cannot be read is treated as sensitive: an entry that is not a
mapping (``unparseable``), or a MedicationRequest whose medication has neither a
code nor any text, in its CodeableConcept, reference display, contained or
referenced Medication (``medication:unknown``). Reasons are codes, never text
(``text:mental-health``, ``drug:hiv``, ``code:snomed:394587001``).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from rules.memo import ContentMemo, content_key
from rules.snapshot import collect_references, relative_reference

VALUE_SET_DIR: Final = Path(__file__).with_name("valuesets")
SHIPPED_VALUE_SETS: Final = VALUE_SET_DIR / "sensitive.yaml"
DRUG_LIST_GLOB: Final = "drugs-*.yaml"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
REASON_UNPARSEABLE: Final = "unparseable"
REASON_MEDICATION_UNKNOWN: Final = "medication:unknown"

_CONFIDENTIALITY_SYSTEMS: Final = frozenset(
    {
        "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
        "http://hl7.org/fhir/v3/Confidentiality",
        "urn:oid:2.16.840.1.113883.5.25",
    }
)
_ACT_CODE_SYSTEMS: Final = frozenset(
    {
        "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "http://hl7.org/fhir/v3/ActCode",
        "urn:oid:2.16.840.1.113883.5.4",
    }
)
_SYSTEM_ALIASES: Final = {
    "urn:oid:2.16.840.1.113883.6.96": "http://snomed.info/sct",
    "urn:oid:2.16.840.1.113883.6.90": "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-10": "http://hl7.org/fhir/sid/icd-10-cm",
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.101": "http://nucc.org/provider-taxonomy",
}
_SYSTEM_SHORT_NAMES: Final = {
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    RXNORM: "rxnorm",
    "http://loinc.org": "loinc",
    "http://nucc.org/provider-taxonomy": "nucc",
}
_THO_PREFIX: Final = "http://terminology.hl7.org/CodeSystem/"
# Keys whose string values are machine data, not text a person reads: identifiers, links,
# systems, references, dates and enumerations. Everything else that is a string is read.
_NON_TEXT_KEYS: Final = frozenset(
    {
        "resourceType",
        "id",
        "meta",
        "identifier",
        "url",
        "system",
        "version",
        "reference",
        "fullUrl",
        "profile",
        "status",
        "intent",
        "priority",
        "use",
        "language",
        "contentType",
        "start",
        "end",
        "created",
        "authoredOn",
        "date",
        "issued",
        "recorded",
        "lastModified",
        "birthDate",
        "validityPeriod",
        "valueUri",
        "valueUrl",
        "valueCanonical",
        "valueDate",
        "valueDateTime",
        "valueInstant",
        "valueTime",
    }
)
# Resources many patients' resources point at, whose findings are memoised by content.
# A medication order is never one: whether its medication is known depends on the others.
_SHARED_TYPES: Final = frozenset(
    {
        "Location",
        "HealthcareService",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Medication",
    }
)
_MEDICATION_ORDERS: Final = frozenset(
    {"MedicationRequest", "MedicationStatement", "MedicationDispense", "MedicationAdministration"}
)
_COMBINING: Final = re.compile(r"[\u0300-\u036f]")
_TAG: Final = re.compile(r"<[^>]*>")
_NAME_SEPARATORS: Final = re.compile(r"[\s\-]+")


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Psiquiatría" reads as "psiquiatria"."""
    if text.isascii():
        return text.lower()
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).lower()


def _fold_pattern(pattern: str) -> str:
    return _COMBINING.sub("", unicodedata.normalize("NFKD", pattern))


def narrative_text(div: str) -> str:
    """The readable text of an XHTML narrative: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub(" ", div))


class InvalidPatternError(ValueError):
    """A configured text or location pattern is not a valid regular expression."""


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise InvalidPatternError(f"invalid pattern {pattern!r}: {error}") from error
    return patterns


@cache
def _shipped() -> Mapping[str, Any]:
    with SHIPPED_VALUE_SETS.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise InvalidPatternError(f"{SHIPPED_VALUE_SETS.name} must be a mapping")
    return data


class SensitiveValueSet(BaseModel):
    """Codes by system (``F32*`` matches by prefix) and text patterns for one category."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    codes: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    text: tuple[str, ...] = ()

    _check_text = field_validator("text")(_check_patterns)


class RevealingLocations(BaseModel):
    """Locations whose name alone discloses the kind of care (by id or name pattern)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ids: tuple[str, ...] = Field(
        default_factory=lambda: tuple(_shipped()["revealing_locations"]["ids"])
    )
    name_patterns: tuple[str, ...] = Field(
        default_factory=lambda: tuple(_shipped()["revealing_locations"]["name_patterns"])
    )

    _check_names = field_validator("name_patterns")(_check_patterns)


def _shipped_value_sets() -> dict[str, SensitiveValueSet]:
    return {
        name: SensitiveValueSet.model_validate(body)
        for name, body in _shipped()["value_sets"].items()
    }


class DrugIngredient(BaseModel):
    """One ingredient of a drug list: its RxNorm ingredient code (if known) and brands."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rxnorm: str | None = None
    brands: tuple[str, ...] = ()


class DrugList(BaseModel):
    """Medicines whose mere name reveals a category of care, from a named, dated source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    category: str = Field(min_length=1)
    source: str = Field(min_length=1)
    compiled: str = Field(min_length=1)
    ingredients: dict[str, DrugIngredient] = Field(default_factory=dict)
    products: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        """Every name matched in free text: ingredients, their brands and brand products."""
        found = list(self.ingredients)
        for ingredient in self.ingredients.values():
            found.extend(ingredient.brands)
        found.extend(self.products)
        return tuple(dict.fromkeys(found))

    def rxnorm_codes(self) -> tuple[str, ...]:
        """The RxNorm ingredient codes listed."""
        return tuple(i.rxnorm for i in self.ingredients.values() if i.rxnorm)


@cache
def _shipped_drug_list_bodies() -> tuple[Mapping[str, Any], ...]:
    bodies = []
    for path in sorted(VALUE_SET_DIR.glob(DRUG_LIST_GLOB)):
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        if not isinstance(data, dict):
            raise InvalidPatternError(f"{path.name} must be a mapping")
        bodies.append(data)
    return tuple(bodies)


def _shipped_drug_lists() -> dict[str, DrugList]:
    lists = (DrugList.model_validate(body) for body in _shipped_drug_list_bodies())
    return {item.name: item for item in lists}


_REGEX_META: Final = frozenset(".^$*+?{}[]\\|()")
_QUANTIFIERS: Final = frozenset("?*+{")
_SEPARATOR: Final = r"[\s\-]*"


def _lower_pattern(pattern: str) -> str:
    """Lower-case a pattern's literals, leaving escapes (``\\b``, ``\\S``) alone."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern[index] == "\\":
            out.append(pattern[index : index + 2])
            index += 2
        else:
            out.append(pattern[index].lower())
            index += 1
    return "".join(out)


def _has_top_level_bar(pattern: str) -> bool:
    depth, index, in_class = 0, 0, False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            return True
        index += 1
    return False


def _pattern_tokens(pattern: str) -> list[str]:
    """A pattern as its literal prefix, one escaped character at a time, then the rest."""
    if _has_top_level_bar(pattern):
        return [f"(?:{pattern})"]
    tokens: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        quantified = index + 1 < len(pattern) and pattern[index + 1] in _QUANTIFIERS
        if char in _REGEX_META or quantified:
            break
        tokens.append(re.escape(char))
        index += 1
    if index < len(pattern):
        tokens.append(f"(?:{pattern[index:]})")
    return tokens


def _name_tokens(name: str) -> list[str]:
    """A drug name as literal characters; spaces and hyphens match any run of either."""
    tokens: list[str] = []
    for number, word in enumerate(w for w in _NAME_SEPARATORS.split(fold(name)) if w):
        if number:
            tokens.append(_SEPARATOR)
        tokens.extend(re.escape(char) for char in word)
    return tokens


def _trie_alternation(sequences: Sequence[Sequence[str]]) -> str:
    """One alternation of token sequences with shared prefixes factored out.

    Python's regex engine tries the branches of an alternation one by one at every
    position; factoring "psychiatr|psychotherap|..." into a trie keeps a search over a
    few hundred terms as fast as one over a dozen.
    """
    trie: dict[str, Any] = {}
    for sequence in sequences:
        node = trie
        for token in sequence:
            node = node.setdefault(token, {})
        node[""] = {}

    def render(node: Mapping[str, Any]) -> str:
        branches = [token + render(child) for token, child in node.items() if token]
        if "" in node and branches:
            branches.append("")
        if len(branches) <= 1:
            return branches[0] if branches else ""
        return "(?:" + "|".join(branches) + ")"

    return render(trie)


def _category_regex(patterns: Sequence[str]) -> re.Pattern[str]:
    folded = [_pattern_tokens(_lower_pattern(_fold_pattern(p))) for p in patterns]
    return re.compile(r"\b" + _trie_alternation(folded))


def _drug_regex(names: Sequence[str]) -> re.Pattern[str]:
    tokens = [t for t in (_name_tokens(n) for n in names) if t]
    return re.compile(r"\b" + _trie_alternation(tokens) + r"\b")


@dataclass(frozen=True)
class _TextIndex:
    """Per-category and per-drug-list expressions, each behind one that matches any of them."""

    any_category: re.Pattern[str] | None
    categories: tuple[tuple[str, re.Pattern[str]], ...]
    any_drug: re.Pattern[str] | None
    drugs: tuple[tuple[str, str, re.Pattern[str]], ...]

    def reasons(self, folded: str) -> Iterator[tuple[str, str]]:
        if self.any_category is not None and self.any_category.search(folded):
            for category, pattern in self.categories:
                if pattern.search(folded):
                    yield f"text:{category}", category
        if self.any_drug is not None and self.any_drug.search(folded):
            for name, category, pattern in self.drugs:
                if pattern.search(folded):
                    yield f"drug:{name}", category


@dataclass(frozen=True)
class _Compiled:
    """Everything classification needs, in plain structures (read once per call)."""

    exact: Mapping[tuple[str, str], str]
    prefixes: Mapping[str, tuple[tuple[str, str], ...]]
    text: _TextIndex
    confidentiality_codes: frozenset[str]
    security_labels: frozenset[str]
    label_categories: Mapping[str, str]
    location_ids: tuple[str, ...]
    location_id_set: frozenset[str]
    location_names: re.Pattern[str] | None
    # What one shared resource (a Location, Practitioner...) contributes, by its content.
    verdicts: ContentMemo[ResourceFindings] = dataclass_field(
        default_factory=ContentMemo, compare=False, repr=False
    )
    # What the text expressions find in one joined text (a day's appointments at the same
    # few places read the same few texts); keyed by the text itself.
    text_verdicts: ContentMemo[tuple[tuple[str, str], ...]] = dataclass_field(
        default_factory=ContentMemo, compare=False, repr=False
    )
    # Whole verdicts by the findings of the resources they were made from, in order.
    verdicts_of_findings: ContentMemo[Sensitivity] = dataclass_field(
        default_factory=ContentMemo, compare=False, repr=False
    )

    def text_reasons(self, joined: str) -> tuple[tuple[str, str], ...]:
        """``(reason, category)`` for every category and drug list ``joined`` text hits."""
        found = self.text_verdicts.get(joined)
        if found is None:
            found = self.text_verdicts.put(joined, tuple(self.text.reasons(fold(joined))))
        return found

    def code_category(self, system: str, code: str) -> str | None:
        canonical = _SYSTEM_ALIASES.get(system, system)
        found = self.exact.get((canonical, code))
        if found is not None:
            return found
        for prefix, name in self.prefixes.get(canonical, ()):
            if code.startswith(prefix):
                return name
        return None

    def name_is_revealing(self, name: str) -> bool:
        return self.location_names is not None and bool(self.location_names.search(name))

    def id_is_revealing(self, reference: str) -> bool:
        ids = self.location_id_set
        if not ids:
            return False
        bare = reference.rsplit("Location/", 1)[-1]
        return reference in ids or bare in ids or f"Location/{bare}" in ids


class PrivacyPolicy(BaseModel):
    """The ``privacy:`` section; every field defaults to the shipped value sets.

    ``categories`` lists the enabled categories (default: every shipped one); value
    sets and drug lists of a category not listed are ignored. Security labels and
    confidentiality codes always count: they are the EHR's own explicit marking.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: tuple[str, ...] | None = None
    confidentiality_codes: tuple[str, ...] = Field(
        default_factory=lambda: tuple(_shipped()["confidentiality_codes"])
    )
    security_labels: tuple[str, ...] = Field(
        default_factory=lambda: tuple(_shipped()["security_labels"])
    )
    security_label_categories: dict[str, str] = Field(
        default_factory=lambda: dict(_shipped()["security_label_categories"])
    )
    value_sets: dict[str, SensitiveValueSet] = Field(default_factory=_shipped_value_sets)
    extra_value_sets: dict[str, SensitiveValueSet] = Field(default_factory=dict)
    drug_lists: dict[str, DrugList] = Field(default_factory=_shipped_drug_lists)
    extra_drug_lists: dict[str, DrugList] = Field(default_factory=dict)
    revealing_locations: RevealingLocations = Field(default_factory=RevealingLocations)

    _compiled: _Compiled = PrivateAttr()

    @model_validator(mode="after")
    def _categories_are_known(self) -> PrivacyPolicy:
        if self.categories is not None:
            unknown = sorted(set(self.categories) - self.known_categories())
            if unknown:
                raise ValueError(f"unknown privacy categories: {', '.join(unknown)}")
        return self

    def known_categories(self) -> frozenset[str]:
        """Every category a value set, drug list or security label can point to."""
        return frozenset(
            {
                *self.value_sets,
                *self.extra_value_sets,
                *(item.category for item in self.drug_lists.values()),
                *(item.category for item in self.extra_drug_lists.values()),
                *self.security_label_categories.values(),
            }
        )

    def enabled_categories(self) -> frozenset[str]:
        """The categories detection looks for."""
        if self.categories is None:
            return self.known_categories()
        return frozenset(self.categories)

    def model_post_init(self, context: Any, /) -> None:
        """Pre-compile everything once; classification runs for every planned message.

        One regular expression per category (its patterns as one alternation, anchored
        at a word start: ``psychiatr`` matches "Psychiatry" but ``hiv\\b`` is needed so
        "hives" does not match) and one per drug list (whole words), each behind one
        expression for all categories and one for all drug lists, so text that matches
        nothing - most text - is scanned twice. Patterns are accent-folded and
        lower-cased like the text they run on (case-insensitive matching is several times
        slower) and their literal prefixes are factored into a trie.
        """
        enabled = self.enabled_categories()
        exact: dict[tuple[str, str], str] = {}
        prefixes: dict[str, list[tuple[str, str]]] = {}
        category_patterns: dict[str, list[str]] = {}
        for name, value_set in {**self.value_sets, **self.extra_value_sets}.items():
            if name not in enabled:
                continue
            for system, codes in value_set.codes.items():
                canonical = _SYSTEM_ALIASES.get(system, system)
                for code in codes:
                    if code.endswith("*"):
                        prefixes.setdefault(canonical, []).append((code[:-1], name))
                    else:
                        exact.setdefault((canonical, code), name)
            if value_set.text:
                category_patterns.setdefault(name, []).extend(value_set.text)
        drug_names: dict[str, tuple[str, list[str]]] = {}
        for drug_list in {**self.drug_lists, **self.extra_drug_lists}.values():
            if drug_list.category not in enabled:
                continue
            for code in drug_list.rxnorm_codes():
                exact.setdefault((RXNORM, code), drug_list.category)
            names = [n for n in drug_list.names() if _name_tokens(n)]
            if names:
                drug_names[drug_list.name] = (drug_list.category, names)
        all_patterns = [p for patterns in category_patterns.values() for p in patterns]
        all_names = [n for _, names in drug_names.values() for n in names]
        text = _TextIndex(
            any_category=_category_regex(all_patterns) if all_patterns else None,
            categories=tuple(
                (name, _category_regex(patterns)) for name, patterns in category_patterns.items()
            ),
            any_drug=_drug_regex(all_names) if all_names else None,
            drugs=tuple(
                (name, category, _drug_regex(names))
                for name, (category, names) in drug_names.items()
            ),
        )
        location_patterns = self.revealing_locations.name_patterns
        self._compiled = _Compiled(
            exact=exact,
            prefixes={system: tuple(items) for system, items in prefixes.items()},
            text=text,
            confidentiality_codes=frozenset(self.confidentiality_codes),
            security_labels=frozenset(self.security_labels),
            label_categories={
                label: category
                for label, category in self.security_label_categories.items()
                if category in enabled
            },
            location_ids=tuple(self.revealing_locations.ids),
            location_id_set=frozenset(self.revealing_locations.ids),
            location_names=(
                re.compile("|".join(f"(?:{p})" for p in location_patterns), re.IGNORECASE)
                if location_patterns
                else None
            ),
        )

    def code_category(self, system: str, code: str) -> str | None:
        """The sensitive category a coding belongs to, if any."""
        return self._compiled.code_category(system, code)

    def text_category(self, text: str) -> str | None:
        """The sensitive category a piece of free text points to, if any."""
        return next((category for _, category in self.text_reasons(fold(text))), None)

    def text_reasons(self, folded: str) -> Iterator[tuple[str, str]]:
        """``(reason, category)`` for every category and drug list ``folded`` text hits."""
        return self._compiled.text.reasons(folded)

    def label_category(self, code: str) -> str | None:
        """The enabled category a security label points to, if any."""
        return self._compiled.label_categories.get(code)

    def name_is_revealing(self, name: str) -> bool:
        """True when a location name discloses the kind of care given there."""
        return self._compiled.name_is_revealing(name)

    def id_is_revealing(self, reference: str) -> bool:
        """True for a configured revealing Location (``Location/12`` or bare ``12``)."""
        return self._compiled.id_is_revealing(reference)

    def compiled(self) -> _Compiled:
        """The pre-compiled form classification reads.

        Read from pydantic's private-attribute slot: ``self._compiled`` goes through
        ``BaseModel.__getattr__``, which costs microseconds on every planned message.
        """
        private = self.__pydantic_private__
        if private is None:
            return self._compiled
        compiled: _Compiled = private["_compiled"]
        return compiled


@dataclass(frozen=True)
class Sensitivity:
    """Whether resources concern sensitive care; ``reasons`` are codes, never text.

    ``categories`` names the categories that matched (for per-category policies);
    a sensitive result may have none (a confidentiality code, an unreadable input).
    """

    sensitive: bool
    reasons: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


def _short(system: str) -> str:
    canonical = _SYSTEM_ALIASES.get(system, system)
    if canonical.startswith(_THO_PREFIX):
        return canonical[len(_THO_PREFIX) :]
    return _SYSTEM_SHORT_NAMES.get(canonical, canonical)


class _Findings:
    """Reasons in first-seen order, each with the category it points to (if any)."""

    def __init__(self) -> None:
        self.reasons: dict[str, None] = {}
        self.categories: dict[str, None] = {}

    def add(self, reason: str, category: str | None = None) -> None:
        self.reasons.setdefault(reason)
        if category is not None:
            self.categories.setdefault(category)


class _Recorder:
    """Findings as the sequence of ``add`` calls, to replay into a :class:`_Findings`."""

    def __init__(self) -> None:
        self.added: list[tuple[str, str | None]] = []

    def add(self, reason: str, category: str | None = None) -> None:
        self.added.append((reason, category))


@dataclass(frozen=True)
class ResourceFindings:
    """What one resource contributes on its own: its findings and its free text."""

    added: tuple[tuple[str, str | None], ...]
    texts: tuple[str, ...]


def _security(
    resource: Mapping[str, Any], compiled: _Compiled, found: _Findings | _Recorder
) -> None:
    meta = resource.get("meta")
    if not isinstance(meta, (dict, Mapping)):
        return
    labels = meta.get("security")
    for label in labels if isinstance(labels, list) else ():
        if not isinstance(label, (dict, Mapping)):
            continue
        system, code = label.get("system"), label.get("code")
        if not isinstance(code, str):
            continue
        if system in _CONFIDENTIALITY_SYSTEMS and code in compiled.confidentiality_codes:
            found.add(f"confidentiality:{code}")
        elif system in _ACT_CODE_SYSTEMS and code in compiled.security_labels:
            found.add(f"security-label:{code}", compiled.label_categories.get(code))


def _location_reason(reference: Mapping[str, Any], compiled: _Compiled) -> str | None:
    target = reference.get("reference")
    if not isinstance(target, str) or "Location/" not in target:
        return None
    display = reference.get("display")
    if compiled.id_is_revealing(target) or (
        isinstance(display, str) and compiled.name_is_revealing(display)
    ):
        return f"location:{target.rsplit('/', 1)[-1]}"
    return None


def _walk(node: Any, compiled: _Compiled, found: _Findings | _Recorder, texts: list[str]) -> None:
    """Collect coded and labelled findings, and every free-text string into ``texts``.

    Parsed JSON is dicts and lists, checked first; other mappings and sequences of
    mappings are read too (``isinstance`` against the ABCs is much slower).
    """
    if isinstance(node, list):
        for item in node:
            if isinstance(item, str):
                texts.append(item)
            else:
                _walk(item, compiled, found, texts)
        return
    if not isinstance(node, (dict, Mapping)):
        return
    if "resourceType" in node:
        _security(node, compiled, found)
    code = node.get("code")
    if isinstance(code, str):
        system = node.get("system")
        if isinstance(system, str) and (category := compiled.code_category(system, code)):
            found.add(f"code:{_short(system)}:{code}", category)
    if "reference" in node and (reason := _location_reason(node, compiled)) is not None:
        found.add(reason)
    for key, value in node.items():
        if key in _NON_TEXT_KEYS:
            continue
        if isinstance(value, str):
            texts.append(narrative_text(value) if key == "div" else value)
        elif isinstance(value, (dict, list, Mapping)):
            _walk(value, compiled, found, texts)


def _location_resource_reason(resource: Mapping[str, Any], compiled: _Compiled) -> str | None:
    identity = str(resource.get("id", ""))
    aliases = resource.get("alias")
    if not isinstance(aliases, list):  # malformed: a lone string is still read as a name
        aliases = [aliases]
    names = [resource.get("name"), *aliases]
    if (identity and compiled.id_is_revealing(identity)) or any(
        isinstance(name, str) and compiled.name_is_revealing(name) for name in names
    ):
        return f"location:{identity or '?'}"
    return None


def _identifies(concept: Any) -> bool:
    """True when a CodeableConcept names something: a coded coding or any text."""
    if not isinstance(concept, (dict, Mapping)):
        return False
    text = concept.get("text")
    if isinstance(text, str) and text.strip():
        return True
    for coding in concept.get("coding") or ():
        if not isinstance(coding, (dict, Mapping)):
            continue
        for field in ("code", "display"):
            value = coding.get(field)
            if isinstance(value, str) and value.strip():
                return True
    return False


def _medication_identified(medication: Mapping[str, Any]) -> bool:
    if _identifies(medication.get("code")):
        return True
    for ingredient in medication.get("ingredient") or ():
        if isinstance(ingredient, (dict, Mapping)) and _identifies(
            ingredient.get("itemCodeableConcept")
        ):
            return True
    return False


def _medication_known(order: Mapping[str, Any], given: Sequence[Any]) -> bool:
    """Whether an order's medication can be identified from what we were given."""
    if _identifies(order.get("medicationCodeableConcept")):
        return True
    reference = order.get("medicationReference")
    if not isinstance(reference, (dict, Mapping)):
        return False
    display = reference.get("display")
    if isinstance(display, str) and display.strip():
        return True
    target = reference.get("reference")
    if not isinstance(target, str) or not target:
        return False
    if target.startswith("#"):
        candidates: Sequence[Any] = order.get("contained") or ()
        wanted = target[1:]
    else:
        candidates = given
        wanted = target.rsplit("/", 1)[-1]
        if "Medication/" not in target:
            return False
    return any(
        isinstance(item, (dict, Mapping))
        and item.get("resourceType") == "Medication"
        and item.get("id") == wanted
        and _medication_identified(item)
        for item in candidates
    )


def _resource_findings(
    resource: Mapping[str, Any], compiled: _Compiled, found: _Findings | _Recorder, texts: list[str]
) -> None:
    """One resource's own findings (a revealing Location, codes, labels) and free text."""
    if resource.get("resourceType") == "Location":
        location_reason = _location_resource_reason(resource, compiled)
        if location_reason is not None:
            found.add(location_reason)
    try:
        _walk(resource, compiled, found, texts)
    except RecursionError:
        found.add(REASON_UNPARSEABLE)


def _shared_findings(
    resource: Mapping[str, Any], compiled: _Compiled, key: bytes | None
) -> ResourceFindings:
    """A shared resource's findings, worked out once per content (see :mod:`rules.memo`);
    ``key`` is its :func:`rules.memo.content_key`."""
    if key is not None and (known := compiled.verdicts.get(key)) is not None:
        return known
    recorder = _Recorder()
    texts: list[str] = []
    _resource_findings(resource, compiled, recorder, texts)
    result = ResourceFindings(tuple(recorder.added), tuple(texts))
    return result if key is None else compiled.verdicts.put(key, result)


def shared_findings(
    resource: Mapping[str, Any], policy: PrivacyPolicy, key: bytes | None
) -> ResourceFindings:
    """What a shared resource (a Location, Practitioner...) contributes on its own,
    remembered by ``key``, its :func:`rules.memo.content_key` (``None``: not remembered)."""
    return _shared_findings(resource, policy.compiled(), key)


def _walk_and_follow(
    node: Any,
    compiled: _Compiled,
    found: _Recorder,
    texts: list[str],
    references: dict[str, None],
) -> None:
    """:func:`_walk` and :func:`rules.snapshot.collect_references` in one pass.

    Both visit the same nodes in the same order, except under keys one of them skips:
    below a machine-data key (``identifier``, a period...) only references are collected,
    below ``text`` only free text, below ``meta`` neither (``_security`` reads it).
    """
    if isinstance(node, list):
        for item in node:
            if isinstance(item, str):
                texts.append(item)
            else:
                _walk_and_follow(item, compiled, found, texts, references)
        return
    if not isinstance(node, (dict, Mapping)):
        return
    if "resourceType" in node:
        _security(node, compiled, found)
    code = node.get("code")
    if isinstance(code, str):
        system = node.get("system")
        if isinstance(system, str) and (category := compiled.code_category(system, code)):
            found.add(f"code:{_short(system)}:{code}", category)
    target = node.get("reference")
    if isinstance(target, str):
        if "Location/" in target and (reason := _location_reason(node, compiled)) is not None:
            found.add(reason)
        if (relative := relative_reference(target)) is not None:
            references.setdefault(relative)
    for key, value in node.items():
        if isinstance(value, str):
            if key not in _NON_TEXT_KEYS:
                texts.append(narrative_text(value) if key == "div" else value)
        elif key in _NON_TEXT_KEYS:
            if key != "meta":
                collect_references(value, references)
        elif key == "text":
            if isinstance(value, (dict, list, Mapping)):
                _walk(value, compiled, found, texts)
        elif isinstance(value, (dict, list, Mapping)):
            _walk_and_follow(value, compiled, found, texts, references)


def read_resource(
    resource: Mapping[str, Any], policy: PrivacyPolicy
) -> tuple[ResourceFindings, list[str]] | None:
    """One walk for what planning reads in a resource: what it contributes to
    :func:`classify_sensitivity` on its own, and its references (as
    :func:`rules.snapshot.references_of` lists them).

    ``None`` when the resource cannot be walked (too deeply nested); the caller then
    asks each question separately, which decides such input as before.
    """
    compiled = policy.compiled()
    recorder = _Recorder()
    texts: list[str] = []
    references: dict[str, None] = {}
    if resource.get("resourceType") == "Location":
        location_reason = _location_resource_reason(resource, compiled)
        if location_reason is not None:
            recorder.add(location_reason)
    try:
        _walk_and_follow(resource, compiled, recorder, texts, references)
    except RecursionError:
        return None
    return ResourceFindings(tuple(recorder.added), tuple(texts)), list(references)


FindingsOf = Callable[[Mapping[str, Any]], ResourceFindings | None]


def classify_sensitivity(
    resources: Sequence[Any], policy: PrivacyPolicy, findings_of: FindingsOf | None = None
) -> Sensitivity:
    """Decide whether outreach about ``resources`` must use the neutral wording.

    ``resources`` are the resources a message is about plus those they reference
    (Location, HealthcareService, Practitioner, PractitionerRole, Organization,
    Medication). Unreadable input counts as sensitive. ``findings_of`` may supply what
    a resource contributes on its own, already worked out (:func:`read_resource`,
    :func:`shared_findings`); ``None`` from it means "read it here".
    """
    compiled = policy.compiled()
    if findings_of is not None:
        known = _verdict_of_findings(resources, compiled, findings_of)
        if known is not None:
            return known
    return _classify(resources, compiled, findings_of)


def _verdict_of_findings(
    resources: Sequence[Any], compiled: _Compiled, findings_of: FindingsOf
) -> Sensitivity | None:
    """The verdict remembered for the same findings in the same order, when every
    resource's own findings are known and none is a medication order (whose verdict also
    depends on the others); ``None`` otherwise."""
    key: list[tuple[Any, ...]] = []
    for resource in resources:
        if not isinstance(resource, (dict, Mapping)):
            return None
        if resource.get("resourceType") in _MEDICATION_ORDERS:
            return None
        own = findings_of(resource)
        if own is None:
            return None
        key.append(own.added)
        key.append(own.texts)
    memo_key = tuple(key)
    found = compiled.verdicts_of_findings.get(memo_key)
    if found is None:
        found = compiled.verdicts_of_findings.put(
            memo_key, _classify(resources, compiled, findings_of)
        )
    return found


def _classify(
    resources: Sequence[Any], compiled: _Compiled, findings_of: FindingsOf | None
) -> Sensitivity:
    found = _Findings()
    texts: list[str] = []
    for resource in resources:
        if not isinstance(resource, (dict, Mapping)):
            found.add(REASON_UNPARSEABLE)
            continue
        resource_type = resource.get("resourceType")
        if resource_type in _MEDICATION_ORDERS and not _medication_known(resource, resources):
            found.add(REASON_MEDICATION_UNKNOWN)
        own = findings_of(resource) if findings_of is not None else None
        if own is None and resource_type in _SHARED_TYPES:
            own = _shared_findings(resource, compiled, content_key(resource))
        if own is None:
            _resource_findings(resource, compiled, found, texts)
            continue
        for reason, category in own.added:
            found.add(reason, category)
        texts.extend(own.texts)
    if texts:
        for reason, category in compiled.text_reasons("\n".join(texts)):
            found.add(reason, category)
    return Sensitivity(
        sensitive=bool(found.reasons),
        reasons=tuple(found.reasons),
        categories=tuple(found.categories),
    )


def location_display(location: Mapping[str, Any] | None, policy: PrivacyPolicy) -> str | None:
    """The Location name safe to show in a message, or ``None`` (unknown or revealing)."""
    if not location:
        return None
    name = location.get("name")
    if not isinstance(name, str) or not name.strip():
        return None
    if classify_sensitivity([location], policy).sensitive:
        return None
    return name.strip()
