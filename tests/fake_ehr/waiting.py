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
