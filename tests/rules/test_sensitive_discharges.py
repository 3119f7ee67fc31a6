"""After a sensitive stay the rules file's per-category policy decides what happens.

``generic``: the neutral check-in text. ``staff-call``: no automated text; one withheld
message per stay (``staff-call-instead``) that the pipeline turns into an urgent staff Task.
Shipped: staff call after psychiatric admissions and involuntary holds, and after
substance-use treatment; the neutral text for every other sensitive stay.
"""

from __future__ import annotations

from typing import Any

import pytest

from rules.config import RulesConfigError
from rules.engine import plan_for_patient
from tests.rules.factories import (
    LOCATION_REF,
    config_with,
    encounter,
    location,
    snapshot,
    utc,
    withheld_reasons,
)

NOW = utc("2026-11-20T18:00:00")
ENC = "Encounter/eGmO0h.1.UQQrExl4bfM7OQ3"
STAFF_CALL = f"discharge-checkin|{ENC}|staff-call"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def _config(discharge: dict[str, Any] | None = None) -> Any:
    overrides: dict[str, Any] = {"caps": {"per_day": 10, "per_week": 50}}
    if discharge is not None:
        overrides["discharge_checkins"] = {"sensitive": discharge}
    return config_with(overrides)


def _involuntary_hold() -> dict[str, Any]:
    stay = encounter()
    stay["type"][0]["text"] = "Involuntary psychiatric hold"
    stay["reasonCode"] = [{"text": "Danger to self"}]
    return stay


def _detox() -> dict[str, Any]:
    return encounter(
        reasonCode=[
            {
                "coding": [
                    {
                        "system": ICD10,
                        "code": "F11.23",
                        "display": "Opioid dependence with withdrawal",
                    }
                ]
            }
        ]
    )


def _oncology() -> dict[str, Any]:
    return encounter(reasonCode=[{"text": "Neutropenic fever during chemotherapy"}])


def _templates(plan: Any) -> set[str]:
    return {message.template for message in plan.messages}


@pytest.mark.parametrize(
    "stay",
    [
        pytest.param(_involuntary_hold(), id="involuntary-psychiatric-hold"),
        pytest.param(_detox(), id="opioid-withdrawal"),
        pytest.param(
            encounter(
                hospitalization={
                    "admitSource": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/admit-source",
                                "code": "psych",
                            }
                        ]
                    }
                }
            ),
            id="admitted-from-psychiatric-hospital",
        ),
        pytest.param(
            encounter(type=[{"text": "Ingreso involuntario - Psiquiatría"}]), id="spanish"
        ),
    ],
)
def test_by_default_staff_call_instead_of_a_text(stay: dict[str, Any]) -> None:
    plan = plan_for_patient(snapshot(stay), _config(), NOW)

    assert plan.messages == ()
    assert withheld_reasons(plan) == {STAFF_CALL: "staff-call-instead"}


def test_a_staff_call_is_one_withheld_message_per_stay_without_clinical_text() -> None:
    plan = plan_for_patient(snapshot(_involuntary_hold()), _config(), NOW)

    (withheld,) = plan.withheld
    assert withheld.about == (ENC,)
    assert "psychiatr" not in (withheld.detail + str(withheld.trace)).lower()
    assert withheld.trace["sensitive_policy"] == {"action": "staff-call", "entry": "mental-health"}


def test_a_ward_whose_name_reveals_psychiatry_leads_to_a_staff_call() -> None:
    ward = location(name="Adult Inpatient Psychiatry - 4 West")

    plan = plan_for_patient(snapshot(encounter(), locations={LOCATION_REF: ward}), _config(), NOW)

    assert withheld_reasons(plan) == {STAFF_CALL: "staff-call-instead"}


def test_other_sensitive_stays_get_the_neutral_check_in_text() -> None:
    plan = plan_for_patient(snapshot(_oncology()), _config(), NOW)

    assert _templates(plan) == {"discharge-checkin-generic"}
    assert len(plan.messages) == 2


def test_an_ordinary_stay_gets_the_ordinary_check_in() -> None:
    plan = plan_for_patient(snapshot(encounter()), _config(), NOW)

    assert _templates(plan) == {"discharge-checkin"}


def test_a_clinic_can_ask_for_a_staff_call_after_oncology_stays() -> None:
    plan = plan_for_patient(snapshot(_oncology()), _config({"oncology": "staff-call"}), NOW)

    assert withheld_reasons(plan) == {STAFF_CALL: "staff-call-instead"}


def test_a_clinic_can_choose_the_neutral_text_after_psychiatric_stays() -> None:
    config = _config({"mental-health": "generic"})

    plan = plan_for_patient(snapshot(_involuntary_hold()), config, NOW)

    assert _templates(plan) == {"discharge-checkin-generic"}


def test_listing_one_category_keeps_the_shipped_policy_for_the_others() -> None:
    plan = plan_for_patient(snapshot(_detox()), _config({"oncology": "generic"}), NOW)

    assert withheld_reasons(plan) == {STAFF_CALL: "staff-call-instead"}


def test_a_restricted_stay_without_a_category_follows_the_default() -> None:
    stay = encounter()
    stay["meta"]["security"] = [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
    ]

    generic = plan_for_patient(snapshot(stay), _config(), NOW)
    called = plan_for_patient(snapshot(stay), _config({"default": "staff-call"}), NOW)

    assert _templates(generic) == {"discharge-checkin-generic"}
    assert withheld_reasons(called) == {STAFF_CALL: "staff-call-instead"}


def test_the_strictest_policy_wins_when_a_stay_matches_several_categories() -> None:
    stay = _oncology()
    stay["reasonCode"].append({"text": "Depression"})

    plan = plan_for_patient(snapshot(stay), _config(), NOW)

    assert withheld_reasons(plan) == {STAFF_CALL: "staff-call-instead"}


def test_no_staff_call_after_a_readmission() -> None:
    readmission = encounter(
        id="eRe4dM1t.2.XYZ",
        status="in-progress",
        period={"start": "2026-11-20T23:00:00Z"},
    )

    plan = plan_for_patient(snapshot(_involuntary_hold(), readmission), _config(), NOW)

    assert withheld_reasons(plan) == {STAFF_CALL: "readmitted"}


def test_no_staff_call_for_a_stay_whose_check_ins_are_long_past() -> None:
    plan = plan_for_patient(snapshot(_involuntary_hold()), _config(), utc("2027-01-15T18:00:00"))

    assert withheld_reasons(plan) == {STAFF_CALL: "offset-passed"}


def test_an_unknown_category_in_the_policy_fails_at_load_time() -> None:
    with pytest.raises(RulesConfigError, match="unknown categories: psychiatry"):
        _config({"psychiatry": "staff-call"})


def test_an_unknown_action_fails_at_load_time() -> None:
    with pytest.raises(RulesConfigError, match=r"discharge_checkins\.sensitive"):
        _config({"mental-health": "call"})
