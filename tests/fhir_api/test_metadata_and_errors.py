"""What /fhir supports is stated once, and everything else is a 400 or 404 OperationOutcome."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from fhir_bridge.fhir_api.search import AUDIT_EVENT_PARAMS, COMMUNICATION_PARAMS

Bearer = Callable[..., dict[str, str]]


def test_capability_statement_names_exactly_the_parameters_the_parser_accepts(
    client: TestClient,
) -> None:
    response = client.get("/fhir/metadata")

    assert response.headers["content-type"].startswith("application/fhir+json")
    resources = {r["type"]: r for r in response.json()["rest"][0]["resource"]}
    assert set(resources) == {"Communication", "AuditEvent"}
    for type_, params in (
        ("Communication", COMMUNICATION_PARAMS),
        ("AuditEvent", AUDIT_EVENT_PARAMS),
    ):
        assert [p["name"] for p in resources[type_]["searchParam"]] == [p.name for p in params]
    assert {i["code"] for i in resources["Communication"]["interaction"]} == {
        "read",
        "vread",
        "search-type",
        "history-instance",
    }


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("recipient=Patient/eJzlzKe3KPzAV5TtkxmNivQ3", id="unsupported-parameter"),
        pytest.param("subject:missing=true", id="modifier"),
        pytest.param("sent=ge01/12/2026", id="not-a-fhir-date"),
        pytest.param("sent=ge2026-12-01T10:00", id="time-without-zone"),
        pytest.param("sent=ne2026-12-01", id="unsupported-prefix"),
        pytest.param("sent=2026-02-30", id="impossible-date"),
        pytest.param("_count=muchos", id="count-not-a-number"),
        pytest.param("_sort=recipient", id="unsupported-sort"),
        pytest.param("_summary=true", id="unsupported-summary"),
        pytest.param("_format=xml", id="xml"),
        pytest.param("patient=Group/eAb3", id="patient-of-another-type"),
        pytest.param("identifier=a|b|c", id="malformed-token"),
        pytest.param("status=", id="empty-value"),
    ],
)
def test_malformed_or_unsupported_searches_are_400(
    client: TestClient, bearer: Bearer, query: str
) -> None:
    response = client.get(f"/fhir/Communication?{query}", headers=bearer())

    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "eJzlzKe3KPzAV5TtkxmNivQ3" not in outcome["issue"][0]["diagnostics"]


def test_format_json_is_accepted(client: TestClient, bearer: Bearer) -> None:
    response = client.get("/fhir/Communication?_format=json", headers=bearer())

    assert response.status_code == 200


def test_reads_take_no_search_parameters(client: TestClient, bearer: Bearer) -> None:
    response = client.get("/fhir/Communication/abc?status=completed", headers=bearer())

    assert response.status_code == 400


def test_writes_are_refused_as_read_only(client: TestClient, bearer: Bearer) -> None:
    response = client.post(
        "/fhir/Communication", json={"resourceType": "Communication"}, headers=bearer()
    )

    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"
