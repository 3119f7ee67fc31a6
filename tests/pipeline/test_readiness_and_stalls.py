"""A stall is visible: /ready reports each queue's oldest waiting item and degrades past the
threshold, the relay names the stalled queue, and a stuck worker's lease ends."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_bridge import jobs
from fhir_bridge.api.app import create_app
from fhir_bridge.ingest import repository as inbox_repository
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboundMessage
from tests.pipeline.conftest import make_runtime
from tests.support.databases import sqlite_database

REPLY_BODY = "Sí, confirmo mi cita del martes"


def _inbound(received_at: datetime) -> InboundMessage:
    return InboundMessage(
        provider_message_id="SM3f9a1c2b7d4e4f6a8b0c1d2e3f4a5b6c",
        from_address="+15550104477",
        to_address="+15550100000",
        body=REPLY_BODY,
        received_at=received_at,
        status="pending",
    )


def test_ready_degrades_naming_a_queue_stalled_past_the_threshold(tmp_path: Path) -> None:
    with sqlite_database(tmp_path) as url:
        rt = make_runtime(url, tmp_path, stall_seconds=300)
        with transaction(rt.sessions) as session:
            session.add(_inbound(datetime.now(UTC) - timedelta(seconds=420)))
        with TestClient(create_app(rt)) as client:
            response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["queues"] == "stalled"
    assert body["stalled"] == [
        {"queue": "inbound-sms", "age_seconds": body["queues"]["inbound-sms"]}
    ]
    assert body["queues"]["inbound-sms"] >= 420
    assert body["queues"]["inbox-notifications"] is None
    assert REPLY_BODY not in response.text and "+1555" not in response.text


def test_ready_stays_up_while_work_is_younger_than_the_threshold(tmp_path: Path) -> None:
    with sqlite_database(tmp_path) as url:
        rt = make_runtime(url, tmp_path, stall_seconds=300)
        with transaction(rt.sessions) as session:
            session.add(_inbound(datetime.now(UTC) - timedelta(seconds=20)))
        with TestClient(create_app(rt)) as client:
            response = client.get("/ready")
    assert response.status_code == 200
    assert "stalled" not in response.json()


def test_the_relay_logs_one_warning_naming_the_stalled_queue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with sqlite_database(tmp_path) as url:
        rt = make_runtime(url, tmp_path, stall_seconds=60)
        with transaction(rt.sessions) as session:
            session.add(_inbound(datetime.now(UTC) - timedelta(seconds=900)))
        with caplog.at_level(logging.WARNING, logger="fhir_bridge.jobs"):
            stalled = jobs.warn_about_stalls(rt)
    assert list(stalled) == ["inbound-sms"]
    warnings = [r for r in caplog.records if "stalled" in r.getMessage()]
    assert len(warnings) == 1
    assert "inbound-sms" in warnings[0].getMessage()
    assert REPLY_BODY not in caplog.text


def test_a_notification_held_by_a_stuck_worker_is_relayed_once_its_lease_ends(
    tmp_path: Path,
) -> None:
    with sqlite_database(tmp_path) as url:
        rt = make_runtime(url, tmp_path, lease_seconds=30)
        now = datetime.now(UTC)
        with transaction(rt.sessions) as session:
            inbox_id = inbox_repository.insert_if_new(
                session,
                subscription_id=None,
                dedupe_key="sub-appointment-7731:event:12",
                kind="event-notification",
                body={"resourceType": "Bundle", "type": "history", "entry": []},
                now=now,
            )
            assert inbox_id is not None
            assert inbox_repository.claim(session, inbox_id, now, rt.lease)  # the stuck worker
        assert inbox_id not in jobs.inbox_to_relay(rt), "held under a live lease"
        rt.clock = lambda: now + timedelta(seconds=31)
        assert jobs.inbox_to_relay(rt) == [inbox_id]
