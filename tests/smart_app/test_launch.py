"""EHR launch: only our EHR may launch us, PKCE S256 is always used, state binds the callback."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from fhir_bridge.sandbox import EhrServer
from smart_app.config import SmartAppConfig
from smart_app.errors import LaunchRefused, TokenExchangeFailed
from smart_app.launch import (
    context_from_token_response,
    parse_smart_configuration,
    s256_challenge,
)
from smart_app.security import LAUNCH_COOKIE, SESSION_COOKIE
from tests.smart_app.conftest import CLIENT_ID, PanelApp
from tests.smart_app.records import PATIENT_ID, PRACTITIONER_ID

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


def _new_launch(ehr: EhrServer) -> str:
    response = httpx.post(
        f"{ehr.admin_url}/launch",
        json={"patient": PATIENT_ID, "fhirUser": f"Practitioner/{PRACTITIONER_ID}"},
    )
    response.raise_for_status()
    return str(response.json()["launch"])


def _start(panel: PanelApp, ehr: EhrServer) -> httpx.Response:
    return panel.client.get(
        "/smart/launch", params={"iss": ehr.base_url, "launch": _new_launch(ehr)}
    )


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_launch_from_an_unknown_iss_is_refused_without_redirect(panel: PanelApp) -> None:
    response = panel.client.get(
        "/smart/launch", params={"iss": "https://evil.example.com/fhir", "launch": "x1"}
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "unknown-iss" in response.text


def test_launch_redirects_to_the_ehr_authorize_endpoint_with_pkce_s256(
    panel: PanelApp, ehr: EhrServer
) -> None:
    response = _start(panel, ehr)
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


def test_launch_binds_state_to_the_browser_with_an_httponly_cookie(
    panel: PanelApp, ehr: EhrServer
) -> None:
    response = _start(panel, ehr)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{LAUNCH_COOKIE}={_query(response.headers['location'])['state']}")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_callback_with_a_state_other_than_the_browsers_is_refused(
    panel: PanelApp, ehr: EhrServer
) -> None:
    _start(panel, ehr)
    response = panel.client.get("/smart/callback", params={"code": "abc", "state": "forged"})
    assert response.status_code == 400
    assert "state-mismatch" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_completed_launch_opens_a_session_on_the_launch_patient(
    panel: PanelApp, ehr: EhrServer
) -> None:
    authorize = _start(panel, ehr).headers["location"]
    back = httpx.get(authorize, follow_redirects=False).headers["location"]
    response = panel.client.get(back.replace("http://testserver", ""))
    assert response.status_code == 303
    assert response.headers["location"] == "/smart/panel"
    session_cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    timeline = panel.client.get("/smart/api/timeline").json()
    assert timeline["patient"] == f"Patient/{PATIENT_ID}"


def test_a_callback_state_can_be_used_only_once(panel: PanelApp, ehr: EhrServer) -> None:
    authorize = _start(panel, ehr).headers["location"]
    back = httpx.get(authorize, follow_redirects=False).headers["location"]
    path = back.replace("http://testserver", "")
    state = _query(back)["state"]
    panel.client.get(path)
    panel.client.cookies.set(LAUNCH_COOKIE, state, domain="testserver.local")
    replay = panel.client.get(path)
    assert replay.status_code == 400
    assert "state-unknown-or-expired" in replay.text


def test_ehr_that_denies_authorization_ends_the_launch(panel: PanelApp) -> None:
    response = panel.client.get("/smart/callback", params={"error": "access_denied", "state": "s"})
    assert response.status_code == 400
    assert "authorization-denied" in response.text


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
    import base64
    import json

    claims = {"iss": "https://ehr.example.org", "aud": "someone-else", "exp": 1_790_000_600}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    body = {"access_token": "t0k3n", "patient": PATIENT_ID, "id_token": f"e30.{payload}.sig"}
    with pytest.raises(TokenExchangeFailed, match="id-token-audience"):
        context_from_token_response(body, CONFIG, "https://ehr.example.org", now=1_790_000_000)
