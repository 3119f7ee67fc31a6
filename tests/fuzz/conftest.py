"""The API under fuzzing: a real store (SQLite and PostgreSQL), one real Subscription, a Twilio
auth token, and no broker (enqueueing is recorded instead)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fhir_bridge import tasks
from fhir_bridge.api import notifications
from fhir_bridge.api.app import create_app
from fhir_bridge.ingest.auth import subscription_token
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import (
    DeliveryReceipt,
    InboundMessage,
    InboxNotification,
    Subscription,
)
from tests.pipeline.conftest import add_subscription, make_runtime

SUBSCRIPTION_ID = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b"
TWILIO_AUTH_TOKEN = "5d1c0e7b9a2f4c6e8b0d2f4a6c8e0b1d"
PUBLIC_BASE = "https://bridge.riverside.example.org"
# 256 bits, as the service requires.
NOTIFICATION_SECRET = "b5c1e0f4a7d2936c8e1f0a4b7d2c5e8f1a3b6c9d2e5f8a1b4c7d0e3f6a9b2c5d"


@dataclass
class FuzzedApi:
    runtime: Runtime
    client: TestClient

    @property
    def bearer(self) -> str:
        return f"Bearer {subscription_token(NOTIFICATION_SECRET, SUBSCRIPTION_ID)}"

    def state(self) -> tuple[Any, ...]:
        """Everything a request may change: rows per table and the Subscription's clocks."""
        with transaction(self.runtime.sessions) as session:
            subscription = session.get(Subscription, SUBSCRIPTION_ID)
            assert subscription is not None
            return (
                *(
                    session.scalar(select(func.count()).select_from(table))
                    for table in (InboxNotification, DeliveryReceipt, InboundMessage)
                ),
                subscription.last_notification_at,
                subscription.last_heartbeat_at,
                subscription.events_through,
            )


@pytest.fixture
def api(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FuzzedApi]:
    monkeypatch.setattr(notifications, "wake_worker", lambda _inbox_ids: True)
    monkeypatch.setattr(tasks, "try_enqueue", lambda *_args: True)
    rt = make_runtime(
        database_url,
        tmp_path,
        notification_secret=NOTIFICATION_SECRET,
        twilio_auth_token=TWILIO_AUTH_TOKEN,
        public_base_url=PUBLIC_BASE,
    )
    add_subscription(rt, subscription_id=SUBSCRIPTION_ID)
    with TestClient(create_app(rt)) as client:
        yield FuzzedApi(rt, client)
    rt.engine.dispose()
