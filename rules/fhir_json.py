"""Small, forgiving readers for raw R4 JSON.

EHRs send partial resources all the time; the rules must degrade to "not enough
information" rather than crash, so every helper here returns ``None`` when a
field is missing or malformed instead of raising.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

TIMEZONE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"


def ref_of(resource: Mapping[str, Any]) -> str:
    """Return the relative reference (``Type/id``) the pipeline uses as identity."""
    return f"{resource.get('resourceType', '?')}/{resource.get('id', '?')}"


def parse_instant(value: Any) -> datetime | None:
    """Parse an R4 ``dateTime``/``instant`` to an aware UTC datetime.

    Date-only or zone-less values cannot be placed on a timeline safely, so they
    return ``None``; use :func:`parse_date` for those.
    """
    if not isinstance(value, str) or "T" not in value:
        return None
    return _parse_instant(value)


@lru_cache(maxsize=4096)
def _parse_instant(value: str) -> datetime | None:
    """:func:`parse_instant` once per distinct text (a day's appointments start at a few
    hundred instants; the result is immutable)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def parse_date(value: Any) -> date | None:
    """Parse the date part of an R4 ``date``/``dateTime`` (full dates only)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def codes_of(concept: Any) -> set[tuple[str, str]]:
    """All ``(system, code)`` pairs in a CodeableConcept or a bare Coding."""
    if not isinstance(concept, (dict, Mapping)):
        return set()
    codings = concept.get("coding")
    if codings is None and "code" in concept:
        codings = [concept]
    result: set[tuple[str, str]] = set()
    for coding in codings or ():
        if isinstance(coding, (dict, Mapping)) and isinstance(coding.get("code"), str):
            result.add((str(coding.get("system", "")), coding["code"]))
    return result


def bare_codes(concepts: Iterable[Any]) -> set[str]:
    """Codes without their systems, for config lists that name codes only."""
    return {code for concept in concepts for _system, code in codes_of(concept)}


def extension_value(resource: Mapping[str, Any] | None, url: str) -> Any:
    """The ``value[x]`` of the first extension with ``url``, or ``None``."""
    if not resource:
        return None
    for extension in resource.get("extension") or ():
        if isinstance(extension, (dict, Mapping)) and extension.get("url") == url:
            for key, value in extension.items():
                if key.startswith("value"):
                    return value
    return None


def reference_of(value: Any) -> str | None:
    """The ``reference`` string of a Reference, if any."""
    if isinstance(value, (dict, Mapping)) and isinstance(value.get("reference"), str):
        return str(value["reference"])
    return None


def same_reference(reference: str | None, target: str) -> bool:
    """Compare references tolerant of absolute URLs (``https://ehr/fhir/Patient/9``)."""
    if not reference:
        return False
    return reference == target or reference.endswith("/" + target)


def first_name(patient: Mapping[str, Any] | None) -> str:
    """The name the patient is addressed by: ``usual`` over ``official``, else any."""
    if not patient:
        return ""
    names = [n for n in patient.get("name") or () if isinstance(n, (dict, Mapping))]
    for wanted in ("usual", "official", None):
        for name in names:
            if wanted is not None and name.get("use") != wanted:
                continue
            given = name.get("given") or ()
            if given and isinstance(given[0], str):
                return given[0]
    return ""


def preferred_language(patient: Mapping[str, Any] | None) -> str | None:
    """The base language tag (``es`` for ``es-MX``) the patient prefers, if stated.

    Kept for older callers; it does not know what is supported. New code should call
    :func:`rules.language.preferred_language`, which also returns the source and a note.
    """
    from rules.language import stated_languages  # local: keeps this module dependency-free

    for stated in stated_languages(patient):
        if stated.base is not None:
            return stated.base
    return None


def is_deceased(patient: Mapping[str, Any] | None) -> bool:
    """True when the Patient says so via ``deceasedBoolean`` or ``deceasedDateTime``."""
    if not patient:
        return False
    return patient.get("deceasedBoolean") is True or bool(patient.get("deceasedDateTime"))
