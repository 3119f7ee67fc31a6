"""Refill notices: run-out estimation, last-fill wording, stop states and supersession."""

from __future__ import annotations

from typing import Any

import pytest

from rules.engine import plan_for_patient
from rules.supply import estimate_supply
from tests.rules.factories import (
    config_with,
    medication_request,
    send_times,
    sent,
    snapshot,
    utc,
    withheld_reasons,
)

NOW = utc("2026-11-23T12:00:00")
MR = "MedicationRequest/eKbTjv9Q9cWbmFGl5Ds2Xkw3"
TABLET = {"system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "TAB"}


def _config() -> Any:
    return config_with({"caps": {"per_day": 10, "per_week": 50}})


def _dosage(timing: dict[str, Any], dose: float = 1, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "sequence": 1,
            "timing": timing,
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "tablet", **TABLET}}],
            **extra,
        }
    ]


def test_notice_goes_five_days_before_run_out_at_ten_local() -> None:
    plan = plan_for_patient(snapshot(medication_request()), _config(), NOW)

    assert send_times(plan) == {f"refill-notice|{MR}|fill-1": "2026-11-27T15:00:00+00:00"}
    assert plan.messages[0].trace["run_outs"] == ["2026-12-02", "2027-01-01", "2027-01-31"]
    assert plan.messages[0].template == "refill-notice"


def test_notice_variables_never_name_the_medication() -> None:
    plan = plan_for_patient(snapshot(medication_request()), _config(), NOW)

    values = " ".join(plan.messages[0].variables.values()).lower()
    assert "lisinopril" not in values
    assert set(plan.messages[0].variables) <= {
        "first_name", "date", "time", "location_name", "clinic_name", "clinic_phone", "link",
    }  # fmt: skip


def test_after_the_first_notice_is_sent_the_next_fill_is_planned() -> None:
    history = [sent(f"refill-notice|{MR}|fill-1", "2026-11-27T15:00:00", "refill-notice")]

    plan = plan_for_patient(
        snapshot(medication_request(), history=history), _config(), utc("2026-11-28T12:00:00")
    )

    assert send_times(plan) == {f"refill-notice|{MR}|fill-2": "2026-12-27T15:00:00+00:00"}


def test_order_without_repeats_says_contact_your_clinic() -> None:
    request = medication_request()
    request["dispenseRequest"]["numberOfRepeatsAllowed"] = 0

    plan = plan_for_patient(snapshot(request), _config(), NOW)

    assert plan.messages[0].template == "refill-notice-last-fill"
    assert plan.messages[0].trace["last_fill"] is True


@pytest.mark.parametrize(
    ("dosage", "quantity", "run_out"),
    [
        pytest.param(
            _dosage({"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}),
            60,
            "2026-12-02",
            id="twice-daily-60-tablets",
        ),
        pytest.param(
            _dosage({"code": {"coding": [{"code": "TID"}]}}, dose=2),
            90,
            "2026-11-17",
            id="tid-code-two-tablets",
        ),
        pytest.param(
            _dosage({"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}),
            4,
            "2026-11-30",
            id="weekly",
        ),
        pytest.param(
            _dosage({"repeat": {"when": ["MORN", "HS"]}}),
            20,
            "2026-11-12",
            id="morning-and-bedtime",
        ),
    ],
)
def test_run_out_falls_back_to_dosage_timing_and_dispensed_quantity(
    dosage: list[dict[str, Any]], quantity: int, run_out: str
) -> None:
    request = medication_request(dosageInstruction=dosage)
    request["dispenseRequest"] = {
        "numberOfRepeatsAllowed": 0,
        "quantity": {"value": quantity, "unit": "tablet", **TABLET},
    }

    plan = plan_for_patient(snapshot(request), _config(), utc("2026-11-03T12:00:00"))

    assert plan.messages[0].trace["run_out"] == run_out


def test_initial_fill_duration_sets_the_first_run_out() -> None:
    request = medication_request()
    request["dispenseRequest"]["initialFill"] = {
        "quantity": {"value": 7, "unit": "tablet", **TABLET},
        "duration": {"value": 7, "unit": "days", "code": "d"},
    }

    plan = plan_for_patient(snapshot(request), _config(), utc("2026-11-03T12:00:00"))

    assert plan.messages[0].trace["run_outs"] == ["2026-11-09", "2026-12-09", "2027-01-08"]


def test_validity_period_end_limits_the_fills() -> None:
    request = medication_request()
    request["dispenseRequest"]["validityPeriod"]["end"] = "2026-12-15"

    plan = plan_for_patient(snapshot(request), _config(), NOW)

    assert plan.messages[0].trace["run_outs"] == ["2026-12-02", "2027-01-01"]


def test_as_needed_dosing_without_supply_duration_is_withheld_as_unknown() -> None:
    request = medication_request(
        dosageInstruction=_dosage(
            {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}}, asNeededBoolean=True
        )
    )
    del request["dispenseRequest"]["expectedSupplyDuration"]

    plan = plan_for_patient(snapshot(request), _config(), NOW)

    assert withheld_reasons(plan) == {f"refill-notice|{MR}": "run-out-unknown"}


def test_mismatched_dose_and_quantity_units_are_not_divided() -> None:
    request = medication_request(
        dosageInstruction=[
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mL", "code": "mL"}}],
            }
        ]
    )

    assert estimate_supply(request).sources["repeat"] == "dispenseRequest.expectedSupplyDuration"
    del request["dispenseRequest"]["expectedSupplyDuration"]
    assert estimate_supply(request).initial_days is None


@pytest.mark.parametrize(
    "status", ["completed", "stopped", "cancelled", "on-hold", "entered-in-error"]
)
def test_stopped_order_plans_no_notice(status: str) -> None:
    plan = plan_for_patient(snapshot(medication_request(status=status)), _config(), NOW)

    assert plan.messages == ()
    assert withheld_reasons(plan) == {f"refill-notice|{MR}": f"medication-request-{status}"}


def test_proposal_is_not_an_order() -> None:
    plan = plan_for_patient(snapshot(medication_request(intent="proposal")), _config(), NOW)

    assert withheld_reasons(plan) == {f"refill-notice|{MR}": "not-an-order"}


def test_newer_order_for_the_same_rxnorm_code_supersedes_the_old_one() -> None:
    newer = medication_request(id="eNewer0rder", authoredOn="2026-11-20")
    newer["dispenseRequest"]["validityPeriod"]["start"] = "2026-11-20"

    plan = plan_for_patient(snapshot(medication_request(), newer), _config(), NOW)

    assert withheld_reasons(plan) == {f"refill-notice|{MR}": "superseded"}
    assert [m.about for m in plan.messages] == [("MedicationRequest/eNewer0rder",)]


def test_prior_prescription_link_supersedes_even_with_another_code() -> None:
    newer = medication_request(
        id="eSwitched1",
        authoredOn="2026-11-21",
        medicationCodeableConcept={
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "314077"}]
        },
        priorPrescription={"reference": MR},
    )

    plan = plan_for_patient(snapshot(medication_request(), newer), _config(), NOW)

    assert withheld_reasons(plan) == {f"refill-notice|{MR}": "superseded"}


def test_order_whose_supply_has_ended_plans_nothing() -> None:
    plan = plan_for_patient(snapshot(medication_request()), _config(), utc("2027-03-01T12:00:00"))

    assert withheld_reasons(plan) == {f"refill-notice|{MR}": "supply-ended"}
