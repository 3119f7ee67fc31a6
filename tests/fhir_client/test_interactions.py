"""What the EHR client puts on the wire for each FHIR interaction, and what it returns."""

from __future__ import annotations

import json

import httpx
import pytest

from fhir_bridge.fhir import EhrProtocolError
from tests.fhir_client.ehr_doubles import (
    APPOINTMENT_ID,
    BASE_URL,
    ScriptedEhr,
    booked_appointment,
    fhir_response,
    make_client,
    reminder_communication,
    stored,
)

CONDITION = "identifier=urn:fhir-bridge:outreach|outreach-7f3c2a91"


def test_read_gets_resource_by_type_and_id_as_fhir_json() -> None:
    ehr = ScriptedEhr(fhir_response(200, booked_appointment()))

    appointment = make_client(ehr).read("Appointment", APPOINTMENT_ID)

    request = ehr.requests[0]
    assert (request.method, str(request.url)) == ("GET", f"{BASE_URL}/Appointment/{APPOINTMENT_ID}")
    assert request.headers["Accept"] == "application/fhir+json"
    assert appointment["meta"]["versionId"] == "4"


def test_vread_gets_the_history_version() -> None:
    ehr = ScriptedEhr(fhir_response(200, booked_appointment(version="2")))

    make_client(ehr).vread("Appointment", APPOINTMENT_ID, "2")

    assert ehr.requests[0].url.path.endswith(f"/Appointment/{APPOINTMENT_ID}/_history/2")


def test_search_repeats_a_parameter_given_several_values() -> None:
    ehr = ScriptedEhr(fhir_response(200, {"resourceType": "Bundle", "type": "searchset"}))

    make_client(ehr).search(
        "Appointment", {"date": ["ge2026-12-01", "lt2026-12-08"], "status": "booked"}
    )

    params = ehr.requests[0].url.params
    assert params.get_list("date") == ["ge2026-12-01", "lt2026-12-08"]
    assert params["status"] == "booked"


def test_create_posts_fhir_json_and_returns_stored_resource() -> None:
    ehr = ScriptedEhr(fhir_response(201, stored(reminder_communication(), "COM-48213")))

    created = make_client(ehr).create(reminder_communication())

    request = ehr.requests[0]
    assert (request.method, request.url.path) == ("POST", "/api/FHIR/R4/Communication")
    assert request.headers["Content-Type"] == "application/fhir+json"
    assert json.loads(request.content)["identifier"][0]["value"] == "outreach-7f3c2a91"
    assert created["id"] == "COM-48213"


def test_conditional_create_sends_if_none_exist() -> None:
    ehr = ScriptedEhr(fhir_response(201, stored(reminder_communication(), "COM-48213")))

    make_client(ehr).create(reminder_communication(), if_none_exist=CONDITION)

    assert ehr.requests[0].headers["If-None-Exist"] == CONDITION


def test_conditional_create_matching_existing_returns_existing_resource() -> None:
    existing = stored(reminder_communication(), "COM-40001", version="3")
    ehr = ScriptedEhr(fhir_response(200, existing))

    result = make_client(ehr).create(reminder_communication(), if_none_exist=CONDITION)

    assert (result["id"], result["meta"]["versionId"]) == ("COM-40001", "3")


def test_create_with_empty_body_reads_the_location() -> None:
    location = f"{BASE_URL}/Communication/COM-48213/_history/1"
    ehr = ScriptedEhr(
        fhir_response(201, headers={"Location": location}),
        fhir_response(200, stored(reminder_communication(), "COM-48213")),
    )

    created = make_client(ehr).create(reminder_communication())

    assert str(ehr.requests[1].url) == location
    assert created["id"] == "COM-48213"


def test_create_refuses_a_location_on_another_server() -> None:
    ehr = ScriptedEhr(
        fhir_response(201, headers={"Location": "https://collector.example.net/Communication/1"})
    )

    with pytest.raises(EhrProtocolError):
        make_client(ehr).create(reminder_communication())

    assert len(ehr.requests) == 1


def test_update_puts_to_the_instance_with_weak_if_match() -> None:
    ehr = ScriptedEhr(fhir_response(200, booked_appointment(version="5")))

    updated = make_client(ehr).update(booked_appointment(), if_match="4")

    request = ehr.requests[0]
    assert (request.method, request.url.path) == (
        "PUT",
        f"/api/FHIR/R4/Appointment/{APPOINTMENT_ID}",
    )
    assert request.headers["If-Match"] == 'W/"4"'
    assert updated["meta"]["versionId"] == "5"


def test_update_without_id_is_refused_before_sending() -> None:
    ehr = ScriptedEhr()
    communication = reminder_communication()

    with pytest.raises(ValueError, match="without an id"):
        make_client(ehr).update(communication)

    assert ehr.requests == []


@pytest.mark.parametrize(
    "resource_id",
    [
        pytest.param("../Patient/123", id="path-traversal"),
        pytest.param("123?_format=xml", id="query-smuggling"),
        pytest.param("", id="empty"),
    ],
)
def test_read_refuses_ids_that_are_not_fhir_ids(resource_id: str) -> None:
    ehr = ScriptedEhr()

    with pytest.raises(ValueError, match="FHIR id"):
        make_client(ehr).read("Appointment", resource_id)

    assert ehr.requests == []


def test_operation_posts_parameters_body() -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "eventsSinceNumber", "valueString": "40"}],
    }
    ehr = ScriptedEhr(fhir_response(200, {"resourceType": "Bundle", "type": "history"}))

    make_client(ehr).operation("Subscription/sub-77/$events", method="POST", body=parameters)

    request = ehr.requests[0]
    assert (request.method, request.url.path) == (
        "POST",
        "/api/FHIR/R4/Subscription/sub-77/$events",
    )
    assert json.loads(request.content) == parameters


def test_operation_path_must_not_leave_the_base_url() -> None:
    with pytest.raises(ValueError, match="relative"):
        make_client(ScriptedEhr()).operation("https://elsewhere.example/$status")


def test_capabilities_gets_metadata() -> None:
    statement = {"resourceType": "CapabilityStatement", "status": "active", "fhirVersion": "4.0.1"}
    ehr = ScriptedEhr(fhir_response(200, statement))

    result = make_client(ehr).capabilities()

    assert ehr.requests[0].url.path == "/api/FHIR/R4/metadata"
    assert result["fhirVersion"] == "4.0.1"


def test_non_json_success_body_is_a_protocol_error() -> None:
    ehr = ScriptedEhr(httpx.Response(200, text="<html>Login</html>"))

    with pytest.raises(EhrProtocolError):
        make_client(ehr).read("Appointment", APPOINTMENT_ID)


def test_client_closes_as_context_manager() -> None:
    ehr = ScriptedEhr(fhir_response(200, booked_appointment()))

    with make_client(ehr) as client:
        client.read("Appointment", APPOINTMENT_ID)

    with pytest.raises(RuntimeError):
        client.read("Appointment", APPOINTMENT_ID)
