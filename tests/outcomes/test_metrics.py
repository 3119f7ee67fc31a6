"""``/metrics`` for Prometheus: the names a dashboard uses, numbers from the database, no PHI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fhir_bridge.api.app import create_app
from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import load_settings
from tests.outcomes.history import History, seed_large_history

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fhir-bridge.json"
SECRET = "test-notification-secret-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue"
METRIC_NAMES = {
    "fhir_bridge_notifications",
    "fhir_bridge_notifications_processed",
    "fhir_bridge_ingest_seconds",
    "fhir_bridge_messages_planned",
    "fhir_bridge_messages_settled",
    "fhir_bridge_messages_open",
    "fhir_bridge_delivery_seconds",
    "fhir_bridge_writebacks",
    "fhir_bridge_writeback_seconds",
    "fhir_bridge_queue_depth",
    "fhir_bridge_queue_oldest_age_seconds",
    "fhir_bridge_metrics_query_seconds",
}


def _client(database_url: str, **settings: str) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = Runtime(
        settings=load_settings(
            database_url=database_url,
            notification_secret=SECRET,
            log_level="WARNING",
            **settings,
        ),
        clock=lambda: NOW,
    )
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


@pytest.fixture
def scraped(database_url: str) -> Iterator[tuple[str, History]]:
    for client, runtime in _client(database_url):
        history = seed_large_history(runtime.sessions, NOW)
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        yield response.text, history


def test_metrics_expose_every_name_the_dashboard_uses(scraped: tuple[str, History]) -> None:
    text, _ = scraped
    names = {family.name for family in text_string_to_metric_families(text)}
    assert names >= METRIC_NAMES


def test_message_counters_match_the_rows_in_the_database(scraped: tuple[str, History]) -> None:
    text, history = scraped
    families = {family.name: family for family in text_string_to_metric_families(text)}
    planned = sum(s.value for s in families["fhir_bridge_messages_planned"].samples)
    assert planned == len(history.messages)
    withheld = sum(
        s.value
        for s in families["fhir_bridge_messages_settled"].samples
        if s.labels["outcome"] == "withheld"
    )
    assert withheld == sum(1 for m in history.messages if m["status"] == "withheld")
    delivery = {
        s.labels["channel"]: s.value
        for s in families["fhir_bridge_delivery_seconds"].samples
        if s.name.endswith("_count")
    }
    sent = [m for m in history.messages if m["sent_at"] is not None]
    assert delivery == {
        "sms": sum(1 for m in sent if m["channel"] == "sms"),
        "email": sum(1 for m in sent if m["channel"] == "email"),
    }


def test_labels_come_from_fixed_sets_and_no_phi_appears(scraped: tuple[str, History]) -> None:
    text, history = scraped
    allowed = {
        "kind": {
            "handshake",
            "heartbeat",
            "event-notification",
            "query-status",
            "query-event",
            "classic-empty",
            "classic-resource",
            "other",
        },
        "channel": {"sms", "email", "none", "other"},
        "rule": {"appointment-reminder", "refill-notice", "discharge-checkin", "other"},
        "outcome": {
            "done",
            "rejected",
            "failed",
            "sent",
            "withheld",
            "cancelled",
            "unknown",
            "written",
        },
        "queue": {
            "inbox-notifications",
            "messages-due",
            "write-backs",
            "inbound-sms",
            "delivery-receipts",
            "communication-syncs",
        },
    }
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name, value in sample.labels.items():
                if name != "le":
                    assert value in allowed[name], (family.name, name, value)
    assert history.phi and not [value for value in history.phi if value in text]
    assert "Location/" not in text and "Patient/" not in text


def test_a_configured_token_is_required(database_url: str) -> None:
    for client, _ in _client(database_url, metrics_token="prom-scrape-9f2c41d7e8a3b6"):
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = client.get(
            "/metrics", headers={"Authorization": "Bearer prom-scrape-9f2c41d7e8a3b6"}
        )
        assert right.status_code == 200 and "fhir_bridge_queue_depth" in right.text


def test_the_sample_grafana_dashboard_uses_only_metrics_we_expose() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["schemaVersion"] >= 36
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs and all(panel["gridPos"] for panel in dashboard["panels"])
    used = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for expr in exprs
        for name in re.findall(r"fhir_bridge_[a-z_]+", expr)
    }
    assert used <= METRIC_NAMES
    assert len(used) >= 10
