"""Fixtures for the staff panel: one fake EHR for the run, a fresh database and app per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.api.app import create_app
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.sandbox.process import DEV_TOKEN
from fhir_bridge.settings import load_settings
from smart_app.banner import PatientBanner
from smart_app.launch import LaunchContext
from smart_app.security import session_base
from smart_app.sessions import StaffSession
from smart_app.state import smart_state
from tests.smart_app.records import PATIENT_ID, PRACTITIONER_ID, email_consent, patient_resource
from tests.support.databases import sqlite_database

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
CLIENT_ID = "fhir-bridge-staff-test"


@pytest.fixture(scope="session")
def ehr_server() -> Iterator[EhrServer]:
    with EhrServer() as server:
        yield server


@pytest.fixture
def ehr(ehr_server: EhrServer) -> EhrServer:
    """The fake EHR, emptied, holding the launch patient and their email Consent."""
    ehr_server.reset()
    ehr_server.update(patient_resource())
    ehr_server.update(email_consent())
    return ehr_server


@dataclass
class PanelApp:
    """fhir-bridge's API in-process, with its own SQLite database."""

    app: FastAPI
    client: TestClient
    sessions: sessionmaker[Session]
    base: str = "/smart"

    def sign_in(self, patient_id: str = PATIENT_ID, access_token: str = DEV_TOKEN) -> StaffSession:
        """A staff session as a completed launch would create it.

        Its pages are under ``self.base`` (``/smart/l/<handle>``): use ``self.url("/panel")``.
        """
        state = smart_state(self.app)
        context = LaunchContext(
            access_token=access_token,
            scope="launch openid fhirUser patient/Patient.rs patient/Consent.rs",
            patient_ref=f"Patient/{patient_id}",
            encounter_ref=None,
            fhir_user=f"Practitioner/{PRACTITIONER_ID}",
            expires_in=3600,
        )
        banner = PatientBanner(required=True, available=True, name="Okafor, Mary")
        handle, staff = state.sessions.create(context, state.now(), banner=banner)
        assert isinstance(staff, StaffSession)
        self.base = session_base(handle)
        return staff

    def url(self, path: str) -> str:
        """``/smart/l/<handle>/panel`` for ``/panel``: a page of the last signed-in launch."""
        return self.base + path


@pytest.fixture
def panel(tmp_path: Path, ehr: EhrServer) -> Iterator[PanelApp]:
    with sqlite_database(tmp_path) as url:
        settings = load_settings(
            database_url=url,
            ehr_base_url=ehr.base_url,
            ehr_auth="static",
            ehr_static_token=ehr.static_token,
            public_base_url="http://testserver",
            smart_client_id=CLIENT_ID,
            notification_secret="test-notification-secret-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue",
            log_level="WARNING",
        )
        runtime = Runtime(settings=settings, clock=lambda: NOW)
        app = create_app(runtime)
        with TestClient(app, follow_redirects=False) as client:
            yield PanelApp(app, client, runtime.sessions)
