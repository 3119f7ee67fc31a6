"""Fixtures for reconciliation, export and retention: the development EHR, a database, the
``fhir-bridge`` command run in-process on both (settings from the environment, as a shell)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_bridge import cli, jobs
from fhir_bridge.runtime import Runtime, get_runtime
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.process import DEV_TOKEN
from fhir_bridge.settings import get_settings
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from tests.conftest import NOTIFICATION_SECRET
from tests.pipeline.messages import planned_row
from tests.support.databases import sqlite_database

IDENTIFIER_SYSTEM = "urn:fhir-bridge:message-id"
PATIENT_REF = "Patient/erXuFYUfucBZaryVksYEcMg3"
SPANISH_TEXT = "Clínica Riverside: recordatorio de su cita el martes a las 10:30. STOP para salir"


@pytest.fixture(scope="session")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def ehr(ehr_server: EhrServer) -> EhrServer:
    ehr_server.reset()
    return ehr_server


@pytest.fixture
def bridge(
    tmp_path: Path, ehr: EhrServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Runtime]]:
    """Configure fhir-bridge through its environment; returns a function giving the runtime
    the command will use (after optional extra settings)."""
    with sqlite_database(tmp_path) as url:
        env = {
            "DATABASE_URL": url,
            "DATA_DIR": str(tmp_path / "data"),
            "NOTIFICATION_SECRET": NOTIFICATION_SECRET,
            "BROKER_URL": "redis://127.0.0.1:1/0",
            "EHR_BASE_URL": ehr.base_url,
            "EHR_AUTH": "static",
            "EHR_STATIC_TOKEN": DEV_TOKEN,
            "EHR_MAX_ATTEMPTS": "1",
            "PUBLIC_BASE_URL": "https://bridge.riverside-clinic.example",
            "LOG_LEVEL": "WARNING",
        }
        for name, value in env.items():
            monkeypatch.setenv(f"FHIR_BRIDGE_{name}", value)

        def configure(**extra: str) -> Runtime:
            for name, value in extra.items():
                monkeypatch.setenv(f"FHIR_BRIDGE_{name.upper()}", value)
            get_settings.cache_clear()
            get_runtime.cache_clear()
            return get_runtime()

        yield configure
        rt = get_runtime()
        if "ehr" in rt._cache:
            rt.ehr.close()
        rt.engine.dispose()
        get_settings.cache_clear()
        get_runtime.cache_clear()


def run_cli(*argv: str) -> int:
    """``fhir-bridge …`` in this process, with the environment the test set."""
    return cli.main(list(argv))


def sent_reminder(at: datetime, **changes: Any) -> PlannedMessage:
    """A Spanish SMS reminder about an appointment at a referenced Location, as delivery
    leaves it (its Communication still to write)."""
    fields: dict[str, Any] = {
        "status": "sent",
        "channel": "sms",
        "address": "+15035550143",
        "provider": "twilio",
        "provider_message_id": f"SM{uuid.uuid4().hex}",
        "delivery_status": "delivered",
        "sent_at": at,
        "text": SPANISH_TEXT,
        "language": "es",
        "template": "appointment_reminder",
        "variables": {"patient_first_name": "Lucía", "location": "Location/riverside-east"},
        "consent_used": ["Consent/eR5fQ2pd3zRk3rbX8W6mQpA3"],
        "patient_ref": PATIENT_REF,
        "about": ["Appointment/eWLhfjXHp4RUczv4bmuXWdg3"],
        "communication_status": "pending",
        "created_at": at - timedelta(minutes=2),
        "updated_at": at,
    }
    fields.update(changes)
    return planned_row(at - timedelta(minutes=2), **fields)


def written_back(rt: Runtime, *messages: PlannedMessage) -> list[str]:
    """Store the messages, then write each Communication through the real write-back."""
    with transaction(rt.sessions) as session:
        session.add_all(messages)
    for message in messages:
        assert jobs.write_back(rt, message.id) == "written"
    return [m.id for m in messages]


def ehr_copies(ehr: EhrServer, message_id: str) -> list[dict[str, Any]]:
    bundle = ehr.search("Communication", identifier=f"{IDENTIFIER_SYSTEM}|{message_id}")
    return [entry["resource"] for entry in bundle.get("entry") or []]


def ehr_delete(ehr: EhrServer, resource_id: str) -> None:
    response = httpx.delete(
        f"{ehr.base_url}/Communication/{resource_id}",
        headers={"Authorization": f"Bearer {DEV_TOKEN}"},
    )
    assert response.status_code in (200, 204), response.text


NOW = datetime.now(UTC)
