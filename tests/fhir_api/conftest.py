"""Fixtures for the read-only FHIR API: an auditor client with its own key, the app, tokens."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_bridge.api.app import create_app
from fhir_bridge.fhir.auth import CLIENT_ASSERTION_TYPE
from fhir_bridge.fhir.keys import SigningKey, generate_private_key, load_signing_key, public_jwks
from fhir_bridge.fhir_api.repository import record_version
from fhir_bridge.outreach.communication import WritebackOptions, build_communication
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PlannedMessage
from tests.pipeline.conftest import make_runtime
from tests.pipeline.messages import planned_row
from tests.support.databases import sqlite_database

PUBLIC_BASE = "http://127.0.0.1:8000"
TOKEN_URL = f"{PUBLIC_BASE}/auth/token"
CLIENT_ID = "riverside-compliance"
OPTIONS = WritebackOptions(
    identifier_system="urn:fhir-bridge:message-id",
    sender_reference="Organization/eYg3-1aJmCMq-umIIq2Njxw3",
)
FULL_SCOPE = "system/Communication.rs system/AuditEvent.rs"


@dataclass
class Auditor:
    client_id: str
    key: SigningKey

    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": TOKEN_URL,
            "exp": now + 240,
            "iat": now,
            "jti": str(uuid.uuid4()),
            **overrides,
        }
        return self.key.sign_jwt(claims)


def token_form(assertion: str, scope: str = FULL_SCOPE) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }


@pytest.fixture(scope="session")
def auditor_key() -> SigningKey:
    return load_signing_key(generate_private_key("ES384"))


@pytest.fixture
def auditor(auditor_key: SigningKey) -> Auditor:
    return Auditor(CLIENT_ID, auditor_key)


def auditor_runtime(
    database_url: str, tmp_path: Path, key: SigningKey, **overrides: Any
) -> Runtime:
    jwks = tmp_path / "riverside-compliance.jwks.json"
    jwks.write_text(json.dumps(public_jwks(key)), encoding="utf-8")
    return make_runtime(
        database_url,
        tmp_path,
        public_base_url=PUBLIC_BASE,
        auditor_clients={CLIENT_ID: str(jwks)},
        **overrides,
    )


@pytest.fixture
def runtime(tmp_path: Path, auditor_key: SigningKey) -> Iterator[Runtime]:
    with sqlite_database(tmp_path) as url:
        rt = auditor_runtime(url, tmp_path, auditor_key)
        yield rt
        rt.engine.dispose()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


@pytest.fixture
def bearer(client: TestClient, auditor: Auditor) -> Callable[..., dict[str, str]]:
    """Authorization headers for a fresh token with the given scope."""

    def headers(scope: str = FULL_SCOPE) -> dict[str, str]:
        response = client.post(TOKEN_URL, data=token_form(auditor.assertion(), scope))
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    return headers


def sent_message(sent_at: datetime, **changes: Any) -> PlannedMessage:
    """A reminder sent by SMS, as delivery leaves it."""
    fields: dict[str, Any] = {
        "status": "sent",
        "channel": "sms",
        "address": "+15035550143",
        "provider": "twilio",
        "provider_message_id": f"SM{uuid.uuid4().hex}",
        "delivery_status": "delivered",
        "sent_at": sent_at,
        "text": "Riverside Clinic: recordatorio de su cita el martes a las 10:30. STOP para salir",
        "language": "es",
        "consent_used": ["Consent/eR5fQ2pd3zRk3rbX8W6mQpA3"],
        "communication_status": "pending",
    }
    fields.update(changes)
    return planned_row(sent_at - timedelta(minutes=2), **fields)


def keep_written(rt: Runtime, *messages: PlannedMessage) -> list[str]:
    """Record each message's Communication as the write-back does; returns our ids."""
    ids = []
    with transaction(rt.sessions) as session:
        for message in messages:
            session.add(message)
            row = record_version(
                session, build_communication(message, OPTIONS), ehr_id=f"ehr-{message.id[:8]}"
            )
            assert row is not None
            ids.append(row.resource_id)
    return ids


def keep_written_again(rt: Runtime, message: PlannedMessage) -> None:
    """A later version of an already written message's Communication (a status sync)."""
    with transaction(rt.sessions) as session:
        row = record_version(session, build_communication(message, OPTIONS), ehr_id=None)
        assert row is not None
