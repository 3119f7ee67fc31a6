"""One fake EHR process per test module, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def ehr(ehr_server: EhrServer) -> EhrServer:
    ehr_server.reset()
    return ehr_server


@pytest.fixture
def fhir(ehr: EhrServer) -> Iterator[httpx.Client]:
    """Raw FHIR client with the static bearer token, for asserting status codes and headers."""
    headers = {"Authorization": f"Bearer {ehr.static_token}", "Accept": "application/fhir+json"}
    with httpx.Client(base_url=ehr.base_url, headers=headers, timeout=10.0) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    with NotificationReceiver() as endpoint:
        yield endpoint
