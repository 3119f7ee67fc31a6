"""The pure campaign rules: audiences from FHIR data, minimum necessary, one segment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rules.audiences import AgeRange, AudienceDefinition, evaluate
from rules.campaigns import (
    CampaignSpec,
    campaign_variables,
    is_campaign_key,
    owned_by_other_planner,
    plan_campaign_message,
)
from rules.config import load_rules_config
from rules.consent import opt_in_consent
from rules.model import PatientSnapshot, WithheldMessage
from rules.sms_length import sms_segments
from rules.templates import render

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
CONFIG = load_rules_config(None)
DIABETES = {
    "resourceType": "Condition",
    "id": "cond-dm2",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    },
    "code": {
        "coding": [
            {
                "system": "http://snomed.info/sct",
                "code": "44054006",
                "display": "Diabetes mellitus type 2",
            }
        ],
        "text": "Diabetes tipo 2",
    },
    "subject": {"reference": "Patient/pt-rosa"},
}
ROSA = {
    "resourceType": "Patient",
    "id": "pt-rosa",
    "birthDate": "1958-03-14",
    "telecom": [{"system": "phone", "value": "+16175550142", "use": "mobile"}],
    "communication": [{"language": {"coding": [{"code": "es"}], "text": "Español"}}],
}


def a1c(when: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "id": "obs-a1c",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "effectiveDateTime": when,
        "subject": {"reference": "Patient/pt-rosa"},
    }


def test_diabetes_without_a_recent_hba1c_is_in_the_preventive_audience() -> None:
    audience = CONFIG.audiences["diabetes-no-a1c"]

    inside = evaluate(audience, ROSA, [DIABETES, a1c("2026-02-01T09:00:00Z")], NOW)
    recent = evaluate(audience, ROSA, [DIABETES, a1c("2026-10-01T09:00:00Z")], NOW)

    assert inside.member and "Diabetes mellitus type 2" in inside.terms
    assert (recent.member, recent.failed) == (False, "recent-observation")


def test_language_and_age_filters_read_patient_communication_and_birth_date() -> None:
    spanish_seniors = AudienceDefinition(languages=["es"], age=AgeRange(min=65))

    assert evaluate(spanish_seniors, ROSA, [], NOW).member
    assert evaluate(spanish_seniors, {**ROSA, "birthDate": "1990-01-01"}, [], NOW).failed == "age"
    assert evaluate(spanish_seniors, {**ROSA, "communication": []}, [], NOW).failed == "language"


def _spec(template: str = "tip-daily-walk") -> CampaignSpec:
    return CampaignSpec(
        "c-1",
        1,
        "health-tips",
        "health-tips",
        "routine",
        False,
        template,
        campaign_variables(CONFIG),
    )


def test_a_tip_naming_the_reason_for_the_audience_is_withheld() -> None:
    snapshot = PatientSnapshot("Patient/pt-rosa", ROSA, ())
    consent = opt_in_consent("Patient/pt-rosa", "sms", None, NOW, purposes=["health-tips"])

    plain = plan_campaign_message(
        _spec(), snapshot, [consent], [], ("Diabetes tipo 2",), CONFIG, NOW
    )
    revealing = plan_campaign_message(_spec(), snapshot, [consent], [], ("caminar",), CONFIG, NOW)

    assert not isinstance(plain, WithheldMessage) and plain.language == "es"
    assert isinstance(revealing, WithheldMessage) and revealing.reason == "reveals-audience"


def test_a_general_permit_does_not_allow_health_tips() -> None:
    snapshot = PatientSnapshot("Patient/pt-rosa", ROSA, ())
    general = opt_in_consent("Patient/pt-rosa", "sms", None, NOW)

    decision = plan_campaign_message(_spec(), snapshot, [general], [], (), CONFIG, NOW)

    assert isinstance(decision, WithheldMessage) and decision.reason == "opt-in-required"


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("template", ["tip-daily-walk", "tip-water"])
def test_every_shipped_tip_is_one_gsm7_segment_with_the_opt_out_line(
    template: str, language: str
) -> None:
    text = render(template, language, "sms", campaign_variables(CONFIG), CONFIG).text

    assert sms_segments(text) == ("gsm7", 1)
    assert text.endswith(("Reply STOP to opt out.", "Responda BAJA para no recibir SMS."))


def test_campaign_keys_are_left_alone_by_event_driven_re_planning() -> None:
    key = "campaign|c-1|2|Patient/pt-rosa"

    assert is_campaign_key(key) and owned_by_other_planner(key)
    assert owned_by_other_planner("staff-answer|7|call-us")
    assert not owned_by_other_planner("appointment-reminder|Appointment/ap-1|P1D")
