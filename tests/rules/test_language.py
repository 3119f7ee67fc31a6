"""The language of a patient's messages, from Patient.communication as EHRs fill it."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from rules.fhir_json import preferred_language as legacy_preferred_language
from rules.language import LanguageDecision, lookup, preferred_language

SUPPORTED = ["en", "es"]
BCP47 = "urn:ietf:bcp:47"
EPIC_LANGUAGE = "urn:oid:1.2.840.114350.1.13.0.1.7.10.698084.1"


def entry(
    code: str | None = None,
    *,
    system: str | None = BCP47,
    display: str | None = None,
    text: str | None = None,
    preferred: bool | None = None,
) -> dict[str, Any]:
    """One Patient.communication entry."""
    language: dict[str, Any] = {}
    if code is not None or display is not None:
        coding = {"system": system, "code": code, "display": display}
        language["coding"] = [{k: v for k, v in coding.items() if v is not None}]
    if text is not None:
        language["text"] = text
    result: dict[str, Any] = {"language": language}
    if preferred is not None:
        result["preferred"] = preferred
    return result


def patient(*communication: dict[str, Any]) -> dict[str, Any]:
    """A strict-R4 Patient with the given communication entries."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "eXbMln3hu0PfFrpv2HgVHyg3",
        "meta": {"versionId": "7", "lastUpdated": "2026-11-20T14:03:11.000Z"},
        "active": True,
        "name": [{"use": "official", "family": "Nguyen", "given": ["Lan"]}],
        "telecom": [{"system": "phone", "value": "+1 617 555 0142", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1971-09-30",
    }
    if communication:
        resource["communication"] = list(communication)
    module = importlib.import_module("fhirclient.models.patient")
    module.Patient(resource, strict=True)
    return resource


def decide(resource: dict[str, Any] | None, default: str = "en") -> LanguageDecision:
    return preferred_language(resource, SUPPORTED, default)


@pytest.mark.parametrize(
    ("communication", "language"),
    [
        pytest.param([entry("es-MX", preferred=True)], "es", id="bcp47-region-falls-back"),
        pytest.param([entry("en-US", preferred=True)], "en", id="en-us"),
        pytest.param([entry("ES-mx", preferred=True)], "es", id="any-case"),
        pytest.param([entry("es_419", preferred=True)], "es", id="underscore-and-un-m49"),
        pytest.param([entry("es", preferred=True)], "es", id="bare-code"),
        pytest.param([entry("spa", preferred=True)], "es", id="iso-639-2-spa"),
        pytest.param([entry("eng", preferred=True)], "en", id="iso-639-2-eng"),
        pytest.param(
            [entry("spa", system="urn:iso:std:iso:639-2", preferred=True)],
            "es",
            id="iso-639-2-system",
        ),
        pytest.param(
            [entry("es-MX", system=None, display="Spanish (Mexico)", preferred=True)],
            "es",
            id="coding-without-system",
        ),
        pytest.param(
            [entry("8", system=EPIC_LANGUAGE, display="Spanish", preferred=True)],
            "es",
            id="local-code-read-by-display",
        ),
        pytest.param(
            [entry("SPA", system=EPIC_LANGUAGE, preferred=True)],
            "es",
            id="local-code-that-is-a-language-code",
        ),
    ],
)
def test_coded_preferred_language(communication: list[dict[str, Any]], language: str) -> None:
    decision = decide(patient(*communication))

    assert decision == LanguageDecision(language, "patient.communication.preferred", None)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param("Spanish", "es", id="spanish"),
        pytest.param("Español", "es", id="espanol-accented"),
        pytest.param("espanol", "es", id="espanol-plain"),
        pytest.param("ESPAÑOL", "es", id="espanol-upper"),
        pytest.param("castellano", "es", id="castellano"),
        pytest.param("Spanish (Mexico)", "es", id="spanish-with-region"),
        pytest.param("Spanish; Castilian", "es", id="iso-639-name"),
        pytest.param("English", "en", id="english"),
        pytest.param("Inglés", "en", id="ingles-accented"),
        pytest.param("ingles", "en", id="ingles-plain"),
        pytest.param("es-MX", "es", id="code-typed-as-text"),
    ],
)
def test_language_given_only_as_text(text: str, language: str) -> None:
    decision = decide(patient(entry(text=text, preferred=True)), default="en")

    assert (decision.language, decision.source) == (language, "patient.communication.preferred")


@pytest.mark.parametrize(
    ("language", "code"),
    [
        pytest.param(entry("vi", preferred=True), "vi", id="vietnamese-code"),
        pytest.param(entry(text="Vietnamese", preferred=True), "vi", id="vietnamese-text"),
        pytest.param(entry(text="Tiếng Việt", preferred=True), "vi", id="vietnamese-autonym"),
        pytest.param(entry(text="Chinese", preferred=True), "zh", id="chinese-text"),
        pytest.param(entry(text="中文", preferred=True), "zh", id="chinese-autonym"),
        pytest.param(entry(text="Cantonese", preferred=True), "yue", id="cantonese"),
        pytest.param(entry("zh-Hant-TW", preferred=True), "zh", id="traditional-chinese-tag"),
        pytest.param(entry("tgl", preferred=True), "fil", id="tagalog-normalised"),
        pytest.param(entry(text="Haitian Creole", preferred=True), "ht", id="haitian-creole"),
    ],
)
def test_unsupported_language_gets_the_default_with_a_note(
    language: dict[str, Any], code: str
) -> None:
    decision = decide(patient(language))

    assert decision == LanguageDecision("en", "default", f"unsupported:{code}")


def test_preferred_entry_wins_even_when_listed_second() -> None:
    decision = decide(patient(entry("en-US"), entry("es-MX", preferred=True)))

    assert decision == LanguageDecision("es", "patient.communication.preferred", None)


def test_without_a_preferred_flag_the_first_entry_wins() -> None:
    decision = decide(patient(entry(text="Spanish"), entry("en-US")))

    assert decision == LanguageDecision("es", "patient.communication", None)


def test_unsupported_preference_falls_to_another_stated_language() -> None:
    decision = decide(patient(entry("vi", preferred=True), entry("es")), default="en")

    assert decision == LanguageDecision("es", "patient.communication", "unsupported:vi")


def test_unrecognised_text_is_noted_without_echoing_it() -> None:
    decision = decide(patient(entry(text="see chart", preferred=True)))

    assert decision == LanguageDecision("en", "default", "unrecognized-language")


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("und", id="undetermined"),
        pytest.param("mul", id="multiple"),
        pytest.param("zxx", id="no-linguistic-content"),
        pytest.param("qaa", id="private-use"),
        pytest.param("xx", id="unassigned"),
    ],
)
def test_codes_that_name_no_language_are_unrecognised(code: str) -> None:
    decision = decide(patient(entry(code, preferred=True)))

    assert decision == LanguageDecision("en", "default", "unrecognized-language")


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(None, id="no-patient"),
        pytest.param({"resourceType": "Patient", "id": "p"}, id="no-communication"),
        pytest.param({"resourceType": "Patient", "communication": [{}]}, id="empty-entry"),
        pytest.param({"resourceType": "Patient", "communication": "es"}, id="malformed"),
    ],
)
def test_nothing_stated_is_the_default_without_a_note(resource: dict[str, Any] | None) -> None:
    assert decide(resource, default="es") == LanguageDecision("es", "default", None)


def test_default_is_spanish_when_configured_so() -> None:
    decision = decide(patient(entry(text="Vietnamese", preferred=True)), default="es")

    assert decision == LanguageDecision("es", "default", "unsupported:vi")


@pytest.mark.parametrize(
    ("tag", "supported", "expected"),
    [
        pytest.param("es-MX", ["en", "es"], "es", id="region-to-base"),
        pytest.param("es-MX", ["en", "es-MX", "es"], "es-MX", id="exact-region-first"),
        pytest.param("zh-Hant-TW", ["en", "zh-Hant"], "zh-Hant", id="script-kept"),
        pytest.param("pt-BR", ["en", "es"], None, id="no-match"),
    ],
)
def test_lookup_truncates_tags_per_rfc_4647(
    tag: str, supported: list[str], expected: str | None
) -> None:
    assert lookup(tag, supported) == expected


def test_legacy_reader_understands_text_too() -> None:
    assert legacy_preferred_language(patient(entry(text="Español", preferred=True))) == "es"
    assert legacy_preferred_language(patient(entry("es-MX", preferred=True))) == "es"
    assert legacy_preferred_language(None) is None
