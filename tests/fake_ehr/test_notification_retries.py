"""The development EHR retries a failed notification like real EHRs do: a 5xx (or no answer)
is tried again with backoff a bounded number of times; a 4xx refusal is not. Only a
notification whose every try failed counts toward putting the Subscription in ``error``."""

from __future__ import annotations

import pytest

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.process import EhrRequestError
from fhir_bridge.sandbox.receiver import NotificationReceiver
from tests.fake_ehr.samples import appointment, classic_subscription, patient
from tests.fake_ehr.waiting import wait_for_deliveries, wait_for_status

pytestmark = pytest.mark.integration


def test_a_notification_answered_503_is_retried_until_the_receiver_takes_it(
    ehr: EhrServer,
) -> None:
    ehr.settings(max_delivery_failures=1, retry_backoff_seconds=0.01)
    with NotificationReceiver(fail_first=2) as flaky:
        subscription = ehr.create(classic_subscription(flaky.url, payload="application/fhir+json"))
        booked = ehr.create(appointment(ehr.create(patient())["id"]))

        tries = flaky.wait_for(3)

    assert [request.json() for request in tries] == [booked] * 3
    assert [entry["status_code"] for entry in wait_for_deliveries(ehr, 3)] == [503, 503, 200]
    assert ehr.read("Subscription", subscription["id"])["status"] == "active"


def test_a_notification_failing_every_try_puts_the_subscription_in_error(
    ehr: EhrServer,
) -> None:
    ehr.settings(max_delivery_failures=1, delivery_retries=3, retry_backoff_seconds=0.01)
    with NotificationReceiver(status_code=502) as down:
        subscription = ehr.create(classic_subscription(down.url))
        ehr.create(appointment(ehr.create(patient())["id"]))

        failed = wait_for_status(ehr, subscription["id"], "error")

        assert len(down.requests) == 1 + 3
    assert failed["error"] == "1 consecutive delivery failures (last: HTTP 502)"


def test_a_refusal_is_not_retried(ehr: EhrServer) -> None:
    ehr.settings(max_delivery_failures=1, retry_backoff_seconds=0.01)
    with NotificationReceiver(status_code=401) as refusing:
        subscription = ehr.create(classic_subscription(refusing.url))
        ehr.create(appointment(ehr.create(patient())["id"]))

        wait_for_status(ehr, subscription["id"], "error")

        assert len(refusing.requests) == 1


def test_retry_settings_are_bounded(ehr: EhrServer) -> None:
    with pytest.raises(EhrRequestError) as refused:
        ehr.settings(delivery_retries=50)

    assert refused.value.status_code == 400
