"""Waiting, boundedly, for the fake EHR to move a Subscription to a status."""

from __future__ import annotations

import time
from typing import Any

from fhir_bridge.sandbox import EhrServer


def wait_for_status(ehr: EhrServer, subscription_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        subscription = ehr.read("Subscription", subscription_id)
        if subscription["status"] == status:
            return subscription
        time.sleep(0.05)
    raise AssertionError(f"Subscription never reached {status}")


def wait_for_deliveries(ehr: EhrServer, count: int) -> list[dict[str, Any]]:
    """The EHR's delivery log once it holds ``count`` attempts (it records an attempt after
    the receiver answered, so a receiver can see a request before the log shows it)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        deliveries = ehr.deliveries()
        if len(deliveries) >= count:
            return deliveries
        time.sleep(0.05)
    raise AssertionError(f"the EHR never logged {count} delivery attempts")
