"""Minimum necessary: spot sensitive care so outreach can say less about it.

An SMS preview on a lock screen is read by whoever holds the phone. When an
appointment, prescription or stay concerns mental health, substance use,
HIV/STI, reproductive or sexual health or genetic testing, the message must not
name the specialty, reason, medication or a revealing clinic name. This module
only *detects*; templates decide what a neutral message looks like.

Detection uses, per resource: ``meta.security`` (v3-Confidentiality R/V and
v3-ActCode sensitivity labels), every coding anywhere in the resource (so
Appointment.serviceType/specialty/appointmentType/reasonCode, MedicationRequest
medication, Encounter type/serviceType/reasonCode and contained Medications are
all covered) matched against configurable value sets, the display/text of those
codings and of references (medication names often arrive only as text), and
revealing Locations (by id or name pattern). Reasons are coded, never text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

SHIPPED_VALUE_SETS: Final = Path(__file__).with_name("valuesets") / "sensitive.yaml"

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
    "urn:oid:2.16.840.1.113883.6.88": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "urn:oid:2.16.840.1.113883.6.1": "http://loinc.org",
    "urn:oid:2.16.840.1.113883.6.101": "http://nucc.org/provider-taxonomy",
}
_SYSTEM_SHORT_NAMES: Final = {
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://loinc.org": "loinc",
    "http://nucc.org/provider-taxonomy": "nucc",
}
_THO_PREFIX: Final = "http://terminology.hl7.org/CodeSystem/"
_SKIPPED_KEYS: Final = frozenset({"meta", "text", "note"})


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


@dataclass(frozen=True)
class _CodeIndex:
    exact: Mapping[tuple[str, str], str]
    prefixes: Mapping[str, tuple[tuple[str, str], ...]]
    text: tuple[tuple[re.Pattern[str], str], ...]


class PrivacyPolicy(BaseModel):
    """The ``privacy:`` section; every field defaults to the shipped value sets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confidentiality_codes: tuple[str, ...] = Field(
        default_factory=lambda: tuple(_shipped()["confidentiality_codes"])
    )
    security_labels: tuple[str, ...] = Field(
        default_factory=lambda: tuple(_shipped()["security_labels"])
    )
    value_sets: dict[str, SensitiveValueSet] = Field(default_factory=_shipped_value_sets)
    extra_value_sets: dict[str, SensitiveValueSet] = Field(default_factory=dict)
    revealing_locations: RevealingLocations = Field(default_factory=RevealingLocations)

    _index: _CodeIndex = PrivateAttr()
    _location_patterns: tuple[re.Pattern[str], ...] = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        """Pre-compile the value sets once; classification runs for every planned message.

        Text patterns are anchored at a word start (``psychiatr`` matches
        "Psychiatry" but ``hiv\\b`` is needed so "hives" does not match "hiv").
        """
        exact: dict[tuple[str, str], str] = {}
        prefixes: dict[str, list[tuple[str, str]]] = {}
        text: list[tuple[re.Pattern[str], str]] = []
        for name, value_set in {**self.value_sets, **self.extra_value_sets}.items():
            for system, codes in value_set.codes.items():
                canonical = _SYSTEM_ALIASES.get(system, system)
                for code in codes:
                    if code.endswith("*"):
                        prefixes.setdefault(canonical, []).append((code[:-1], name))
                    else:
                        exact[(canonical, code)] = name
            text.extend((re.compile(r"\b" + p, re.IGNORECASE), name) for p in value_set.text)
        self._index = _CodeIndex(
            exact=exact,
            prefixes={system: tuple(items) for system, items in prefixes.items()},
            text=tuple(text),
        )
        self._location_patterns = tuple(
            re.compile(pattern, re.IGNORECASE) for pattern in self.revealing_locations.name_patterns
        )

    def code_category(self, system: str, code: str) -> str | None:
        """The sensitive category a coding belongs to, if any."""
        canonical = _SYSTEM_ALIASES.get(system, system)
        found = self._index.exact.get((canonical, code))
        if found is not None:
            return found
        for prefix, name in self._index.prefixes.get(canonical, ()):
            if code.startswith(prefix):
                return name
        return None

    def text_category(self, text: str) -> str | None:
        """The sensitive category a display text or medication name points to, if any."""
        for pattern, name in self._index.text:
            if pattern.search(text):
                return name
        return None

    def name_is_revealing(self, name: str) -> bool:
        """True when a location name discloses the kind of care given there."""
        return any(pattern.search(name) for pattern in self._location_patterns)

    def id_is_revealing(self, reference: str) -> bool:
        """True for a configured revealing Location (``Location/12`` or bare ``12``)."""
        bare = reference.rsplit("Location/", 1)[-1]
        return any(
            item in (reference, bare, f"Location/{bare}") for item in self.revealing_locations.ids
        )


@dataclass(frozen=True)
class Sensitivity:
    """Whether resources concern sensitive care; ``reasons`` are codes, never text."""

    sensitive: bool
    reasons: tuple[str, ...] = ()


def _short(system: str) -> str:
    canonical = _SYSTEM_ALIASES.get(system, system)
    if canonical.startswith(_THO_PREFIX):
        return canonical[len(_THO_PREFIX) :]
    return _SYSTEM_SHORT_NAMES.get(canonical, canonical)


def _security_reasons(resource: Mapping[str, Any], policy: PrivacyPolicy) -> Iterator[str]:
    meta = resource.get("meta")
    if not isinstance(meta, Mapping):
        return
    for label in meta.get("security") or ():
        if not isinstance(label, Mapping):
            continue
        system, code = label.get("system"), label.get("code")
        if system in _CONFIDENTIALITY_SYSTEMS and code in policy.confidentiality_codes:
            yield f"confidentiality:{code}"
        elif system in _ACT_CODE_SYSTEMS and code in policy.security_labels:
            yield f"security-label:{code}"


def _location_reason(reference: Mapping[str, Any], policy: PrivacyPolicy) -> str | None:
    target = reference.get("reference")
    display = reference.get("display")
    is_location = isinstance(target, str) and "Location/" in target
    if is_location and policy.id_is_revealing(str(target)):
        return f"location:{str(target).rsplit('/', 1)[-1]}"
    if is_location and isinstance(display, str) and policy.name_is_revealing(display):
        return f"location:{str(target).rsplit('/', 1)[-1]}"
    return None


def _walk(node: Any, policy: PrivacyPolicy) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, policy)
        return
    if not isinstance(node, Mapping):
        return
    if "resourceType" in node:
        yield from _security_reasons(node, policy)
    system, code = node.get("system"), node.get("code")
    if isinstance(system, str) and isinstance(code, str) and policy.code_category(system, code):
        yield f"code:{_short(system)}:{code}"
    texts = [node.get("display"), node.get("text")]
    for text in texts:
        if isinstance(text, str) and (category := policy.text_category(text)):
            yield f"text:{category}"
    if ("reference" in node or "display" in node) and (
        reason := _location_reason(node, policy)
    ) is not None:
        yield reason
    for key, value in node.items():
        if key not in _SKIPPED_KEYS:
            yield from _walk(value, policy)


def _location_resource_reason(resource: Mapping[str, Any], policy: PrivacyPolicy) -> str | None:
    identity = str(resource.get("id", ""))
    names = [resource.get("name"), *(resource.get("alias") or ())]
    if (identity and policy.id_is_revealing(identity)) or any(
        isinstance(name, str) and policy.name_is_revealing(name) for name in names
    ):
        return f"location:{identity or '?'}"
    return None


def classify_sensitivity(
    resources: Sequence[Mapping[str, Any]], policy: PrivacyPolicy
) -> Sensitivity:
    """Decide whether outreach about ``resources`` must use the neutral wording."""
    reasons: list[str] = []
    for resource in resources:
        if not isinstance(resource, Mapping):
            continue
        found = list(_security_reasons(resource, policy))
        if resource.get("resourceType") == "Location":
            location_reason = _location_resource_reason(resource, policy)
            if location_reason is not None:
                found.append(location_reason)
        found.extend(_walk(resource, policy))
        reasons.extend(reason for reason in found if reason not in reasons)
    return Sensitivity(sensitive=bool(reasons), reasons=tuple(reasons))


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
