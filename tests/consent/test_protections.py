"""Specification of ``check_protections``: deceased patients and minors."""

from __future__ import annotations

from typing import Any

import pytest

from rules.consent import ConsentPolicy
from rules.protections import check_protections
from tests.consent.fhir_fixtures import NOW, load


def _patient(**changes: Any) -> dict[str, Any]:
    patient = load("patient-camila-lopez")
    patient.update(changes)
    return patient


CASES = [
    pytest.param(_patient(), {}, None, id="adult-may-be-messaged"),
    pytest.param(_patient(deceasedBoolean=True), {}, "deceased", id="deceased-boolean"),
    pytest.param(_patient(deceasedBoolean=False), {}, None, id="deceased-boolean-false"),
    pytest.param(
        _patient(deceasedDateTime="2025-02-28T06:10:00-05:00"),
        {},
        "deceased",
        id="deceased-date-time",
    ),
    pytest.param(_patient(deceasedDateTime="2025"), {}, "deceased", id="deceased-partial-date"),
    pytest.param(_patient(birthDate="2010-05-01"), {}, "minor", id="fourteen-year-old"),
    pytest.param(_patient(birthDate="2007-03-10"), {}, None, id="eighteenth-birthday-today"),
    pytest.param(_patient(birthDate="2007-03-11"), {}, "minor", id="eighteen-tomorrow"),
    pytest.param(_patient(birthDate="2007"), {}, "minor", id="year-only-birth-counts-youngest"),
    pytest.param(
        _patient(birthDate="2010-05-01"), {"message_minors": True}, None, id="policy-allows-minors"
    ),
    pytest.param(
        _patient(birthDate="2009-01-01"), {"minor_age": 16}, None, id="configurable-minor-age"
    ),
    pytest.param(
        _patient(birthDate="2010-05-01"),
        {"minor_allowed_purposes": ("appointment-reminder",)},
        None,
        id="minor-allowed-for-listed-purpose",
    ),
    pytest.param(
        _patient(birthDate="2010-05-01", deceasedBoolean=True),
        {"message_minors": True},
        "deceased",
        id="deceased-beats-minor-permission",
    ),
    pytest.param(_patient(birthDate=None), {}, "age-unknown", id="missing-birth-date"),
    pytest.param(None, {}, "unknown-patient", id="no-patient"),
]


@pytest.mark.parametrize(("patient", "policy", "expected"), CASES)
def test_protections(
    patient: dict[str, Any] | None, policy: dict[str, Any], expected: str | None
) -> None:
    assert (
        check_protections(patient, "appointment-reminder", NOW, ConsentPolicy(**policy)) == expected
    )
