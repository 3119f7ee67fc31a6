"""Started with `--fhir-version R4B`, notifications carry a native SubscriptionStatus."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fhir.resources.R4B.bundle import Bundle

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver
from tests.fake_ehr.samples import appointment, patient, topic_subscription

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def r4b_ehr() -> Iterator[EhrServer]:
    with EhrServer(fhir_version="R4B") as server:
        yield server


def test_r4b_event_notification_starts_with_a_subscription_status(
    r4b_ehr: EhrServer, receiver: NotificationReceiver
) -> None:
    r4b_ehr.create(topic_subscription(receiver.url, "id-only"))
    booked = r4b_ehr.create(appointment(r4b_ehr.create(patient())["id"]))

    notification = receiver.wait_for(2)[1].json()

    Bundle.model_validate(notification)
    status = notification["entry"][0]["resource"]
    assert status["resourceType"] == "SubscriptionStatus"
    assert status["type"] == "event-notification"
    assert status["notificationEvent"][0]["focus"]["reference"].endswith(
        f"/Appointment/{booked['id']}"
    )
