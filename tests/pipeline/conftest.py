"""Fixtures for the pipeline specifications: runtimes, subscriptions, the fake EHR."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox.process import DEV_TOKEN, EhrServer
from fhir_bridge.sandbox.receiver import NotificationReceiver
from fhir_bridge.settings import load_settings
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import Subscription
from tests.conftest import NOTIFICATION_SECRET
from tests.support.databases import sqlite_database

CLOSED_BROKER = "redis://127.0.0.1:1/0"


def make_runtime(database_url: str, tmp_path: Path, **overrides: Any) -> Runtime:
    """A runtime with test-safe defaults: outbox channels under tmp_path, no real broker."""
    settings: dict[str, Any] = {
        "database_url": database_url,
        "notification_secret": NOTIFICATION_SECRET,
        "broker_url": CLOSED_BROKER,
        "outbox_dir": tmp_path / "outbox",
        "data_dir": tmp_path,
        "ehr_auth": "static",
        "ehr_static_token": DEV_TOKEN,
        "clock_skew_seconds": 1,
    }
    settings.update(overrides)
    return Runtime(settings=load_settings(**settings))


def add_subscription(
    rt: Runtime,
    *,
    subscription_id: str = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b",
    resource_type: str = "Appointment",
    remote_id: str | None = "sub-appointment-7731",
    events_through: int = 0,
) -> str:
    """Record one of our Subscriptions locally, as ``subscriptions create`` would have."""
    now = datetime.now(UTC)
    with transaction(rt.sessions) as session:
        session.add(
            Subscription(
                id=subscription_id,
                resource_type=resource_type,
                kind="topic",
                payload="id-only",
                criteria=f"http://fhir-bridge.test/SubscriptionTopic/{resource_type.lower()}-change",
                remote_id=remote_id,
                endpoint=f"http://127.0.0.1:8000/notifications/{subscription_id}",
                status="active",
                events_through=events_through,
                good_through=now,
                created_at=now,
            )
        )
    return subscription_id


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    with sqlite_database(tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def ehr(ehr_server: EhrServer) -> EhrServer:
    ehr_server.reset()
    return ehr_server


@pytest.fixture
def receiver() -> Iterator[NotificationReceiver]:
    with NotificationReceiver() as endpoint:
        yield endpoint


@pytest.fixture
def ehr_runtime(
    ehr: EhrServer, receiver: NotificationReceiver, sqlite_url: str, tmp_path: Path
) -> Iterator[Runtime]:
    """A runtime wired to the fake EHR whose public URL is the recording receiver."""
    rt = make_runtime(
        sqlite_url,
        tmp_path,
        ehr_base_url=ehr.base_url,
        public_base_url=receiver.url.removesuffix("/notify"),
        ehr_max_attempts=2,
    )
    yield rt
    rt.ehr.close()
    rt.engine.dispose()
