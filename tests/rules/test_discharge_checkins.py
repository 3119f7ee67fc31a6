"""Post-discharge check-ins: qualifying classes, suppressing dispositions, readmission."""

from __future__ import annotations

from typing import Any

import pytest

from rules.engine import plan_for_patient
from tests.rules.factories import (
    config_with,
    encounter,
    patient,
    send_times,
    snapshot,
    utc,
    withheld_reasons,
)

NOW = utc("2026-11-20T18:00:00")
ENC = "Encounter/eGmO0h.1.UQQrExl4bfM7OQ3"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"


def _config() -> Any:
    return config_with({"caps": {"per_day": 10, "per_week": 50}})


def _disposition(code: str) -> dict[str, Any]:
    return {"dischargeDisposition": {"coding": [{"system": DISPOSITION, "code": code}]}}


def test_inpatient_discharge_plans_check_ins_one_and_three_days_later_at_ten_local() -> None:
    plan = plan_for_patient(snapshot(encounter()), _config(), NOW)

    assert send_times(plan) == {
        f"discharge-checkin|{ENC}|P1D": "2026-11-21T15:00:00+00:00",
        f"discharge-checkin|{ENC}|P3D": "2026-11-23T15:00:00+00:00",
    }


@pytest.mark.parametrize(
    ("code", "planned"),
    [("IMP", 2), ("EMER", 2), ("OBSENC", 2), ("ACUTE", 2), ("AMB", 0), ("VR", 0)],
)
def test_only_configured_encounter_classes_get_check_ins(code: str, planned: int) -> None:
    resource = encounter(**{"class": {"system": ACT_CODE, "code": code}})

    plan = plan_for_patient(snapshot(resource), _config(), NOW)

    assert len(plan.messages) == planned


@pytest.mark.parametrize("status", ["in-progress", "arrived", "cancelled", "entered-in-error"])
def test_encounter_not_finished_plans_nothing(status: str) -> None:
    plan = plan_for_patient(snapshot(encounter(status=status)), _config(), NOW)

    assert plan.messages == ()


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("exp", "discharge-disposition-exp"),
        ("hosp", "discharge-disposition-hosp"),
        ("other-hcf", "discharge-disposition-other-hcf"),
    ],
)
def test_expired_hospice_or_transfer_disposition_suppresses_check_ins(
    code: str, reason: str
) -> None:
    resource = encounter(hospitalization=_disposition(code))

    plan = plan_for_patient(snapshot(resource), _config(), NOW)

    assert plan.messages == ()
    assert withheld_reasons(plan) == {f"discharge-checkin|{ENC}": reason}


def test_home_with_home_health_disposition_still_gets_check_ins() -> None:
    plan = plan_for_patient(snapshot(encounter(hospitalization=_disposition("hh"))), _config(), NOW)

    assert len(plan.messages) == 2


def test_deceased_patient_gets_no_check_ins() -> None:
    person = patient(deceasedDateTime="2026-11-20T16:00:00Z")

    plan = plan_for_patient(snapshot(encounter(), patient_resource=person), _config(), NOW)

    assert plan.messages == ()
    assert withheld_reasons(plan) == {f"discharge-checkin|{ENC}": "patient-deceased"}


def test_readmission_cancels_check_ins_after_it_starts() -> None:
    readmission = encounter(
        id="eReadmit77",
        status="in-progress",
        period={"start": "2026-11-22T09:00:00Z"},
        hospitalization=None,
    )

    plan = plan_for_patient(snapshot(encounter(), readmission), _config(), NOW)

    assert list(send_times(plan)) == [f"discharge-checkin|{ENC}|P1D"]
    assert withheld_reasons(plan) == {f"discharge-checkin|{ENC}|P3D": "readmitted"}


def test_later_emergency_visit_is_not_a_readmission() -> None:
    er_visit = encounter(
        id="eEmergency5",
        status="in-progress",
        period={"start": "2026-11-22T09:00:00Z"},
        **{"class": {"system": ACT_CODE, "code": "EMER"}},
    )

    plan = plan_for_patient(snapshot(encounter(), er_visit), _config(), NOW)

    assert f"discharge-checkin|{ENC}|P3D" in send_times(plan)


def test_missing_discharge_time_is_withheld_not_guessed() -> None:
    plan = plan_for_patient(
        snapshot(encounter(period={"start": "2026-11-17T08:10:00Z"})), _config(), NOW
    )

    assert withheld_reasons(plan) == {f"discharge-checkin|{ENC}": "discharge-time-unknown"}


def test_check_in_whose_time_passed_before_the_event_arrived_is_withheld() -> None:
    plan = plan_for_patient(snapshot(encounter()), _config(), utc("2026-11-22T12:00:00"))

    assert withheld_reasons(plan) == {f"discharge-checkin|{ENC}|P1D": "offset-passed"}
    assert list(send_times(plan)) == [f"discharge-checkin|{ENC}|P3D"]
