"""Several reads in one round-trip: the FHIR ``batch`` interaction, where the EHR has it."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from fhir_bridge.fhir import EhrProtocolError
from fhir_bridge.fhir.errors import EhrNotFound
from tests.fhir_client.ehr_doubles import (
    APPOINTMENT_ID,
    BASE_URL,
    PATIENT_ID,
    ScriptedEhr,
    booked_appointment,
    fhir_response,
    make_client,
    outcome,
    patient,
    searchset,
)

URLS = [
    f"Appointment/{APPOINTMENT_ID}",
    f"Patient/{PATIENT_ID}",
    f"Consent?patient=Patient%2F{PATIENT_ID}&_count=100",
]

BATCH_STATEMENT = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "format": ["json"],
    "rest": [{"mode": "server", "interaction": [{"code": "batch"}]}],
}


def _batch_response(*entries: Mapping[str, object]) -> dict[str, object]:
    return {"resourceType": "Bundle", "type": "batch-response", "entry": list(entries)}


def _answered() -> dict[str, object]:
    return _batch_response(
        {"resource": booked_appointment(), "response": {"status": "200 OK"}},
        {"resource": patient(), "response": {"status": "200"}},
        {"resource": searchset([]), "response": {"status": "200 OK"}},
    )


def test_batch_posts_one_bundle_of_gets_to_the_base_url() -> None:
    ehr = ScriptedEhr(fhir_response(200, _answered()))

    answers = make_client(ehr).batch(URLS)

    request = ehr.requests[0]
    assert (request.method, str(request.url)) == ("POST", BASE_URL)
    sent = json.loads(request.content)
    assert sent["type"] == "batch"
    assert [e["request"] for e in sent["entry"]] == [{"method": "GET", "url": u} for u in URLS]
    assert answers[0].resource()["id"] == booked_appointment()["id"]
    assert answers[1].resource()["resourceType"] == "Patient"


def test_an_entry_the_ehr_could_not_find_raises_not_found_for_that_entry_only() -> None:
    missing = {
        "response": {"status": "404 Not Found", "outcome": outcome("not-found", "Unknown id")}
    }
    ehr = ScriptedEhr(
        fhir_response(
            200,
            _batch_response(
                missing,
                {"resource": patient(), "response": {"status": "200 OK"}},
                {"resource": searchset([]), "response": {"status": "200 OK"}},
            ),
        )
    )

    answers = make_client(ehr).batch(URLS)

    with pytest.raises(EhrNotFound):
        answers[0].resource()
    assert answers[1].resource()["resourceType"] == "Patient"


def test_a_batch_is_retried_like_a_read_after_a_503() -> None:
    ehr = ScriptedEhr(fhir_response(503), fhir_response(200, _answered()))

    answers = make_client(ehr).batch(URLS)

    assert len(ehr.requests) == 2
    assert len(answers) == 3


def test_an_answer_that_does_not_match_the_entries_is_a_protocol_error() -> None:
    ehr = ScriptedEhr(fhir_response(200, _batch_response({"response": {"status": "200 OK"}})))

    with pytest.raises(EhrProtocolError):
        make_client(ehr).batch(URLS)


def test_batch_support_is_read_from_the_capability_statement_once() -> None:
    ehr = ScriptedEhr(fhir_response(200, BATCH_STATEMENT))
    client = make_client(ehr)

    assert client.supports_batch() and client.supports_batch()
    assert len(ehr.requests) == 1


def test_an_absolute_or_malformed_entry_url_is_refused_before_sending() -> None:
    ehr = ScriptedEhr()

    with pytest.raises(ValueError, match="relative"):
        make_client(ehr).batch(["https://elsewhere.example/fhir/Patient/1"])
    assert ehr.requests == []


def test_read_many_reads_several_resources_in_one_batch_and_marks_the_missing() -> None:
    missing = {"response": {"status": "404 Not Found", "outcome": outcome("not-found", "gone")}}
    ehr = ScriptedEhr(
        fhir_response(200, BATCH_STATEMENT),
        fhir_response(
            200,
            _batch_response(
                {"resource": booked_appointment(), "response": {"status": "200"}}, missing
            ),
        ),
    )

    found = make_client(ehr).read_many([f"Appointment/{APPOINTMENT_ID}", "Patient/gone-1"])

    assert found[f"Appointment/{APPOINTMENT_ID}"]["id"] == APPOINTMENT_ID  # type: ignore[index]
    assert found["Patient/gone-1"] is None
    assert len(ehr.requests) == 2  # the CapabilityStatement once, then one batch


def test_read_many_refuses_an_answer_about_another_resource() -> None:
    ehr = ScriptedEhr(
        fhir_response(200, BATCH_STATEMENT),
        fhir_response(
            200,
            _batch_response(
                {"resource": patient(), "response": {"status": "200"}},
                {"resource": patient(), "response": {"status": "200"}},
            ),
        ),
    )

    with pytest.raises(EhrProtocolError, match="another resource"):
        make_client(ehr).read_many([f"Appointment/{APPOINTMENT_ID}", f"Patient/{PATIENT_ID}"])


def test_read_many_without_batch_reads_each_resource_once() -> None:
    no_batch = {**BATCH_STATEMENT, "rest": [{"mode": "server"}]}
    ehr = ScriptedEhr(
        fhir_response(200, no_batch),
        fhir_response(200, patient()),
        fhir_response(200, booked_appointment()),
    )
    wanted = [f"Patient/{PATIENT_ID}", f"Appointment/{APPOINTMENT_ID}", f"Patient/{PATIENT_ID}"]

    found = make_client(ehr).read_many(wanted)

    assert set(found) == {f"Patient/{PATIENT_ID}", f"Appointment/{APPOINTMENT_ID}"}
    assert sorted(r.url.path.split("/")[-2] for r in ehr.requests[1:]) == ["Appointment", "Patient"]
