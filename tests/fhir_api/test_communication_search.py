"""Communication search on the read-only FHIR API: each parameter, paging, counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from fhir_bridge.runtime import Runtime
from tests.fhir_api.conftest import keep_written, keep_written_again, sent_message
from tests.pipeline.messages import APPOINTMENT_REF, PATIENT_REF, planned_row

OTHER_PATIENT = "Patient/eQ8t2vVb7xk4mJcS1nRw0Gz5"
Bearer = Callable[..., dict[str, str]]


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def _search(client: TestClient, headers: dict[str, str], query: str) -> dict[str, Any]:
    response = client.get(f"/fhir/Communication?{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    body: dict[str, Any] = response.json()
    return body


def test_subject_search_returns_that_patients_communications_only(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    mine = keep_written(runtime, sent_message(fixed_now))
    keep_written(runtime, sent_message(fixed_now, patient_ref=OTHER_PATIENT))

    bundle = _search(client, bearer(), f"subject={PATIENT_REF}")

    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    assert _ids(bundle) == mine
    entry = bundle["entry"][0]
    assert entry["fullUrl"] == f"http://127.0.0.1:8000/fhir/Communication/{mine[0]}"
    assert entry["resource"]["meta"]["versionId"] == "1"
    assert entry["resource"]["payload"][0]["contentString"].startswith("Riverside Clinic")


def test_patient_takes_a_bare_id_and_means_the_subject(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    mine = keep_written(runtime, sent_message(fixed_now))
    keep_written(runtime, sent_message(fixed_now, patient_ref=OTHER_PATIENT))

    bundle = _search(client, bearer(), f"patient={PATIENT_REF.split('/')[1]}")

    assert _ids(bundle) == mine


def test_sent_ranges_follow_the_precision_of_the_value(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    november, december_1st, december_2nd = keep_written(
        runtime,
        sent_message(datetime.fromisoformat("2026-11-30T23:30:00+00:00")),
        sent_message(fixed_now),  # 2026-12-01T14:00Z
        sent_message(fixed_now + timedelta(days=1)),
    )
    headers = bearer()
    cases = {
        "sent=ge2026-12": [december_1st, december_2nd],
        "sent=lt2026-12": [november],
        "sent=2026-12-01": [december_1st],
        "sent=le2026-12-01": [november, december_1st],
        "sent=gt2026-12-01": [december_2nd],
        "sent=ge2026-12-01T09:00:00-05:00&sent=lt2026-12-02": [december_1st],
        "sent=2026-12-01T14:00Z": [december_1st],
        "sent=2026-11-30,2026-12-02": [november, december_2nd],
    }
    found = {query: sorted(_ids(_search(client, headers, query))) for query in cases}

    assert found == {query: sorted(ids) for query, ids in cases.items()}


def test_token_and_reference_parameters_match_what_was_written(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    (sms,) = keep_written(runtime, sent_message(fixed_now))
    withheld_message = planned_row(
        fixed_now,
        status="withheld",
        reason="no-consent",
        reason_detail="ningún Consent activo permite SMS",
        about=["Appointment/eXk2p9Lq3wZt7uVb1nMc4Rg8"],
        communication_status="pending",
    )
    (withheld,) = keep_written(runtime, withheld_message)
    headers = bearer()
    cases = {
        "status=completed": [sms],
        "status=not-done": [withheld],
        "status=completed,not-done": [sms, withheld],
        "category=reminder": [sms, withheld],
        "category=http://terminology.hl7.org/CodeSystem/communication-category|reminder": [
            sms,
            withheld,
        ],
        "category=urn:other-system|reminder": [],
        "medium=SMSWRIT": [sms],
        f"about={APPOINTMENT_REF}": [sms],
        "about=eXk2p9Lq3wZt7uVb1nMc4Rg8": [withheld],
        "based-on=ServiceRequest/eAb3": [],
        f"identifier=urn:fhir-bridge:message-id|{withheld_message.id}": [withheld],
        f"_id={sms}": [sms],
        "_lastUpdated=ge2020-01-01": [sms, withheld],
        "_lastUpdated=lt2020-01-01": [],
    }
    found = {query: sorted(_ids(_search(client, headers, query))) for query in cases}

    assert found == {query: sorted(ids) for query, ids in cases.items()}


def test_summary_count_gives_the_total_without_entries(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    keep_written(runtime, *(sent_message(fixed_now + timedelta(hours=h)) for h in range(3)))

    bundle = _search(client, bearer(), f"subject={PATIENT_REF}&_summary=count")

    assert bundle["total"] == 3
    assert "entry" not in bundle


def test_sort_by_sent_descending_puts_the_newest_first(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    older, newer = keep_written(
        runtime, sent_message(fixed_now), sent_message(fixed_now + timedelta(days=2))
    )

    assert _ids(_search(client, bearer(), "_sort=-sent")) == [newer, older]
    assert _ids(_search(client, bearer(), "_sort=sent")) == [older, newer]


def test_pages_follow_next_links_and_ignore_messages_written_meanwhile(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    written = keep_written(
        runtime, *(sent_message(fixed_now - timedelta(hours=h)) for h in range(5))
    )
    headers = bearer()
    first = _search(client, headers, f"subject={PATIENT_REF}&_sort=-sent&_count=2")
    # A newer message arrives between pages: with an offset it would shift page two.
    keep_written(runtime, sent_message(fixed_now + timedelta(hours=1)))

    seen, page = _ids(first), first
    while next_link := [link for link in page["link"] if link["relation"] == "next"]:
        page = client.get(next_link[0]["url"], headers=headers).json()
        seen += _ids(page)

    assert seen == written  # newest first, each exactly once
    assert first["total"] == 5


def test_a_cursor_edited_or_moved_to_another_search_is_refused(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    keep_written(runtime, *(sent_message(fixed_now - timedelta(hours=h)) for h in range(3)))
    headers = bearer()
    first = _search(client, headers, "_count=1")
    cursor = first["link"][1]["url"].split("_cursor=")[1]

    tampered = client.get(f"/fhir/Communication?_count=1&_cursor=x{cursor}", headers=headers)
    moved = client.get(f"/fhir/Communication?_count=2&_cursor={cursor}", headers=headers)

    assert (tampered.status_code, moved.status_code) == (400, 400)
    assert moved.json()["resourceType"] == "OperationOutcome"


def test_read_and_history_show_each_version_as_written(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    message = sent_message(fixed_now, delivery_status="sent")
    (resource_id,) = keep_written(runtime, message)
    message.delivery_status = "undelivered"  # a delivery receipt changes what we write
    keep_written_again(runtime, message)
    headers = bearer()

    current = client.get(f"/fhir/Communication/{resource_id}", headers=headers).json()
    history = client.get(f"/fhir/Communication/{resource_id}/_history", headers=headers).json()
    first = client.get(f"/fhir/Communication/{resource_id}/_history/1", headers=headers).json()

    assert (current["meta"]["versionId"], current["status"]) == ("2", "not-done")
    assert history["type"] == "history"
    assert history["total"] == 2
    assert [e["resource"]["status"] for e in history["entry"]] == ["not-done", "in-progress"]
    assert first["status"] == "in-progress"


def test_unknown_ids_and_versions_are_404_outcomes(
    client: TestClient, runtime: Runtime, bearer: Bearer, fixed_now: datetime
) -> None:
    (resource_id,) = keep_written(runtime, sent_message(fixed_now))
    headers = bearer()
    paths = [
        "/fhir/Communication/8d5c8a55-0000-4000-8000-000000000000",
        f"/fhir/Communication/{resource_id}/_history/7",
        f"/fhir/Communication/{resource_id}/_history/uno",
        "/fhir/Patient/eJzlzKe3KPzAV5TtkxmNivQ3",
        "/fhir/AuditEvent/no-such-event",
    ]
    responses = [client.get(path, headers=headers) for path in paths]

    assert [r.status_code for r in responses] == [404] * len(paths)
    assert {r.json()["resourceType"] for r in responses} == {"OperationOutcome"}
