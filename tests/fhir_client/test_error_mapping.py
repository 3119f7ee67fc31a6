"""HTTP failures become exception types callers can act on, with PHI-free messages."""

from __future__ import annotations

import logging

import pytest

from fhir_bridge.fhir import (
    EhrAuthError,
    EhrError,
    EhrNotFound,
    EhrNotSupported,
    EhrPreconditionFailed,
    EhrUnavailable,
)
from tests.fhir_client.ehr_doubles import (
    APPOINTMENT_ID,
    PATIENT_ID,
    PHI_MARKERS,
    ScriptedEhr,
    booked_appointment,
    fhir_response,
    make_client,
    outcome,
)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        pytest.param(401, EhrAuthError, id="401-unauthorized"),
        pytest.param(403, EhrAuthError, id="403-forbidden"),
        pytest.param(404, EhrNotFound, id="404-not-found"),
        pytest.param(410, EhrNotFound, id="410-gone"),
        pytest.param(412, EhrPreconditionFailed, id="412-precondition"),
        pytest.param(501, EhrNotSupported, id="501-not-implemented"),
        pytest.param(422, EhrError, id="422-unprocessable"),
    ],
)
def test_read_failure_status_maps_to_exception_type(
    status: int, error_class: type[EhrError]
) -> None:
    ehr = ScriptedEhr(fhir_response(status, outcome("processing", "failed")))

    with pytest.raises(EhrError) as raised:
        make_client(ehr).read("Patient", PATIENT_ID)

    assert type(raised.value) is error_class
    assert raised.value.status == status


def test_deleted_resource_read_raises_not_found() -> None:
    gone = outcome("deleted", f"Resource Patient/{PATIENT_ID}/_history/13 has been deleted")
    ehr = ScriptedEhr(fhir_response(410, gone))

    with pytest.raises(EhrNotFound):
        make_client(ehr).read("Patient", PATIENT_ID)


def test_error_message_has_status_and_issue_codes_but_no_resource_content() -> None:
    phi_outcome = outcome(
        "not-found", "Patient Rivera, Ana (DOB 1984-03-09, +1 617 555 0142) not found"
    )
    ehr = ScriptedEhr(fhir_response(404, phi_outcome))

    with pytest.raises(EhrNotFound) as raised:
        make_client(ehr).read("Patient", PATIENT_ID)

    message = str(raised.value)
    assert "404" in message and "not-found" in message
    assert not any(marker in message for marker in PHI_MARKERS)


def test_precondition_failure_message_omits_the_rejected_resource() -> None:
    ehr = ScriptedEhr(fhir_response(412, outcome("conflict", "Bring glucose log: stale version")))

    with pytest.raises(EhrPreconditionFailed) as raised:
        make_client(ehr).update(booked_appointment(), if_match="3")

    assert not any(marker in str(raised.value) for marker in PHI_MARKERS)


def test_logs_carry_no_bodies_or_query_values(caplog: pytest.LogCaptureFixture) -> None:
    ehr = ScriptedEhr(fhir_response(503), fhir_response(200, booked_appointment()))
    caplog.set_level(logging.DEBUG, logger="fhir_bridge.fhir")

    make_client(ehr).search("Appointment", {"patient": PATIENT_ID, "comment": "glucose"})

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "ehr_request method=GET type=Appointment result=503 attempt=1" in logged
    assert PATIENT_ID not in logged
    assert not any(marker in logged for marker in PHI_MARKERS)


def test_unknown_operation_answered_with_400_is_not_supported() -> None:
    ehr = ScriptedEhr(
        fhir_response(400, outcome("processing", "Unknown operation $events on Subscription"))
    )

    with pytest.raises(EhrNotSupported):
        make_client(ehr).operation("Subscription/sub-77/$events")


def test_operation_answered_with_404_not_supported_is_not_supported() -> None:
    ehr = ScriptedEhr(fhir_response(404, outcome("not-supported", "Operation not known")))

    with pytest.raises(EhrNotSupported):
        make_client(ehr).operation("Subscription/sub-77/$events")


def test_operation_on_missing_instance_raises_not_found() -> None:
    ehr = ScriptedEhr(fhir_response(404, outcome("not-found", "Subscription/sub-77 not known")))

    with pytest.raises(EhrNotFound):
        make_client(ehr).operation("Subscription/sub-77/$status")


def test_operation_answered_with_501_is_not_supported() -> None:
    ehr = ScriptedEhr(fhir_response(501))

    with pytest.raises(EhrNotSupported):
        make_client(ehr).operation("$export", params={"_type": "Appointment"})


def test_rate_limit_after_all_retries_raises_unavailable() -> None:
    ehr = ScriptedEhr(*[fhir_response(429, headers={"Retry-After": "1"}) for _ in range(5)])

    with pytest.raises(EhrUnavailable) as raised:
        make_client(ehr).read("Appointment", APPOINTMENT_ID)

    assert raised.value.status == 429
