"""Subscriptions: backport topic notifications, classic rest-hooks, failures and operations."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import httpx
import pytest
from fhirclient.models.bundle import Bundle

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver
from tests.fake_ehr.samples import appointment, classic_subscription, patient, topic_subscription
from tests.fake_ehr.waiting import wait_for_status

pytestmark = pytest.mark.integration


def _parameter(status: dict[str, Any], name: str) -> Any:
    return next(p for p in status["parameter"] if p["name"] == name)


def test_topic_subscription_handshakes_then_delivers_full_resource(
    ehr: EhrServer, receiver: NotificationReceiver
) -> None:
    subscription = ehr.create(topic_subscription(receiver.url, "full-resource"))
    wait_for_status(ehr, subscription["id"], "active")
    booked = ehr.create(appointment(ehr.create(patient())["id"]))

    handshake, event = receiver.wait_for(2)

    assert _parameter(handshake.json()["entry"][0]["resource"], "type")["valueCode"] == "handshake"
    notification = event.json()
    Bundle(notification, strict=True)
    status = notification["entry"][0]["resource"]
    assert _parameter(status, "type")["valueCode"] == "event-notification"
    assert _parameter(status, "events-since-subscription-start")["valueString"] == "1"
    assert notification["entry"][1]["resource"] == booked
    assert event.headers["Authorization"] == "Bearer bridge-inbound-secret"


def test_topic_filter_criteria_skip_non_matching_resources(
    ehr: EhrServer, receiver: NotificationReceiver
) -> None:
    subscription = ehr.create(
        topic_subscription(receiver.url, "id-only", filter_criteria="Appointment?status=booked")
    )
    wait_for_status(ehr, subscription["id"], "active")
    patient_id = ehr.create(patient())["id"]
    ehr.create(appointment(patient_id, status="proposed"))
    booked = ehr.create(appointment(patient_id, status="booked"))

    event = receiver.wait_for(2)[1].json()

    assert event["entry"][1]["fullUrl"] == f"{ehr.base_url}/Appointment/{booked['id']}"
    assert "resource" not in event["entry"][1]


def test_classic_subscription_without_payload_posts_an_empty_body(
    ehr: EhrServer, receiver: NotificationReceiver
) -> None:
    ehr.create(classic_subscription(receiver.url))
    ehr.create(appointment(ehr.create(patient())["id"]))

    (ping,) = receiver.wait_for(1)

    assert (ping.method, ping.body) == ("POST", b"")
    assert ping.headers["Authorization"] == "Bearer bridge-inbound-secret"


def test_classic_subscription_with_payload_puts_the_resource_hapi_style(
    ehr: EhrServer, receiver: NotificationReceiver
) -> None:
    ehr.create(classic_subscription(receiver.url, payload="application/fhir+json"))
    booked = ehr.create(appointment(ehr.create(patient())["id"]))

    (put,) = receiver.wait_for(1)

    assert put.method == "PUT"
    assert put.path == f"/notify/Appointment/{booked['id']}"
    assert put.json() == booked


def test_medplum_style_subscription_signs_the_exact_body(
    ehr: EhrServer, receiver: NotificationReceiver
) -> None:
    ehr.create(classic_subscription(receiver.url, medplum_secret="whsec-4b1d"))
    ehr.create(appointment(ehr.create(patient())["id"]))

    (post,) = receiver.wait_for(1)

    expected = hmac.new(b"whsec-4b1d", post.body, hashlib.sha256).hexdigest()
    assert post.headers["X-Signature"] == expected


def test_subscription_errors_after_consecutive_failed_deliveries(ehr: EhrServer) -> None:
    ehr.settings(delivery_retries=1, retry_backoff_seconds=0.01)
    with NotificationReceiver(status_code=503) as failing:
        subscription = ehr.create(classic_subscription(failing.url))
        patient_id = ehr.create(patient())["id"]
        for n in range(4):
            ehr.create(appointment(patient_id, csn=f"20000000{n}"))
        failed = wait_for_status(ehr, subscription["id"], "error")
        time.sleep(0.3)

    assert "consecutive delivery failures" in failed["error"]
    assert len(failing.requests) == 3 * 2  # three notifications, each tried twice


def test_status_operation_reports_the_event_count(
    ehr: EhrServer, receiver: NotificationReceiver, fhir: httpx.Client
) -> None:
    subscription = ehr.create(topic_subscription(receiver.url))
    wait_for_status(ehr, subscription["id"], "active")
    patient_id = ehr.create(patient())["id"]
    ehr.create(appointment(patient_id))
    ehr.create(appointment(patient_id))

    bundle = fhir.get(f"Subscription/{subscription['id']}/$status").json()

    status = bundle["entry"][0]["resource"]
    assert bundle["type"] == "searchset"
    assert _parameter(status, "type")["valueCode"] == "query-status"
    assert _parameter(status, "events-since-subscription-start")["valueString"] == "2"
    assert _parameter(status, "status")["valueCode"] == "active"


def test_events_operation_replays_the_requested_event_range(
    ehr: EhrServer, receiver: NotificationReceiver, fhir: httpx.Client
) -> None:
    subscription = ehr.create(topic_subscription(receiver.url, "id-only"))
    patient_id = ehr.create(patient())["id"]
    created = [ehr.create(appointment(patient_id, csn=f"3000000{n}")) for n in range(3)]

    bundle = fhir.get(
        f"Subscription/{subscription['id']}/$events",
        params={"eventsSinceNumber": "2", "eventsUntilNumber": "3", "content": "full-resource"},
    ).json()

    assert bundle["type"] == "history"
    assert [entry["resource"]["id"] for entry in bundle["entry"][1:]] == [
        created[1]["id"],
        created[2]["id"],
    ]


def test_events_operation_is_not_supported_when_switched_off(
    ehr: EhrServer, receiver: NotificationReceiver, fhir: httpx.Client
) -> None:
    ehr.settings(supports_events=False)
    subscription = ehr.create(topic_subscription(receiver.url))

    response = fhir.get(f"Subscription/{subscription['id']}/$events")

    assert response.status_code == 501
    assert response.json()["issue"][0]["code"] == "not-supported"


def test_drop_next_loses_the_notification_but_still_counts_the_event(
    ehr: EhrServer, receiver: NotificationReceiver, fhir: httpx.Client
) -> None:
    subscription = ehr.create(topic_subscription(receiver.url, "id-only"))
    wait_for_status(ehr, subscription["id"], "active")
    ehr.set_chaos(drop_next=1)
    patient_id = ehr.create(patient())["id"]
    ehr.create(appointment(patient_id, csn="4000001"))
    ehr.create(appointment(patient_id, csn="4000002"))

    _handshake, delivered = receiver.wait_for(2)

    status = delivered.json()["entry"][0]["resource"]
    event_parts = _parameter(status, "notification-event")["part"]
    assert next(p for p in event_parts if p["name"] == "event-number")["valueString"] == "2"
    assert _event_deliveries_dropped(ehr, expected=2) == [True, False]


def _event_deliveries_dropped(ehr: EhrServer, expected: int) -> list[bool]:
    """The delivery log is written just after the receiver answers: wait for it."""
    deadline = time.monotonic() + 10
    while True:
        dropped = [d["dropped"] for d in ehr.deliveries() if d["type"] == "event-notification"]
        if len(dropped) >= expected or time.monotonic() > deadline:
            return dropped
        time.sleep(0.05)
