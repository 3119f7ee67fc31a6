"""The notification endpoints: authenticate, validate, store once, answer.

Every accepted notification is one inbox row; anything refused leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fhir_bridge import jobs
from fhir_bridge.api import notifications
from fhir_bridge.api.app import create_app
from fhir_bridge.ingest.auth import subscription_signing_key, subscription_token
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboxNotification, Subscription
from tests.conftest import NOTIFICATION_SECRET
from tests.pipeline.conftest import add_subscription, make_runtime
from tests.pipeline.samples import (
    PATIENT_EMAIL,
    PATIENT_NAME,
    appointment,
    notification_bundle,
    patient,
    r4_status,
    r4b_status,
)

SUBSCRIPTION_ID = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b"
FHIR_JSON = "application/fhir+json"


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Inbox ids handed to the queue (one wake-up per group commit), instead of a broker."""
    ids: list[int] = []

    def wake(inbox_ids: list[int]) -> bool:
        ids.extend(inbox_ids)
        return True

    monkeypatch.setattr(notifications, "wake_worker", wake)
    return ids


def _woken(enqueued: list[int], count: int) -> list[int]:
    """The wake-up goes out just after the answers, from its own thread: wait for it."""
    deadline = time.monotonic() + 5
    while len(enqueued) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return enqueued


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    rt = make_runtime(database_url, tmp_path, max_notification_bytes=4096)
    add_subscription(rt, subscription_id=SUBSCRIPTION_ID)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


def _bearer(subscription_id: str = SUBSCRIPTION_ID) -> dict[str, str]:
    token = subscription_token(NOTIFICATION_SECRET, subscription_id)
    return {"Authorization": f"Bearer {token}", "Content-Type": FHIR_JSON}


def _post(client: TestClient, body: dict[str, Any], **headers: str) -> Any:
    return client.post(
        f"/notifications/{SUBSCRIPTION_ID}",
        content=json.dumps(body),
        headers={**_bearer(), **headers},
    )


def _inbox(rt: Runtime) -> list[InboxNotification]:
    with transaction(rt.sessions) as session:
        return list(session.scalars(select(InboxNotification).order_by(InboxNotification.id)))


def _subscription(rt: Runtime) -> Subscription:
    with transaction(rt.sessions) as session:
        row = session.get(Subscription, SUBSCRIPTION_ID)
        assert row is not None
        return row


def _id_only_event() -> dict[str, Any]:
    status = r4_status(
        "event-notification",
        events=[(1, "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3")],
        events_since_start=1,
    )
    return notification_bundle(status)


def test_unknown_subscription_is_refused_and_nothing_is_stored(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    unknown = "9a8b7c6d-0000-4000-8000-000000000000"
    response = client.post(
        f"/notifications/{unknown}", content=json.dumps(_id_only_event()), headers=_bearer(unknown)
    )

    assert response.status_code == 401
    assert _inbox(runtime) == []
    assert enqueued == []


def test_wrong_bearer_token_is_refused(client: TestClient, runtime: Runtime) -> None:
    response = client.post(
        f"/notifications/{SUBSCRIPTION_ID}",
        content=json.dumps(_id_only_event()),
        headers={"Authorization": "Bearer not-the-token", "Content-Type": FHIR_JSON},
    )

    assert response.status_code == 401
    assert response.json()["issue"][0]["code"] == "login"
    assert _inbox(runtime) == []


@pytest.mark.parametrize(
    "bundle",
    [
        pytest.param(
            notification_bundle(
                r4_status(
                    "event-notification",
                    events=[(1, "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3")],
                    events_since_start=1,
                ),
                appointment(),
            ),
            id="full-resource",
        ),
        pytest.param(_id_only_event(), id="id-only"),
        pytest.param(
            notification_bundle(
                r4_status("event-notification", events=[(1, None)], events_since_start=1)
            ),
            id="empty",
        ),
    ],
)
def test_backport_r4_notification_is_stored_once_and_queued(
    client: TestClient, runtime: Runtime, enqueued: list[int], bundle: dict[str, Any]
) -> None:
    response = _post(client, bundle)

    assert response.status_code == 200
    rows = _inbox(runtime)
    assert [(row.kind, row.status) for row in rows] == [("event-notification", "pending")]
    assert _woken(enqueued, 1) == [rows[0].id]


def test_r4b_subscription_status_notification_is_accepted(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    status = r4b_status(
        "event-notification",
        events=[(4, "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3")],
        events_since_start=4,
    )

    response = _post(client, notification_bundle(status))

    assert response.status_code == 200
    assert [row.kind for row in _inbox(runtime)] == ["event-notification"]


def test_heartbeat_is_accepted_and_recorded(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    response = _post(client, notification_bundle(r4_status("heartbeat", events_since_start=2)))
    jobs.refresh_subscription_clocks(runtime)  # the relay derives it from the inbox

    assert response.status_code == 200
    assert _subscription(runtime).last_heartbeat_at is not None
    assert [row.kind for row in _inbox(runtime)] == ["heartbeat"]


def test_handshake_is_accepted_and_recorded(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    response = _post(client, notification_bundle(r4_status("handshake", status="requested")))
    jobs.refresh_subscription_clocks(runtime)  # the relay derives it from the inbox

    assert response.status_code == 200
    assert _subscription(runtime).last_notification_at is not None
    assert [row.kind for row in _inbox(runtime)] == ["handshake"]


def test_the_same_notification_twice_is_stored_once(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    first = _post(client, _id_only_event())
    second = _post(client, _id_only_event())

    assert (first.status_code, second.status_code) == (200, 200)
    assert "duplicate" in second.json()["issue"][0]["diagnostics"]
    assert len(_inbox(runtime)) == 1
    assert _woken(enqueued, 1) == [_inbox(runtime)[0].id]


def test_malformed_json_is_a_400_operation_outcome_and_nothing_is_stored(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.post(
        f"/notifications/{SUBSCRIPTION_ID}",
        content=b'{"resourceType": "Bundle", ',
        headers=_bearer(),
    )

    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _inbox(runtime) == []


def test_hapi_style_put_with_another_resource_type_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Appointment/eJzlzKe3KPzAV5TtkxmNivQ3",
        content=json.dumps(patient()),
        headers=_bearer(),
    )

    assert response.status_code == 400
    assert _inbox(runtime) == []


def test_hapi_style_put_whose_id_differs_from_the_url_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Appointment/some-other-appointment",
        content=json.dumps(appointment()),
        headers=_bearer(),
    )

    assert response.status_code == 400
    assert _inbox(runtime) == []


def test_hapi_style_put_of_a_valid_resource_is_stored(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    response = client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Appointment/eWLhfjXHp4RUczv2VLqhCGQ3",
        content=json.dumps(appointment()),
        headers=_bearer(),
    )

    assert response.status_code == 200
    assert [row.kind for row in _inbox(runtime)] == ["classic-resource"]


def test_invalid_fhir_is_refused_without_echoing_patient_data(
    client: TestClient, runtime: Runtime
) -> None:
    bad = patient()
    bad["birthDate"] = f"born {PATIENT_NAME} {PATIENT_EMAIL}"
    bad["name"][0]["text"] = {"not": "a string"}

    response = client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Patient/{bad['id']}",
        content=json.dumps(bad),
        headers=_bearer(),
    )

    assert response.status_code == 400
    text = response.text
    assert PATIENT_NAME not in text
    assert PATIENT_EMAIL not in text
    assert "Lopez" not in text
    assert _inbox(runtime) == []


def test_appointment_with_an_invalid_datetime_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    bad = appointment(start="next Tuesday at 3:30")

    response = client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Appointment/{bad['id']}",
        content=json.dumps(bad),
        headers=_bearer(),
    )

    assert response.status_code == 400
    assert "next Tuesday" not in response.text
    assert _inbox(runtime) == []


def test_oversized_body_is_refused_with_413(client: TestClient, runtime: Runtime) -> None:
    bundle = _id_only_event()
    bundle["entry"][0]["resource"]["id"] = "x" * 5000

    response = _post(client, bundle)

    assert response.status_code == 413
    assert _inbox(runtime) == []


def _signed(body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def test_medplum_style_resource_with_a_valid_signature_is_stored(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    body = json.dumps(appointment()).encode()
    key = subscription_signing_key(NOTIFICATION_SECRET, SUBSCRIPTION_ID)

    response = client.post(
        f"/notifications/{SUBSCRIPTION_ID}",
        content=body,
        headers={"Content-Type": FHIR_JSON, "X-Signature": _signed(body, key)},
    )

    assert response.status_code == 200
    assert [row.kind for row in _inbox(runtime)] == ["classic-resource"]


def test_medplum_style_resource_with_a_wrong_signature_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    body = json.dumps(appointment()).encode()

    response = client.post(
        f"/notifications/{SUBSCRIPTION_ID}",
        content=body,
        headers={"Content-Type": FHIR_JSON, "X-Signature": _signed(body, "some-other-key")},
    )

    assert response.status_code == 401
    assert _inbox(runtime) == []


def test_broker_outage_still_answers_200_and_leaves_the_row_for_the_relay(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhir_bridge import tasks

    # What ``try_enqueue`` does when the broker refuses: log and say so, never raise.
    monkeypatch.setattr(tasks, "try_enqueue", lambda *_args: False)

    response = _post(client, _id_only_event())

    assert response.status_code == 200
    rows = _inbox(runtime)
    assert [row.status for row in rows] == ["pending"]
    deadline = time.monotonic() + 10  # the failed wake-up hands the row back to the relay
    while not (relayed := jobs.inbox_to_relay(runtime)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relayed == [rows[0].id]


def test_inbox_counts_one_row_per_distinct_event(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    for number in (1, 2, 3):
        status = r4_status(
            "event-notification",
            events=[(number, "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3")],
            events_since_start=number,
        )
        assert _post(client, notification_bundle(status)).status_code == 200

    with transaction(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(InboxNotification)) == 3


# No 5xx for any input: every malformed shape is a 4xx OperationOutcome and stores nothing.


@pytest.fixture
def roomy_client(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    """The API with the default 1 MB body limit, so the body's shape, not its size, decides."""
    rt = make_runtime(database_url, tmp_path / "roomy")
    add_subscription(rt, subscription_id=SUBSCRIPTION_ID)
    with TestClient(create_app(rt)) as test_client:
        yield test_client, rt
    rt.engine.dispose()


def _refused(response: Any, status: int = 400) -> str:
    assert response.status_code == status
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["code"])


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"Authorization": "Bearer tökén-für-dr-núñez"}, id="authorization"),
        pytest.param({"X-Signature": "firmá-inválida"}, id="x-signature"),
    ],
)
def test_non_ascii_credentials_are_refused_alike_for_known_and_unknown_subscriptions(
    client: TestClient, runtime: Runtime, header: dict[str, str]
) -> None:
    unknown = "9a8b7c6d-0000-4000-8000-000000000000"
    body = json.dumps(_id_only_event()).encode("utf-8")
    headers = {"Content-Type": FHIR_JSON, **{k: v.encode("utf-8") for k, v in header.items()}}

    known_answer = client.post(f"/notifications/{SUBSCRIPTION_ID}", content=body, headers=headers)
    unknown_answer = client.post(f"/notifications/{unknown}", content=body, headers=headers)

    assert (known_answer.status_code, unknown_answer.status_code) == (401, 401)
    assert known_answer.json() == unknown_answer.json()
    assert _inbox(runtime) == []


def test_a_nul_byte_in_the_subscription_id_is_refused_as_unauthenticated(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.post(
        "/notifications/3f1d2c4b%00-5a69", content=json.dumps(_id_only_event()), headers=_bearer()
    )

    assert _refused(response, 401) == "login"
    assert _inbox(runtime) == []


def test_json_nested_a_hundred_thousand_levels_deep_is_refused(
    roomy_client: tuple[TestClient, Runtime],
) -> None:
    client, rt = roomy_client
    deep = b'{"resourceType": "Bundle", "type": "history", "entry": ' + b"[" * 100_000
    deep += b"]" * 100_000 + b"}"

    response = client.post(f"/notifications/{SUBSCRIPTION_ID}", content=deep, headers=_bearer())

    assert _refused(response) == "too-costly"
    assert _inbox(rt) == []


def test_a_five_thousand_digit_number_is_refused(
    roomy_client: tuple[TestClient, Runtime],
) -> None:
    client, rt = roomy_client
    text = json.dumps(_id_only_event()).replace('"1"', "9" * 5000, 1)

    response = client.post(f"/notifications/{SUBSCRIPTION_ID}", content=text, headers=_bearer())

    assert response.status_code == 400
    assert _inbox(rt) == []


def _with(change: str) -> dict[str, Any]:
    """The id-only event with one part replaced by a value of the wrong JSON type."""
    bundle = _id_only_event()
    parameters = bundle["entry"][0]["resource"]["parameter"]
    event = next(p for p in parameters if p["name"] == "notification-event")
    if change == "entry-string":
        bundle["entry"][0] = "Parameters/7d0c2d0e"
    elif change == "resource-list":
        bundle["entry"][0]["resource"] = [bundle["entry"][0]["resource"]]
    elif change == "parameter-object":
        bundle["entry"][0]["resource"]["parameter"] = {"name": "type"}
    elif change == "parameter-item-string":
        parameters.append("notification-event")
    elif change == "type-list":
        next(p for p in parameters if p["name"] == "type")["valueCode"] = ["event-notification"]
    elif change == "focus-string":
        event["part"].append({"name": "focus", "valueReference": "Appointment/eWLhfjXH"})
    elif change == "focus-reference-number":
        event["part"].append({"name": "focus", "valueReference": {"reference": 42}})
    elif change == "part-object":
        event["part"] = {"name": "event-number", "valueString": "1"}
    elif change == "part-item-number":
        event["part"].append(7)
    elif change == "event-number-object":
        event["part"][0]["valueString"] = {"value": 1}
    elif change == "full-resource-string":
        bundle["entry"].append({"resource": "Appointment/eWLhfjXH"})
    elif change == "entry-not-a-list":
        bundle["entry"] = {"resource": bundle["entry"][0]["resource"]}
    return bundle


@pytest.mark.parametrize(
    "change",
    [
        "entry-string",
        "resource-list",
        "parameter-object",
        "parameter-item-string",
        "type-list",
        "focus-string",
        "focus-reference-number",
        "part-object",
        "part-item-number",
        "event-number-object",
        "full-resource-string",
        "entry-not-a-list",
    ],
)
def test_a_value_of_the_wrong_json_type_is_a_400_and_nothing_is_stored(
    client: TestClient, runtime: Runtime, enqueued: list[int], change: str
) -> None:
    response = _post(client, _with(change))

    _refused(response)
    assert _inbox(runtime) == []
    assert enqueued == []


def _event(number: int | str) -> dict[str, Any]:
    status = r4_status("event-notification", events=[(1, "Appointment/eWLhfjXHp4RUczv2VLqhCGQ3")])
    event = next(p for p in status["parameter"] if p["name"] == "notification-event")
    event["part"][0]["valueString"] = str(number)
    return notification_bundle(status)


@pytest.mark.parametrize("number", [2**31, 2**63, "-1", "٣", "²"])
def test_an_event_number_beyond_what_the_store_counts_is_refused(
    client: TestClient, runtime: Runtime, number: int | str
) -> None:
    response = _post(client, _event(number))

    assert _refused(response) == "value"
    assert _inbox(runtime) == []


def test_the_largest_32_bit_event_number_is_accepted(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    response = _post(client, _event(2**31 - 1))

    assert response.status_code == 200
    assert len(_inbox(runtime)) == 1


def test_a_nul_character_anywhere_in_the_body_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    bad = appointment()
    bad["description"] = "Seguimiento\u0000 con la Dra. Núñez"

    response = client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Appointment/{bad['id']}",
        content=json.dumps(bad),
        headers=_bearer(),
    )

    assert _refused(response) == "value"
    assert _inbox(runtime) == []


def test_a_resource_id_longer_than_fhir_allows_is_refused(
    client: TestClient, runtime: Runtime
) -> None:
    long_id = "eWLhfjXHp4RUczv2VLqhCGQ3" * 3

    response = client.put(
        f"/notifications/{SUBSCRIPTION_ID}/Appointment/{long_id}",
        content=json.dumps(appointment(appointment_id=long_id)),
        headers=_bearer(),
    )

    assert response.status_code == 400
    assert _inbox(runtime) == []


def test_long_dedupe_keys_stay_within_the_column_and_distinct(
    client: TestClient, runtime: Runtime, enqueued: list[int]
) -> None:
    long_sub = "0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a"
    add_subscription(
        runtime, subscription_id=long_sub, resource_type="Encounter", remote_id="r" * 128
    )
    appointment_id = "A" * 64
    first = appointment(appointment_id=appointment_id, version="v" * 63 + "1")
    second = appointment(appointment_id=appointment_id, version="v" * 63 + "2")

    for resource in (first, second):
        response = client.put(
            f"/notifications/{long_sub}/Appointment/{appointment_id}",
            content=json.dumps(resource),
            headers=_bearer(long_sub),
        )
        assert response.status_code == 200

    keys = [row.dedupe_key for row in _inbox(runtime)]
    assert len(keys) == 2
    assert len(set(keys)) == 2
    assert all(len(key) <= 255 for key in keys)


def test_an_unreachable_database_is_a_503_with_retry_after(tmp_path: Path) -> None:
    rt = make_runtime("postgresql://postgres@127.0.0.1:9/fhir_bridge", tmp_path)
    with TestClient(create_app(rt)) as unreachable:
        response = unreachable.post(
            f"/notifications/{SUBSCRIPTION_ID}",
            content=json.dumps(_id_only_event()),
            headers=_bearer(),
        )

    assert _refused(response, 503) == "transient"
    assert int(response.headers["Retry-After"]) > 0
