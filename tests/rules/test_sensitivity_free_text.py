"""Sensitivity reads everything a human reading the record would, in English and Spanish.

Every free-text field of every resource a message is about (and of the resources it
references) is read, accent-folded and lower-cased, with word-start patterns; medicines are
recognised by ingredient and brand from dated, sourced drug lists. What cannot be read is
treated as sensitive. Reasons stay codes, never the text that matched.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rules.privacy import (
    REASON_MEDICATION_UNKNOWN,
    REASON_UNPARSEABLE,
    VALUE_SET_DIR,
    PrivacyPolicy,
    classify_sensitivity,
)

POLICY = PrivacyPolicy()
PATIENT = {"reference": "Patient/eXbMln3hu0PfFrpv2HgVHyg3", "display": "Gonzalez, Maria"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def _appointment(**fields: Any) -> dict[str, Any]:
    """A booked Epic appointment with an ordinary type; ``fields`` add free text."""
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": "eWLhfjXHp4RUczv2VLqhCGQ3",
        "meta": {"versionId": "2", "lastUpdated": "2026-11-20T09:12:40Z"},
        "status": "booked",
        "appointmentType": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"}
            ]
        },
        "start": "2026-12-01T15:30:00Z",
        "end": "2026-12-01T16:00:00Z",
        "participant": [
            {"actor": PATIENT, "status": "accepted"},
            {
                "actor": {
                    "reference": "Location/e4W4rmGe9QzuGm2Dy4NBqVc0",
                    "display": "Riverside Medical Office Building",
                },
                "status": "accepted",
            },
        ],
    }
    resource.update(fields)
    return resource


def _prescription(**fields: Any) -> dict[str, Any]:
    """An active outpatient order; ``fields`` give the medication and free text."""
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "eQ0Jm8Ljh6z1HcU1Vv7z8Nw3",
        "meta": {"versionId": "1", "lastUpdated": "2026-11-02T16:20:00Z"},
        "status": "active",
        "intent": "order",
        "subject": PATIENT,
        "authoredOn": "2026-11-02T16:18:00Z",
        "dispenseRequest": {"numberOfRepeatsAllowed": 2, "quantity": {"value": 30}},
    }
    resource.update(fields)
    return resource


def _stay(**fields: Any) -> dict[str, Any]:
    """A finished inpatient Encounter; ``fields`` add free text."""
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "eGmO0h.1.UQQrExl4bfM7OQ3",
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
        "subject": PATIENT,
        "period": {"start": "2026-11-17T08:10:00Z", "end": "2026-11-20T17:30:00Z"},
    }
    resource.update(fields)
    return resource


def _concept(text: str) -> dict[str, Any]:
    return {"text": text}


def _categories(*resources: Any, policy: PrivacyPolicy = POLICY) -> set[str]:
    return set(classify_sensitivity(list(resources), policy).categories)


FREE_TEXT = [
    pytest.param(
        _appointment(description="Follow-up with Dr. Patel, Psychiatry"),
        "mental-health",
        id="appointment-description",
    ),
    pytest.param(
        _appointment(comment="Pt requests female provider; bring PHQ-9, depression follow-up"),
        "mental-health",
        id="appointment-comment",
    ),
    pytest.param(
        _appointment(patientInstruction="Please arrive 15 minutes early to the Cancer Center"),
        "oncology",
        id="appointment-patient-instruction",
    ),
    pytest.param(
        _appointment(reasonCode=[_concept("Consulta de seguimiento en Psiquiatría")]),
        "mental-health",
        id="spanish-psiquiatria-with-accent",
    ),
    pytest.param(
        _appointment(serviceType=[_concept("Oncología médica")]),
        "oncology",
        id="spanish-oncologia-service-type",
    ),
    pytest.param(
        _appointment(description="Control de VIH y carga viral"),
        "hiv-sti",
        id="spanish-vih",
    ),
    pytest.param(
        _appointment(description="Sesión de quimioterapia, ciclo 3"),
        "oncology",
        id="spanish-quimioterapia",
    ),
    pytest.param(
        _appointment(description="Radiation therapy planning (simulation)"),
        "oncology",
        id="radiation-therapy",
    ),
    pytest.param(
        _appointment(specialty=[_concept("Hematology-Oncology")]),
        "oncology",
        id="hematology-oncology-specialty-text",
    ),
    pytest.param(
        _appointment(description="Tumour board review"),
        "oncology",
        id="british-tumour",
    ),
    pytest.param(
        _appointment(description="PrEP follow-up visit, labs due"),
        "hiv-sti",
        id="prep-follow-up",
    ),
    pytest.param(
        _appointment(description="Intake, Opioid Treatment Program"),
        "substance-use",
        id="opioid-treatment-program",
    ),
    pytest.param(
        _appointment(description="Consulta: trastorno por consumo de alcohol"),
        "substance-use",
        id="spanish-alcohol-use-disorder",
    ),
    pytest.param(
        _appointment(description="Hormone visit - gender-affirming care, labs"),
        "gender-affirming-care",
        id="gender-affirming-care",
    ),
    pytest.param(
        _appointment(comment="Patient disclosed she was seen by the rapist again last week"),
        "violence-abuse",
        id="the-rapist-as-two-words",
    ),
    pytest.param(
        _stay(hospitalization={"admitSource": _concept("Involuntary hold - W&I 5150")}),
        "mental-health",
        id="encounter-involuntary-hold",
    ),
    pytest.param(
        _stay(reasonCode=[_concept("Baker Act evaluation")]),
        "mental-health",
        id="encounter-baker-act",
    ),
    pytest.param(
        _stay(type=[_concept("Ingreso involuntario")]),
        "mental-health",
        id="encounter-ingreso-involuntario",
    ),
    pytest.param(
        _stay(
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>Admitted to '
                "<b>Adult Psych&nbsp;Unit</b> for <i>suicidal</i> ideation</p></div>",
            }
        ),
        "mental-health",
        id="narrative-with-tags-stripped",
    ),
    pytest.param(
        _prescription(
            medicationCodeableConcept=_concept("metoprolol succinate 25 mg"),
            note=[{"text": "Patient also on chemo - check CBC before refill"}],
        ),
        "oncology",
        id="medication-request-note",
    ),
    pytest.param(
        _prescription(
            medicationCodeableConcept=_concept("ondansetron 8 mg ODT"),
            dosageInstruction=[
                {"text": "Take 1 tablet 30 min before chemotherapy", "patientInstruction": "x"}
            ],
        ),
        "oncology",
        id="dosage-instruction-text",
    ),
]


@pytest.mark.parametrize(("resource", "category"), FREE_TEXT)
def test_free_text_anywhere_in_a_resource_is_read(resource: dict[str, Any], category: str) -> None:
    assert category in _categories(resource)


LOOK_ALIKES = [
    pytest.param(_appointment(description="Hives on both arms, allergy follow-up"), id="hives"),
    pytest.param(
        _appointment(description="Meet with the therapist about knee rehab"), id="therapist"
    ),
    pytest.param(_appointment(description="Colonoscopy prep questions"), id="colonoscopy-prep"),
    pytest.param(_appointment(description="Hearing aids check"), id="hearing-aids"),
    pytest.param(_appointment(description="Annual physical, bring vaccine card"), id="physical"),
    pytest.param(_appointment(description="Seguimiento de presión arterial"), id="spanish-routine"),
    pytest.param(
        _prescription(medicationCodeableConcept=_concept("lisinopril 10 MG Oral Tablet")),
        id="lisinopril",
    ),
    pytest.param(
        _prescription(medicationCodeableConcept=_concept("spironolactone 25 MG Oral Tablet")),
        id="spironolactone-is-not-listed",
    ),
]


@pytest.mark.parametrize("resource", LOOK_ALIKES)
def test_look_alikes_are_not_sensitive(resource: dict[str, Any]) -> None:
    result = classify_sensitivity([resource], POLICY)

    assert (result.sensitive, result.reasons) == (False, ())


DRUGS = [
    pytest.param("Biktarvy 50-200-25 mg tablet", "drug:hiv", id="hiv-brand-biktarvy"),
    pytest.param("DESCOVY 200 MG-25 MG TABLET", "drug:hiv", id="prep-brand-descovy"),
    pytest.param("Apretude 600 mg/3 mL ER susp", "drug:hiv", id="injectable-prep-apretude"),
    pytest.param("cabotegravir ER injectable suspension", "drug:hiv", id="cabotegravir"),
    pytest.param("Suboxone 8 mg-2 mg sublingual film", "drug:opioid-use-disorder", id="suboxone"),
    pytest.param("Sublocade 300 mg/1.5 mL", "drug:opioid-use-disorder", id="sublocade"),
    pytest.param("Lucemyra 0.18 mg tablet", "drug:opioid-use-disorder", id="lucemyra"),
    pytest.param("sertraline 50 MG Oral Tablet", "drug:psychiatric", id="sertraline"),
    pytest.param("Lexapro 10 mg", "drug:psychiatric", id="lexapro"),
    pytest.param("SEROquel XR 300 mg", "drug:psychiatric", id="seroquel-mixed-case"),
    pytest.param("Depo-Testosterone 200 mg/mL", "drug:gender-affirming-hormones", id="depo-testo"),
    pytest.param("Keytruda 100 mg/4 mL", "drug:oncology", id="keytruda"),
    pytest.param("imatinib (GLEEVEC) 400 mg", "drug:oncology", id="imatinib-gleevec"),
    pytest.param("Tamoxifeno 20 mg", None, id="spanish-spelling-not-in-list"),
]


@pytest.mark.parametrize(("text", "reason"), DRUGS)
def test_medicines_are_recognised_by_ingredient_and_brand(text: str, reason: str | None) -> None:
    request = _prescription(medicationCodeableConcept=_concept(text))

    reasons = classify_sensitivity([request], POLICY).reasons

    assert (reason in reasons) if reason else not any(r.startswith("drug:") for r in reasons)


def test_brand_in_a_contained_medication_without_codes_is_recognised() -> None:
    request = _prescription(
        contained=[{"resourceType": "Medication", "id": "m1", "code": _concept("Truvada")}],
        medicationReference={"reference": "#m1"},
    )

    assert "drug:hiv" in classify_sensitivity([request], POLICY).reasons


def test_a_referenced_medication_resource_is_read() -> None:
    request = _prescription(medicationReference={"reference": "Medication/eMx0Zubsolv1"})
    medication = {
        "resourceType": "Medication",
        "id": "eMx0Zubsolv1",
        "code": {"coding": [{"system": RXNORM, "code": "1666386", "display": "Zubsolv"}]},
    }

    result = classify_sensitivity([request, medication], POLICY)

    assert "drug:opioid-use-disorder" in result.reasons
    assert REASON_MEDICATION_UNKNOWN not in result.reasons


def test_rxnorm_ingredient_code_without_any_text_is_recognised() -> None:
    request = _prescription(
        medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "36437"}]}
    )

    result = classify_sensitivity([request], POLICY)

    assert (result.reasons, result.categories) == (("code:rxnorm:36437",), ("mental-health",))


REFERENCED = [
    pytest.param(
        {
            "resourceType": "HealthcareService",
            "id": "eHs1",
            "name": "Adult Outpatient Services",
            "comment": "Medication-assisted treatment (MAT) and counseling",
        },
        "substance-use",
        id="healthcare-service-comment",
    ),
    pytest.param(
        {
            "resourceType": "PractitionerRole",
            "id": "ePr1",
            "specialty": [_concept("Radiation Oncology")],
        },
        "oncology",
        id="practitioner-role-specialty",
    ),
    pytest.param(
        {
            "resourceType": "Organization",
            "id": "eOr1",
            "name": "Lakeside Cancer Institute",
            "alias": ["LCI"],
        },
        "oncology",
        id="organization-name",
    ),
    pytest.param(
        {
            "resourceType": "Location",
            "id": "eLo1",
            "name": "Suite 300",
            "alias": ["PrEP Clinic"],
            "description": "Third floor, east elevators",
        },
        "hiv-sti",
        id="location-alias",
    ),
    pytest.param(
        {
            "resourceType": "Practitioner",
            "id": "ePc1",
            "name": [{"text": "Ana Ruiz, MD"}],
            "qualification": [{"code": _concept("Board certified in Psychiatry")}],
        },
        "mental-health",
        id="practitioner-qualification",
    ),
]


@pytest.mark.parametrize(("referenced", "category"), REFERENCED)
def test_referenced_resources_are_read_like_the_appointment(
    referenced: dict[str, Any], category: str
) -> None:
    assert category in _categories(_appointment(), referenced)


def test_reasons_never_carry_the_matched_text() -> None:
    appointment = _appointment(description="Seguimiento en Psiquiatría, Dr. Okafor")
    request = _prescription(medicationCodeableConcept=_concept("Biktarvy"))

    reasons = classify_sensitivity([appointment, request], POLICY).reasons

    joined = " ".join(reasons).lower()
    assert sorted(reasons) == ["drug:hiv", "text:mental-health"]
    assert not any(word in joined for word in ("psiquiatr", "biktarvy", "okafor"))


def test_an_entry_that_is_not_a_resource_is_treated_as_sensitive() -> None:
    result = classify_sensitivity([_appointment(), "Appointment/123"], POLICY)

    assert (result.sensitive, result.reasons) == (True, (REASON_UNPARSEABLE,))


def test_a_prescription_whose_medicine_cannot_be_identified_is_treated_as_sensitive() -> None:
    request = _prescription(medicationReference={"reference": "Medication/eMissing9"})

    result = classify_sensitivity([request], POLICY)

    assert (result.sensitive, result.reasons) == (True, (REASON_MEDICATION_UNKNOWN,))


def test_a_prescription_with_only_an_empty_concept_is_treated_as_sensitive() -> None:
    request = _prescription(medicationCodeableConcept={"coding": [{"system": RXNORM}]})

    assert classify_sensitivity([request], POLICY).reasons == (REASON_MEDICATION_UNKNOWN,)


def test_identifiers_urls_and_dates_are_not_read_as_text() -> None:
    appointment = _appointment(
        identifier=[{"system": "urn:oid:1.2.3", "value": "ONCOLOGY-4471"}],
        supportingInformation=[{"reference": "DocumentReference/psychiatry-intake-1"}],
    )

    assert classify_sensitivity([appointment], POLICY).sensitive is False


def test_security_label_names_its_category() -> None:
    request = _prescription(medicationCodeableConcept=_concept("lisinopril 10 mg"))
    request["meta"]["security"] = [{"system": ACT_CODE, "code": "OPIOIDUD"}]

    assert _categories(request) == {"substance-use"}


def test_enabled_categories_are_configurable() -> None:
    policy = PrivacyPolicy.model_validate({"categories": ["mental-health", "substance-use"]})
    oncology = _appointment(description="Infusion, Cancer Center")

    assert classify_sensitivity([oncology], policy).sensitive is False
    assert "mental-health" in _categories(_stay(type=[_concept("Psych unit")]), policy=policy)


def test_a_disabled_category_ignores_its_drug_list() -> None:
    policy = PrivacyPolicy.model_validate({"categories": ["mental-health"]})
    request = _prescription(medicationCodeableConcept=_concept("Keytruda 100 mg/4 mL"))

    assert classify_sensitivity([request], policy).sensitive is False


def test_an_unknown_category_fails_at_load_time() -> None:
    with pytest.raises(ValidationError, match="unknown privacy categories: oncolgy"):
        PrivacyPolicy.model_validate({"categories": ["mental-health", "oncolgy"]})


def test_every_shipped_category_is_enabled_by_default() -> None:
    assert POLICY.enabled_categories() == {
        "mental-health",
        "substance-use",
        "hiv-sti",
        "reproductive-sexual-health",
        "genetic-testing",
        "oncology",
        "gender-affirming-care",
        "violence-abuse",
    }


def test_a_clinic_can_add_its_own_drug_list_with_a_source() -> None:
    policy = PrivacyPolicy.model_validate(
        {
            "extra_drug_lists": {
                "local-trials": {
                    "name": "local-trials",
                    "category": "oncology",
                    "source": "Riverside IRB formulary, 2026-10",
                    "compiled": "2026-10-01",
                    "ingredients": {"rvx-2201": {}},
                }
            }
        }
    )
    request = _prescription(medicationCodeableConcept=_concept("RVX-2201 10 mg capsule"))

    assert classify_sensitivity([request], policy).reasons == ("drug:local-trials",)


DRUG_FILES = sorted(Path(VALUE_SET_DIR).glob("drugs-*.yaml"))


@pytest.mark.parametrize("path", DRUG_FILES, ids=[p.stem for p in DRUG_FILES])
def test_each_drug_list_names_its_source_and_date(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)

    assert text.startswith("# Drug list:")
    assert "Source:" in text and "Compiled:" in text
    assert data["source"] and data["compiled"]
    assert data["ingredients"]


def test_the_drug_lists_cover_the_five_required_groups() -> None:
    assert {item.category for item in POLICY.drug_lists.values()} == {
        "hiv-sti",
        "substance-use",
        "mental-health",
        "gender-affirming-care",
        "oncology",
    }


def test_classification_does_not_change_its_input() -> None:
    appointment = _appointment(description="Seguimiento en Psiquiatría")
    before = copy.deepcopy(appointment)

    classify_sensitivity([appointment], POLICY)

    assert appointment == before
