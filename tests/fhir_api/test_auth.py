"""Only registered auditor clients, with their own key and the right scope, read /fhir."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from fhir_bridge.fhir.keys import generate_private_key, load_signing_key
from fhir_bridge.fhir_api.auth import JsonWebToken, signing_key
from fhir_bridge.runtime import Runtime
from tests.fhir_api.conftest import CLIENT_ID, TOKEN_URL, Auditor, token_form

Bearer = Callable[..., dict[str, str]]


def test_a_registered_client_gets_a_short_lived_token_for_the_scopes_it_may_have(
    client: TestClient, auditor: Auditor
) -> None:
    scope = "system/Communication.rs system/Patient.rs launch"
    response = client.post(TOKEN_URL, data=token_form(auditor.assertion(), scope))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["token_type"], body["expires_in"]) == ("bearer", 300)
    assert body["scope"] == "system/Communication.rs"


def test_an_assertion_signed_with_another_key_is_refused(client: TestClient) -> None:
    stranger = Auditor(CLIENT_ID, load_signing_key(generate_private_key("ES384")))

    response = client.post(TOKEN_URL, data=token_form(stranger.assertion()))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_replayed_assertion_is_refused(client: TestClient, auditor: Auditor) -> None:
    assertion = auditor.assertion()

    first = client.post(TOKEN_URL, data=token_form(assertion))
    replay = client.post(TOKEN_URL, data=token_form(assertion))

    assert (first.status_code, replay.status_code) == (200, 401)
    assert "jti" in replay.json()["error_description"]


def test_expired_or_misaddressed_assertions_are_refused(
    client: TestClient, auditor: Auditor
) -> None:
    now = int(time.time())
    assertions = [
        auditor.assertion(exp=now - 60),
        auditor.assertion(exp=now + 3600),
        auditor.assertion(aud="https://ehr.riverside.example.org/token"),
        auditor.assertion(iss="someone-else", sub="someone-else"),
    ]

    codes = [client.post(TOKEN_URL, data=token_form(a)).status_code for a in assertions]

    assert codes == [401, 401, 401, 401]


def test_no_grantable_scope_is_invalid_scope(client: TestClient, auditor: Auditor) -> None:
    response = client.post(TOKEN_URL, data=token_form(auditor.assertion(), "system/Patient.rs"))

    assert (response.status_code, response.json()["error"]) == (400, "invalid_scope")


def test_fhir_requests_without_a_valid_token_are_401(client: TestClient, runtime: Runtime) -> None:
    expired = JsonWebToken(["HS256"]).encode(
        {"alg": "HS256"},
        {
            "iss": TOKEN_URL,
            "aud": "http://127.0.0.1:8000/fhir",
            "sub": CLIENT_ID,
            "scope": "system/Communication.rs",
            "exp": int(time.time()) - 1,
        },
        signing_key(runtime.settings),
    )
    headers = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {expired.decode('ascii')}"},
    ]

    responses = [client.get("/fhir/Communication", headers=h) for h in headers]

    assert [r.status_code for r in responses] == [401, 401, 401]
    assert all(r.headers["www-authenticate"].startswith("Bearer") for r in responses)
    assert responses[2].json()["issue"][0]["code"] == "expired"


def test_a_token_without_the_types_scope_is_403(client: TestClient, bearer: Bearer) -> None:
    headers = bearer("system/AuditEvent.rs")

    response = client.get("/fhir/Communication", headers=headers)

    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"


def test_smart_v1_read_scope_is_accepted(client: TestClient, bearer: Bearer) -> None:
    response = client.get("/fhir/Communication", headers=bearer("system/Communication.read"))

    assert response.status_code == 200


def test_smart_configuration_advertises_our_token_endpoint(client: TestClient) -> None:
    config = client.get("/fhir/.well-known/smart-configuration").json()

    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert client.get("/.well-known/smart-configuration").json() == config


def test_an_unknown_client_is_refused(client: TestClient, auditor: Auditor) -> None:
    response = client.post(TOKEN_URL, data=token_form(auditor.assertion(iss="acme", sub="acme")))

    assert response.json()["error_description"] == "unknown client"
