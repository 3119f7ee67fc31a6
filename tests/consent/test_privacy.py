"""Specification of minimum-necessary detection (``classify_sensitivity``, ``location_display``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from rules.privacy import PrivacyPolicy, classify_sensitivity, location_display
from tests.consent.fhir_fixtures import load

SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
BHC = "location:e4W4rmGe9QzuGm2Dy4NBqVc0.3-bhc"
EPIC_SPECIALTY = "urn:oid:1.2.840.114350.1.13.0.1.7.10.688867.4160"


def _appointment_with(**changes: Any) -> dict[str, Any]:
    appointment = load("appointment-annual-physical")
    appointment.update(changes)
    return appointment


def _labelled(system: str, code: str) -> dict[str, Any]:
    resource = load("medicationrequest-lisinopril")
    resource["meta"]["security"] = [{"system": system, "code": code}]
    return resource


CASES = [
    pytest.param(
        load("appointment-psychiatry-followup"),
        {
            "code:snomed:394913002",
            "code:snomed:394587001",
            "code:snomed:370143000",
            "text:mental-health",
            BHC,
        },
        id="psychiatry-appointment-specialty-reason-and-location",
    ),
    pytest.param(load("appointment-annual-physical"), set(), id="annual-physical-not-sensitive"),
    pytest.param(
        load("medicationrequest-buprenorphine-naloxone"),
        {"code:rxnorm:1010604", "drug:opioid-use-disorder"},
        id="buprenorphine-naloxone-film",
    ),
    pytest.param(
        load("medicationrequest-prep-contained"),
        {"code:rxnorm:476556", "code:icd10cm:Z20.6", "text:hiv-sti", "drug:hiv"},
        id="prep-in-contained-medication",
    ),
    pytest.param(load("medicationrequest-lisinopril"), set(), id="lisinopril-not-sensitive"),
    pytest.param(
        load("encounter-inpatient-restricted"),
        {"confidentiality:R", "security-label:ETH", "code:icd10cm:F10.239", "text:substance-use"},
        id="restricted-encounter-labels-and-icd10-prefix",
    ),
    pytest.param(
        load("location-behavioral-health-center"),
        {BHC, "code:v3-RoleCode:PSYCHF", "text:mental-health"},
        id="revealing-location-resource",
    ),
    pytest.param(load("location-family-medicine"), set(), id="ordinary-location-resource"),
    pytest.param(
        _labelled("http://terminology.hl7.org/CodeSystem/v3-ActCode", "HIV"),
        {"security-label:HIV"},
        id="hiv-security-label",
    ),
    pytest.param(
        _labelled("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "N"),
        set(),
        id="normal-confidentiality-not-sensitive",
    ),
    pytest.param(
        _labelled("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "V"),
        {"confidentiality:V"},
        id="very-restricted-confidentiality",
    ),
    pytest.param(
        _appointment_with(
            specialty=[
                {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.96", "code": "394580004"}]}
            ]
        ),
        {"code:snomed:394580004"},
        id="snomed-by-oid-genetics-specialty",
    ),
    pytest.param(
        _appointment_with(reasonCode=[{"text": "HIV screening"}]),
        {"text:hiv-sti"},
        id="uncoded-reason-text",
    ),
    pytest.param(
        _appointment_with(reasonCode=[{"text": "Hearing aids check"}]),
        set(),
        id="hearing-aids-is-not-aids",
    ),
    pytest.param(
        _appointment_with(reasonCode=[{"text": "Hives on both arms"}]),
        set(),
        id="hives-is-not-hiv",
    ),
    pytest.param(
        _appointment_with(reasonCode=[{"text": "Colonoscopy prep questions"}]),
        set(),
        id="colonoscopy-prep-is-not-prep",
    ),
    pytest.param(
        _appointment_with(
            reasonCode=[
                {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "Z30.011"}]}
            ]
        ),
        {"code:icd10cm:Z30.011"},
        id="contraceptive-management-icd10",
    ),
    pytest.param(
        _appointment_with(
            appointmentType={"coding": [{"system": SNOMED, "code": "386639001"}]},
        ),
        {"code:snomed:386639001"},
        id="termination-of-pregnancy",
    ),
]


@pytest.mark.parametrize(("resource", "reasons"), CASES)
def test_sensitivity_detection(resource: dict[str, Any], reasons: set[str]) -> None:
    result = classify_sensitivity([resource], PrivacyPolicy())
    assert (result.sensitive, set(result.reasons)) == (bool(reasons), reasons)


def test_security_label_on_contained_medication_counts() -> None:
    request = load("medicationrequest-lisinopril")
    request["contained"] = [
        {
            "resourceType": "Medication",
            "id": "m1",
            "meta": {"security": [{"system": ACT_CODE, "code": "SUD"}]},
        }
    ]
    assert classify_sensitivity([request], PrivacyPolicy()).reasons == ("security-label:SUD",)


def test_one_sensitive_resource_makes_the_message_sensitive() -> None:
    resources = [
        load("appointment-annual-physical"),
        load("medicationrequest-buprenorphine-naloxone"),
    ]
    assert classify_sensitivity(resources, PrivacyPolicy()).sensitive


def test_reasons_carry_no_display_text() -> None:
    reasons = classify_sensitivity(
        [load("appointment-psychiatry-followup")], PrivacyPolicy()
    ).reasons
    assert not any(
        word in " ".join(reasons).lower() for word in ("depress", "psychiatry", "harbor")
    )


def test_configured_location_id_is_revealing() -> None:
    policy = PrivacyPolicy.model_validate({"revealing_locations": {"ids": ["Location/loc-4412"]}})
    assert classify_sensitivity([load("appointment-annual-physical")], policy).reasons == (
        "location:loc-4412",
    )


def test_extra_value_sets_add_to_the_shipped_ones() -> None:
    policy = PrivacyPolicy.model_validate(
        {"extra_value_sets": {"bariatrics": {"codes": {EPIC_SPECIALTY: ["1047"]}}}}
    )
    appointment = _appointment_with(
        specialty=[{"coding": [{"system": EPIC_SPECIALTY, "code": "1047"}]}]
    )
    assert classify_sensitivity([appointment], policy).categories == ("bariatrics",)


def test_oncology_specialty_code_is_sensitive_by_default() -> None:
    appointment = _appointment_with(
        specialty=[{"coding": [{"system": SNOMED, "code": "394593009"}]}]
    )
    assert classify_sensitivity([appointment], PrivacyPolicy()).categories == ("oncology",)


def test_invalid_location_pattern_fails_at_load_time() -> None:
    with pytest.raises(ValidationError):
        PrivacyPolicy.model_validate({"revealing_locations": {"name_patterns": ["(unclosed"]}})


LOCATIONS = [
    pytest.param(
        load("location-family-medicine"), "Harbor Family Medicine - Dorchester", id="ordinary"
    ),
    pytest.param(load("location-behavioral-health-center"), None, id="revealing-name"),
    pytest.param({"resourceType": "Location", "id": "x1", "status": "active"}, None, id="no-name"),
    pytest.param(None, None, id="unknown-location"),
]


@pytest.mark.parametrize(("location", "expected"), LOCATIONS)
def test_location_display(location: dict[str, Any] | None, expected: str | None) -> None:
    assert location_display(location, PrivacyPolicy()) == expected


def test_location_display_hides_configured_location() -> None:
    policy = PrivacyPolicy.model_validate({"revealing_locations": {"ids": ["loc-4412"]}})
    assert location_display(load("location-family-medicine"), policy) is None


def test_shipped_defaults_cover_the_sensitive_categories() -> None:
    assert set(PrivacyPolicy().value_sets) == {
        "mental-health",
        "substance-use",
        "hiv-sti",
        "reproductive-sexual-health",
        "genetic-testing",
        "oncology",
        "gender-affirming-care",
        "violence-abuse",
    }
