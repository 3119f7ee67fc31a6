"""The fake EHR's FHIR REST behaviour matches R4 server semantics."""

from __future__ import annotations

import httpx
import pytest
from fhirclient.models.capabilitystatement import CapabilityStatement

from fhir_bridge.sandbox import EhrServer
from tests.fake_ehr.samples import EPIC_MRN_SYSTEM, appointment, patient

pytestmark = pytest.mark.integration


def test_create_assigns_id_first_version_and_location(fhir: httpx.Client) -> None:
    response = fhir.post("Patient", json=patient())

    created = response.json()
    assert response.status_code == 201
    assert created["meta"]["versionId"] == "1"
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"].endswith(f"/Patient/{created['id']}/_history/1")


def test_update_creates_new_version_and_keeps_history(fhir: httpx.Client) -> None:
    created = fhir.post("Patient", json=patient()).json()
    changed = {**created, "gender": "other"}

    updated = fhir.put(f"Patient/{created['id']}", json=changed).json()

    assert updated["meta"]["versionId"] == "2"
    assert updated["meta"]["lastUpdated"] > created["meta"]["lastUpdated"]
    first = fhir.get(f"Patient/{created['id']}/_history/1").json()
    assert first["gender"] == "female"


def test_update_with_stale_if_match_is_rejected_with_412(fhir: httpx.Client) -> None:
    created = fhir.post("Patient", json=patient()).json()
    fhir.put(f"Patient/{created['id']}", json=created)

    response = fhir.put(f"Patient/{created['id']}", json=created, headers={"If-Match": 'W/"1"'})

    assert response.status_code == 412
    assert response.json()["resourceType"] == "OperationOutcome"


def test_conditional_create_returns_the_single_match_without_creating(
    fhir: httpx.Client,
) -> None:
    existing = fhir.post("Patient", json=patient("E4012")).json()

    response = fhir.post(
        "Patient",
        json=patient("E4012"),
        headers={"If-None-Exist": f"identifier={EPIC_MRN_SYSTEM}|E4012"},
    )

    assert response.status_code == 200
    assert response.json()["id"] == existing["id"]
    assert fhir.get("Patient").json()["total"] == 1


def test_conditional_create_with_several_matches_is_rejected_with_412(
    fhir: httpx.Client,
) -> None:
    fhir.post("Patient", json=patient("E4012"))
    fhir.post("Patient", json=patient("E4012"))

    response = fhir.post(
        "Patient",
        json=patient("E4012"),
        headers={"If-None-Exist": f"identifier={EPIC_MRN_SYSTEM}|E4012"},
    )

    assert response.status_code == 412


def test_deleted_resource_reads_as_gone(fhir: httpx.Client) -> None:
    created = fhir.post("Patient", json=patient()).json()
    fhir.delete(f"Patient/{created['id']}")

    response = fhir.get(f"Patient/{created['id']}")

    assert response.status_code == 410
    assert response.json()["resourceType"] == "OperationOutcome"


def test_body_type_different_from_url_type_is_rejected(fhir: httpx.Client) -> None:
    response = fhir.post("Appointment", json=patient())

    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "invalid"


def test_request_without_bearer_token_is_unauthorized(ehr: EhrServer) -> None:
    response = httpx.get(f"{ehr.base_url}/Patient")

    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


def test_last_updated_search_pages_through_a_stable_snapshot(
    ehr: EhrServer, fhir: httpx.Client
) -> None:
    before = ehr.create(patient("E0001"))
    later = [ehr.create(appointment(before["id"], csn=f"10000824{n:02d}")) for n in range(5)]
    since = later[0]["meta"]["lastUpdated"]

    first_page = fhir.get(
        "Appointment", params={"_lastUpdated": f"ge{since}", "_count": "2", "_sort": "_lastUpdated"}
    ).json()
    ehr.create(appointment(before["id"], csn="1000082499"))
    seen = [entry["resource"]["id"] for entry in first_page["entry"]]
    page = first_page
    while next_links := [link["url"] for link in page["link"] if link["relation"] == "next"]:
        page = fhir.get(next_links[0]).json()
        seen += [entry["resource"]["id"] for entry in page["entry"]]

    assert first_page["total"] == 5
    assert seen == [resource["id"] for resource in later]


def test_capability_statement_is_valid_strict_r4_and_offers_backport_operations(
    fhir: httpx.Client,
) -> None:
    statement = fhir.get("metadata").json()

    CapabilityStatement(statement, strict=True)
    subscription = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription")
    assert statement["fhirVersion"] == "4.0.1"
    assert {op["name"] for op in subscription["operation"]} == {"$status", "$events"}
