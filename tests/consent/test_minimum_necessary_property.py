"""Property: outreach about sensitive care never repeats what the EHR says about it.

For random Appointments, MedicationRequests and Encounters that carry a sensitive
security label or code - or nothing but free text (English or Spanish reasons,
brand names, revealing location names) - with random display texts, reason texts,
medication names and revealing location names, every message the engine plans and
every rendering of it (SMS and email) is free of those texts. Each random text ends
in a unique consonant token so a leak is unambiguous.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.config import RulesConfig, load_rules_config
from rules.engine import plan_for_patient
from rules.model import PatientSnapshot
from rules.templates import render
from tests.consent.fhir_fixtures import PATIENT_REF, load

NOW = datetime(2025, 3, 10, 14, 0, tzinfo=UTC)
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
LOCATION_REF = "Location/bh-204"

_TOKEN = st.text(alphabet="BCDFGHJKLMNPQRSTVWXZ", min_size=6, max_size=10)


def _secret(stems: list[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda stem, token: f"{stem} {token}", st.sampled_from(stems), _TOKEN)


DISPLAYS = _secret(
    [
        "Major depressive disorder",
        "Psychiatry",
        "HIV-1 infection",
        "Gynecology",
        "Psiquiatría",
        "Oncología médica",
    ]
)
REASONS = _secret(
    [
        "Follow-up for opioid use disorder",
        "PrEP visit",
        "Genetic counseling",
        "Quimioterapia, ciclo",
        "Control de VIH",
    ]
)
MEDICATIONS = _secret(
    [
        "Suboxone 8 mg-2 mg film",
        "Truvada 200-300 mg",
        "Methadone 10 mg",
        "Biktarvy 50-200-25 mg",
        "Keytruda 100 mg/4 mL",
        "Zoloft 50 mg",
    ]
)
LOCATIONS = _secret(
    [
        "Behavioral Health Center",
        "Addiction Recovery Center",
        "HIV Clinic",
        "Lakeside Cancer Institute",
        "Opioid Treatment Program",
        "PrEP Clinic",
        "Harbor Psych Associates",
    ]
)

SENSITIVE_CODES = st.sampled_from(
    [
        (SNOMED, "394587001"),
        (SNOMED, "370143000"),
        (SNOMED, "86406008"),
        (SNOMED, "394580004"),
        (ICD10, "F11.20"),
        (ICD10, "Z30.011"),
        (ICD10, "B20"),
    ]
)
SENSITIVE_MEDICATIONS = st.sampled_from(["1010604", "476556", "6813", "1819"])
LABELS = st.one_of(
    st.sampled_from(["PSY", "ETH", "SUD", "HIV", "STD", "SDV", "SEX", "GDIS"]).map(
        lambda code: {"system": ACT_CODE, "code": code}
    ),
    st.sampled_from(["R", "V"]).map(lambda code: {"system": CONFIDENTIALITY, "code": code}),
)
SIGNALS = st.sampled_from(["label", "code", "label-and-code", "text-only"])


def _meta(signal: str, label: dict[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"versionId": "3", "lastUpdated": "2025-03-01T09:00:00Z"}
    if "label" in signal:
        meta["security"] = [label]
    return meta


def _coding(signal: str, code: tuple[str, str], display: str) -> dict[str, Any]:
    system, value = code if "code" in signal else (SNOMED, "185349003")
    return {"system": system, "code": value, "display": display}


@st.composite
def appointment(draw: st.DrawFn) -> dict[str, Any]:
    signal, location_name = draw(SIGNALS), draw(LOCATIONS)
    return {
        "resourceType": "Appointment",
        "id": "eAp7Rt2x9",
        "meta": _meta(signal, draw(LABELS)),
        "status": "booked",
        "serviceType": [{"coding": [_coding(signal, draw(SENSITIVE_CODES), draw(DISPLAYS))]}],
        "specialty": [{"coding": [_coding(signal, draw(SENSITIVE_CODES), draw(DISPLAYS))]}],
        "reasonCode": [
            {
                "coding": [_coding(signal, draw(SENSITIVE_CODES), draw(DISPLAYS))],
                "text": draw(REASONS),
            }
        ],
        "start": (NOW + timedelta(days=5, hours=1)).isoformat(),
        "end": (NOW + timedelta(days=5, hours=2)).isoformat(),
        "participant": [
            {"actor": {"reference": PATIENT_REF}, "status": "accepted"},
            {"actor": {"reference": LOCATION_REF, "display": location_name}, "status": "accepted"},
        ],
        "comment": location_name,
    }


@st.composite
def medication_request(draw: st.DrawFn) -> dict[str, Any]:
    signal, name = draw(SIGNALS), draw(MEDICATIONS)
    code = draw(SENSITIVE_MEDICATIONS) if "code" in signal else "314076"
    return {
        "resourceType": "MedicationRequest",
        "id": "eMr4Kp1",
        "meta": _meta(signal, draw(LABELS)),
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": name}],
            "text": name,
        },
        "subject": {"reference": PATIENT_REF},
        "authoredOn": (NOW - timedelta(days=20)).date().isoformat(),
        "reasonCode": [{"text": draw(REASONS)}],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 1,
            "expectedSupplyDuration": {
                "value": 30,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            },
        },
    }


@st.composite
def encounter(draw: st.DrawFn) -> dict[str, Any]:
    signal = draw(SIGNALS)
    return {
        "resourceType": "Encounter",
        "id": "enc-88120",
        "meta": _meta(signal, draw(LABELS)),
        "status": "finished",
        "class": {"system": ACT_CODE, "code": "IMP"},
        "type": [{"coding": [_coding(signal, draw(SENSITIVE_CODES), draw(DISPLAYS))]}],
        "subject": {"reference": PATIENT_REF},
        "period": {
            "start": (NOW - timedelta(days=3)).isoformat(),
            "end": (NOW - timedelta(hours=12)).isoformat(),
        },
        "reasonCode": [
            {
                "coding": [_coding(signal, draw(SENSITIVE_CODES), draw(DISPLAYS))],
                "text": draw(REASONS),
            }
        ],
        "hospitalization": {"dischargeDisposition": {"coding": [{"code": "home"}]}},
        "location": [{"location": {"reference": LOCATION_REF, "display": draw(LOCATIONS)}}],
    }


def _texts(resource: Any) -> list[str]:
    """Every display, text, name and comment string in a resource (what must not leak)."""
    found: list[str] = []
    if isinstance(resource, dict):
        for key, value in resource.items():
            if key in ("display", "text", "name", "comment") and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_texts(value))
    elif isinstance(resource, list):
        for item in resource:
            found.extend(_texts(item))
    return found


CONFIG: RulesConfig = load_rules_config(None)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(appointment(), medication_request(), encounter(), LOCATIONS)
def test_sensitive_outreach_never_repeats_clinical_text(
    appointment_resource: dict[str, Any],
    medication: dict[str, Any],
    stay: dict[str, Any],
    location_name: str,
) -> None:
    location = {"resourceType": "Location", "id": "bh-204", "name": location_name}
    snapshot = PatientSnapshot(
        patient_ref=PATIENT_REF,
        patient=load("patient-camila-lopez"),
        resources=[appointment_resource, medication, stay],
        referenced={LOCATION_REF: location},
    )
    secrets = [
        text.rsplit(" ", 1)[-1]
        for text in _texts([appointment_resource, medication, stay, location])
        if " " in text and text.rsplit(" ", 1)[-1].isupper()
    ]
    plan = plan_for_patient(snapshot, CONFIG, NOW)
    assert plan.messages, "the property is only meaningful when something is planned"
    outputs: list[str] = []
    for message in plan.messages:
        outputs.extend(message.variables.values())
        for channel in ("sms", "email"):
            rendered = render(
                message.template, message.language, channel, message.variables, CONFIG
            )
            outputs.extend(
                part for part in (rendered.subject, rendered.text, rendered.html) if part
            )
    leaked = sorted({secret for secret in secrets for output in outputs if secret in output})
    assert leaked == []
