"""Launch and sessions: only our EHR may launch us, PKCE S256, state kept server-side (single
use, no cookie needed inside a cross-site frame), one session per launch bound to its patient,
sessions in the database (idle and absolute timeouts), practitioners only, standalone launch."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fhir_bridge.api.app import create_app
from fhir_bridge.runtime import Runtime
from fhir_bridge.sandbox import EhrServer
from fhir_bridge.settings import load_settings
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PendingLaunchRecord, StaffInboxItem, StaffSessionRecord
from smart_app.config import SmartAppConfig
from smart_app.errors import LaunchRefused, RoleRefused, TokenExchangeFailed
from smart_app.launch import (
    context_from_token_response,
    parse_smart_configuration,
    require_staff_user,
    s256_challenge,
)
from smart_app.security import SESSION_COOKIE
from smart_app.state import smart_state
from tests.smart_app.conftest import CLIENT_ID, NOW, PanelApp
from tests.smart_app.records import OTHER_PATIENT_ID, PATIENT_ID, PRACTITIONER_ID, patient_resource
from tests.support.databases import sqlite_database

CONFIG = SmartAppConfig(
    iss="https://ehr.example.org/fhir",
    client_id="staff-panel",
    client_secret=None,
    redirect_uri="https://bridge.example.org/smart/callback",
    scope="launch openid fhirUser patient/Patient.rs",
    session_seconds=3600,
    frame_ancestors="'self' https://ehr.example.org",
    secure_cookies=True,
)
STAFF = f"Practitioner/{PRACTITIONER_ID}"


def spanish_patient() -> dict[str, object]:
    """A second chart: Spanish-speaking, two family names, a non-MRN identifier first."""
    patient = patient_resource(OTHER_PATIENT_ID)
    patient["name"] = [
        {"use": "usual", "text": "Jorge Ramírez"},
        {"use": "official", "family": "Ramírez García", "given": ["Jorge", "Luis"]},
    ]
    patient["birthDate"] = "1979-11-03"
    patient["gender"] = "male"
    patient["identifier"] = [
        {"type": {"text": "Member ID"}, "value": "XQH-55102"},
        {
            "type": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                ]
            },
            "value": "880412",
        },
    ]
    patient["communication"] = [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": True}
    ]
    return patient


def _new_launch(
    ehr: EhrServer, patient: str = PATIENT_ID, user: str | None = STAFF, banner: bool = False
) -> str:
    options: dict[str, object] = {"patient": patient, "need_patient_banner": banner}
    if user is not None:
        options["fhirUser"] = user
    response = httpx.post(f"{ehr.admin_url}/launch", json=options)
    response.raise_for_status()
    return str(response.json()["launch"])


def _start(client: TestClient, ehr: EhrServer, **launch: object) -> httpx.Response:
    return client.get(
        "/smart/launch",
        params={"iss": ehr.base_url, "launch": _new_launch(ehr, **launch)},  # type: ignore[arg-type]
    )


def _complete(client: TestClient, ehr: EhrServer, **launch: object) -> httpx.Response:
    """Launch → the EHR's authorize (auto-approved) → our callback; the callback's answer."""
    authorize = _start(client, ehr, **launch).headers["location"]
    back = httpx.get(authorize, follow_redirects=False).headers["location"]
    return client.get(urlsplit(back).path + "?" + urlsplit(back).query)


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def https_panel(tmp_path: Path, ehr: EhrServer) -> Iterator[TestClient]:
    """The API as deployed behind HTTPS (cookies Secure; Partitioned)."""
    with sqlite_database(tmp_path) as url:
        settings = load_settings(
            database_url=url,
            ehr_base_url=ehr.base_url,
            ehr_static_token=ehr.static_token,
            public_base_url="https://testserver",
            smart_client_id=CLIENT_ID,
            notification_secret="test-notification-secret-0123456789-Wq7ZkP2xR9mVt4LsN8cYb3HjG6dFa5Ue",
            log_level="WARNING",
        )
        app = create_app(Runtime(settings=settings, clock=lambda: NOW))
        with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
            yield client


def test_launch_from_an_unknown_iss_is_refused_without_redirect(panel: PanelApp) -> None:
    response = panel.client.get(
        "/smart/launch", params={"iss": "https://evil.example.com/fhir", "launch": "x1"}
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "did not come from the clinic" in response.text
    assert "unknown-iss" in response.text


def test_launch_redirects_to_the_ehr_authorize_endpoint_with_pkce_s256(
    panel: PanelApp, ehr: EhrServer
) -> None:
    response = _start(panel.client, ehr)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{ehr.origin}/auth/authorize?")
    query = _query(location)
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://testserver/smart/callback"
    assert query["aud"] == ehr.base_url
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert "launch" in query["scope"].split() and "fhirUser" in query["scope"].split()
    assert len(query["state"]) >= 32


def test_state_and_verifier_stay_on_the_server_hashed_and_encrypted(
    panel: PanelApp, ehr: EhrServer
) -> None:
    response = _start(panel.client, ehr)
    state = _query(response.headers["location"])["state"]
    assert "set-cookie" not in response.headers  # nothing must come back in a third-party frame
    with transaction(panel.sessions) as session:
        pending = session.scalars(select(PendingLaunchRecord)).one()
        assert state not in (pending.state_hash, pending.code_verifier)
        assert len(pending.code_verifier) > 100  # a Fernet token, not the 86-char verifier


def test_completed_launch_opens_a_session_at_its_own_handle(
    panel: PanelApp, ehr: EhrServer
) -> None:
    response = _complete(panel.client, ehr)
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/smart/l/") and location.endswith("/panel")
    base = location.removesuffix("/panel")
    timeline = panel.client.get(f"{base}/api/timeline").json()
    assert timeline["patient"] == f"Patient/{PATIENT_ID}"


def test_the_session_row_keeps_neither_the_handle_nor_the_ehr_token(
    panel: PanelApp, ehr: EhrServer
) -> None:
    handle = _complete(panel.client, ehr).headers["location"].split("/")[3]
    with transaction(panel.sessions) as session:
        row = session.scalars(select(StaffSessionRecord)).one()
        token = smart_state(panel.app).sessions.get(handle, None, smart_state(panel.app).now())
        assert token is not None
        assert row.id != handle and handle not in json.dumps(row.banner)
        assert token.access_token not in row.access_token


def test_two_launches_in_one_browser_keep_their_own_patients(
    panel: PanelApp, ehr: EhrServer
) -> None:
    ehr.update(spanish_patient())
    first = _complete(panel.client, ehr).headers["location"].removesuffix("/panel")
    second = _complete(panel.client, ehr, patient=OTHER_PATIENT_ID).headers["location"]
    second = second.removesuffix("/panel")

    assert panel.client.get(f"{first}/api/timeline").json()["patient"] == f"Patient/{PATIENT_ID}"
    assert (
        panel.client.get(f"{second}/api/timeline").json()["patient"]
        == f"Patient/{OTHER_PATIENT_ID}"
    )


def test_a_callback_state_can_be_used_only_once(panel: PanelApp, ehr: EhrServer) -> None:
    authorize = _start(panel.client, ehr).headers["location"]
    back = httpx.get(authorize, follow_redirects=False).headers["location"]
    path = back.replace("http://testserver", "")
    assert panel.client.get(path).status_code == 303
    replay = panel.client.get(path)
    assert replay.status_code == 400
    assert "state-unknown-or-expired" in replay.text
    assert "expired or was already used" in replay.text


def test_callback_with_a_forged_state_is_refused(panel: PanelApp, ehr: EhrServer) -> None:
    _start(panel.client, ehr)
    response = panel.client.get("/smart/callback", params={"code": "abc", "state": "forged"})
    assert response.status_code == 400
    assert "state-unknown-or-expired" in response.text
    assert "location" not in response.headers


def test_ehr_that_denies_authorization_ends_the_launch(panel: PanelApp, ehr: EhrServer) -> None:
    state = _query(_start(panel.client, ehr).headers["location"])["state"]
    response = panel.client.get(
        "/smart/callback", params={"error": "access_denied", "state": state}
    )
    assert response.status_code == 400
    assert "ask your EHR administrator" in response.text
    with transaction(panel.sessions) as session:
        assert session.scalars(select(PendingLaunchRecord)).first() is None


@pytest.mark.parametrize(
    "user",
    ["Patient/" + PATIENT_ID, "RelatedPerson/rp-4471", None],
    ids=["patient", "related", "none"],
)
def test_only_practitioners_get_a_session(
    panel: PanelApp, ehr: EhrServer, user: str | None
) -> None:
    response = _complete(panel.client, ehr, user=user)
    assert response.status_code == 403
    assert "The panel is for clinic staff" in response.text
    with transaction(panel.sessions) as session:
        assert session.scalars(select(StaffSessionRecord)).first() is None


def test_a_practitioner_role_user_is_staff() -> None:
    assert require_staff_user("PractitionerRole/pr-77") == "PractitionerRole/pr-77"


def test_a_fhir_user_on_another_server_is_refused() -> None:
    with pytest.raises(RoleRefused):
        require_staff_user("https://other.example.org/fhir/Practitioner/123")


def test_banner_shows_name_birth_date_and_mrn_when_the_ehr_asks_for_one(
    panel: PanelApp, ehr: EhrServer
) -> None:
    ehr.update(spanish_patient())
    location = _complete(panel.client, ehr, patient=OTHER_PATIENT_ID, banner=True).headers[
        "location"
    ]
    page = panel.client.get(location).text
    assert 'class="patient-banner full"' in page
    assert "Ramírez García, Jorge Luis" in page
    assert "Nov 3, 1979" in page
    assert "MRN <strong" in page and "880412" in page


def test_without_need_patient_banner_the_patient_is_still_named_compactly(
    panel: PanelApp, ehr: EhrServer
) -> None:
    page = panel.client.get(_complete(panel.client, ehr).headers["location"]).text
    assert 'class="patient-banner compact"' in page
    assert "Okafor, Mary" in page


def test_a_session_is_valid_in_another_api_process_on_the_same_database(
    panel: PanelApp, ehr: EhrServer
) -> None:
    location = _complete(panel.client, ehr).headers["location"]
    other = create_app(Runtime(settings=panel.app.state.runtime.settings, clock=lambda: NOW))
    with TestClient(other) as client:
        base = location.removesuffix("/panel")
        assert client.get(f"{base}/api/timeline").json()["patient"] == f"Patient/{PATIENT_ID}"


def test_a_session_ends_after_the_idle_timeout(panel: PanelApp) -> None:
    panel.sign_in()
    state = smart_state(panel.app)
    started = state.now()
    state.now = lambda: started + 600
    assert panel.client.get(panel.url("/api/timeline")).status_code == 200
    state.now = lambda: started + 600 + state.config.idle_seconds + 1
    assert panel.client.get(panel.url("/api/timeline")).status_code == 401


def test_a_session_ends_at_its_absolute_lifetime_even_when_busy(panel: PanelApp) -> None:
    panel.sign_in()
    state = smart_state(panel.app)
    started = state.now()
    lifetime = state.config.session_seconds
    for elapsed in range(state.config.idle_seconds - 60, lifetime, state.config.idle_seconds - 60):
        state.now = lambda: started + elapsed  # noqa: B023
        assert panel.client.get(panel.url("/api/timeline")).status_code == 200
    state.now = lambda: started + lifetime
    response = panel.client.get(panel.url("/panel"))
    assert response.status_code == 401
    assert "Your session has ended" in response.text


def test_over_https_the_session_is_bound_to_the_browser_by_a_partitioned_cookie(
    https_panel: TestClient, ehr: EhrServer
) -> None:
    started = _start(https_panel, ehr)
    cookie = started.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    for flag in ("HttpOnly", "Secure", "Partitioned", "SameSite=none", "Path=/smart"):
        assert flag.lower() in cookie.lower()
    back = httpx.get(started.headers["location"], follow_redirects=False).headers["location"]
    location = https_panel.get(back.replace("https://testserver", "")).headers["location"]

    assert https_panel.get(location).status_code == 200
    with TestClient(https_panel.app, base_url="https://testserver") as elsewhere:
        assert elsewhere.get(location).status_code == 401


def test_standalone_launch_opens_the_clinic_wide_replies_waiting(
    panel: PanelApp, ehr: EhrServer
) -> None:
    ehr.update(spanish_patient())
    with transaction(panel.sessions) as session:
        for inbound_id, patient_id, kind, priority in (
            (1, PATIENT_ID, "message", "routine"),
            (2, OTHER_PATIENT_ID, "crisis", "stat"),
        ):
            session.add(
                StaffInboxItem(
                    inbound_id=inbound_id,
                    patient_ref=f"Patient/{patient_id}",
                    kind=kind,
                    priority=priority,
                    communication_ref=f"Communication/c{inbound_id}",
                    created_at=NOW,
                )
            )
    httpx.post(f"{ehr.admin_url}/standalone-user", json={"fhirUser": STAFF}).raise_for_status()
    try:
        started = panel.client.get("/smart/standalone")
        query = _query(started.headers["location"])
        assert "launch" not in query and "user/Communication.rs" in query["scope"].split()
        back = httpx.get(started.headers["location"], follow_redirects=False).headers["location"]
        location = panel.client.get(back.replace("http://testserver", "")).headers["location"]
    finally:
        httpx.post(f"{ehr.admin_url}/standalone-user", json={"fhirUser": None})

    assert location.endswith("/clinic")
    page = panel.client.get(location).text
    assert page.index("Ramírez García, Jorge Luis") < page.index("Okafor, Mary")  # urgent first
    assert "Crisis: call the patient now" in page
    assert panel.client.get(location.replace("/clinic", "/panel")).status_code == 401


def test_servers_that_do_not_offer_s256_are_refused() -> None:
    document = {
        "authorization_endpoint": "https://ehr.example.org/oauth2/authorize",
        "token_endpoint": "https://ehr.example.org/oauth2/token",
        "code_challenge_methods_supported": ["plain"],
    }
    with pytest.raises(LaunchRefused, match="pkce-s256-unsupported"):
        parse_smart_configuration(document)


def test_pkce_challenge_matches_rfc_7636_example() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_token_response_without_a_patient_is_refused() -> None:
    with pytest.raises(TokenExchangeFailed, match="no-patient-context"):
        context_from_token_response(
            {"access_token": "t0k3n", "token_type": "Bearer", "scope": "launch"},
            CONFIG,
            None,
            now=1_790_000_000,
        )


def test_id_token_for_another_client_is_refused() -> None:
    claims = {"iss": "https://ehr.example.org", "aud": "someone-else", "exp": 1_790_000_600}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    body = {"access_token": "t0k3n", "patient": PATIENT_ID, "id_token": f"e30.{payload}.sig"}
    with pytest.raises(TokenExchangeFailed, match="id-token-audience"):
        context_from_token_response(body, CONFIG, "https://ehr.example.org", now=1_790_000_000)
