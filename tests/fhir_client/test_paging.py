"""Search paging: follow `next` links on the EHR, never anywhere else."""

from __future__ import annotations

import pytest

from fhir_bridge.fhir import EhrProtocolError
from tests.fhir_client.ehr_doubles import (
    BASE_URL,
    ScriptedEhr,
    booked_appointment,
    fhir_response,
    make_client,
    patient,
    searchset,
)

PAGE_2 = f"{BASE_URL}/Appointment?date=ge2026-12-01&_count=2&sessionID=16-2F3C9A&page=2"


def appointment(appointment_id: str) -> dict[str, object]:
    return {**booked_appointment(), "id": appointment_id}


def test_search_all_follows_next_links_and_skips_included_resources() -> None:
    ehr = ScriptedEhr(
        fhir_response(
            200,
            searchset(
                [
                    (appointment("eA1"), "match"),
                    (appointment("eA2"), "match"),
                    (patient(), "include"),
                ],
                next_url=PAGE_2,
            ),
        ),
        fhir_response(200, searchset([(appointment("eA3"), "match")])),
    )

    found = list(make_client(ehr).search_all("Appointment", {"_include": "Appointment:patient"}))

    assert [resource["id"] for resource in found] == ["eA1", "eA2", "eA3"]
    assert str(ehr.requests[1].url) == PAGE_2


def test_search_all_skips_outcome_entries() -> None:
    warning = {"resourceType": "OperationOutcome", "id": "w1", "issue": []}
    ehr = ScriptedEhr(
        fhir_response(200, searchset([(appointment("eA1"), "match"), (warning, "outcome")]))
    )

    found = list(make_client(ehr).search_all("Appointment", {"status": "booked"}))

    assert [resource["id"] for resource in found] == ["eA1"]


def test_next_page_is_none_on_the_last_page() -> None:
    last_page = searchset([(appointment("eA3"), "match")])

    assert make_client(ScriptedEhr()).next_page(last_page) is None


@pytest.mark.parametrize(
    "next_url",
    [
        pytest.param("https://attacker.example/api/FHIR/R4/Appointment?page=2", id="other-host"),
        pytest.param(
            "http://fhir.northside-clinic.example/api/FHIR/R4/Appointment?page=2", id="downgrade"
        ),
        pytest.param(
            "https://fhir.northside-clinic.example/admin/export?page=2", id="outside-base-path"
        ),
    ],
)
def test_next_link_off_the_fhir_base_is_refused(next_url: str) -> None:
    ehr = ScriptedEhr(fhir_response(200, searchset([(appointment("eA1"), "match")], next_url)))
    pages = make_client(ehr).search_all("Appointment", {"status": "booked"})

    with pytest.raises(EhrProtocolError):
        list(pages)

    assert len(ehr.requests) == 1


def test_paging_that_repeats_a_next_link_is_stopped() -> None:
    looping_page = searchset([(appointment("eA1"), "match")], next_url=PAGE_2)
    ehr = ScriptedEhr(fhir_response(200, looping_page), fhir_response(200, looping_page))

    with pytest.raises(EhrProtocolError):
        list(make_client(ehr).search_all("Appointment", {"status": "booked"}))

    assert len(ehr.requests) == 2
