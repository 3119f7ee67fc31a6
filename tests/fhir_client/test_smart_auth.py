"""SMART Backend Services auth against scripted token and FHIR endpoints (no sockets)."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs

import httpx
import pytest
from joserfc import jwt

from fhir_bridge.fhir import (
    EhrAuthError,
    EhrClient,
    EhrProtocolError,
    SigningKey,
    SmartBackendServicesAuth,
    StaticBearerAuth,
    generate_private_key,
    load_signing_key,
    public_jwks,
)
from tests.fhir_client.ehr_doubles import (
    BASE_URL,
    PATIENT_ID,
    ScriptedEhr,
    fhir_response,
    patient,
    verifier_key_set,
)

TOKEN_URL = "https://auth.northside-clinic.example/oauth2/token"
CLIENT_ID = "fhir-bridge-prod-3f9a"
SCOPE = "system/Appointment.rs system/Patient.rs system/Communication.c"
T0 = 1_796_040_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """Issues numbered tokens and keeps the form of every token request."""

    def __init__(self, expires_in: int = 300, delay: float = 0.0) -> None:
        self.forms: list[dict[str, str]] = []
        self.urls: list[str] = []
        self._expires_in = expires_in
        self._delay = delay
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        if request.url.path.endswith("/.well-known/smart-configuration"):
            return httpx.Response(200, json={"token_endpoint": TOKEN_URL})
        time.sleep(self._delay)
        form = {name: values[0] for name, values in parse_qs(request.content.decode()).items()}
        self.forms.append(form)
        return httpx.Response(
            200,
            json={
                "access_token": f"tok-{len(self.forms)}",
                "token_type": "bearer",
                "expires_in": self._expires_in,
                "scope": form["scope"],
            },
        )


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return load_signing_key(generate_private_key("ES384"))


def smart_auth(
    key: SigningKey, tokens: TokenEndpoint, clock: FakeClock, *, discover: bool = False
) -> SmartBackendServicesAuth:
    return SmartBackendServicesAuth(
        fhir_base_url=BASE_URL,
        client_id=CLIENT_ID,
        signing_key=key,
        scope=SCOPE,
        token_endpoint=None if discover else TOKEN_URL,
        clock=clock,
        transport=tokens.transport,
    )


def fhir_client(ehr: ScriptedEhr, auth: httpx.Auth) -> EhrClient:
    return EhrClient(BASE_URL, auth=auth, transport=ehr.transport, sleep=lambda _: None)


def test_token_request_uses_client_credentials_with_jwt_assertion(signing_key: SigningKey) -> None:
    tokens = TokenEndpoint()

    smart_auth(signing_key, tokens, FakeClock()).access_token()

    (form,) = tokens.forms
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert form["scope"] == SCOPE


def test_client_assertion_header_and_claims_follow_smart(signing_key: SigningKey) -> None:
    tokens = TokenEndpoint()
    smart_auth(signing_key, tokens, FakeClock()).access_token()
    jwks = verifier_key_set(public_jwks(signing_key))

    token = jwt.decode(tokens.forms[0]["client_assertion"], jwks, algorithms=["ES384"])

    claims = token.claims
    assert (token.header["alg"], token.header["typ"]) == ("ES384", "JWT")
    assert token.header["kid"] == signing_key.kid
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - T0 <= 300


def test_each_assertion_has_a_fresh_jti(signing_key: SigningKey) -> None:
    auth = smart_auth(signing_key, TokenEndpoint(), FakeClock())
    jwks = verifier_key_set(public_jwks(signing_key))

    first = jwt.decode(auth.client_assertion(TOKEN_URL), jwks, algorithms=["ES384"])
    second = jwt.decode(auth.client_assertion(TOKEN_URL), jwks, algorithms=["ES384"])

    assert first.claims["jti"] != second.claims["jti"]


def test_token_endpoint_is_discovered_from_smart_configuration(signing_key: SigningKey) -> None:
    tokens = TokenEndpoint()

    smart_auth(signing_key, tokens, FakeClock(), discover=True).access_token()

    assert tokens.urls == [f"{BASE_URL}/.well-known/smart-configuration", TOKEN_URL]


def test_token_is_reused_until_the_safety_margin(signing_key: SigningKey) -> None:
    tokens, clock = TokenEndpoint(expires_in=300), FakeClock()
    auth = smart_auth(signing_key, tokens, clock)

    first = auth.access_token()
    clock.now = T0 + 239
    second = auth.access_token()
    clock.now = T0 + 240
    third = auth.access_token()

    assert (first, second, third) == ("tok-1", "tok-1", "tok-2")


def test_short_lived_token_is_not_refetched_on_every_call(signing_key: SigningKey) -> None:
    tokens, clock = TokenEndpoint(expires_in=60), FakeClock()
    auth = smart_auth(signing_key, tokens, clock)

    auth.access_token()
    clock.now = T0 + 29
    auth.access_token()

    assert len(tokens.forms) == 1


def test_bearer_token_is_attached_to_fhir_requests(signing_key: SigningKey) -> None:
    ehr = ScriptedEhr(fhir_response(200, patient()), fhir_response(200, patient()))
    tokens = TokenEndpoint()
    client = fhir_client(ehr, smart_auth(signing_key, tokens, FakeClock()))

    client.read("Patient", PATIENT_ID)
    client.read("Patient", PATIENT_ID)

    assert ehr.authorizations == ["Bearer tok-1"] * 2
    assert len(tokens.forms) == 1


def test_fhir_401_refreshes_token_once_and_retries(signing_key: SigningKey) -> None:
    ehr = ScriptedEhr(fhir_response(401), fhir_response(200, patient()))
    tokens = TokenEndpoint()

    fhir_client(ehr, smart_auth(signing_key, tokens, FakeClock())).read("Patient", PATIENT_ID)

    assert ehr.authorizations == ["Bearer tok-1", "Bearer tok-2"]


def test_second_401_after_refresh_raises_auth_error(signing_key: SigningKey) -> None:
    ehr = ScriptedEhr(fhir_response(401), fhir_response(401))
    tokens = TokenEndpoint()

    with pytest.raises(EhrAuthError):
        fhir_client(ehr, smart_auth(signing_key, tokens, FakeClock())).read("Patient", PATIENT_ID)

    assert len(ehr.requests) == 2


def test_token_refusal_reports_oauth_error_code_only(signing_key: SigningKey) -> None:
    refusal = httpx.Response(
        400, json={"error": "invalid_client", "error_description": "Key for Ana Rivera unknown"}
    )
    auth = SmartBackendServicesAuth(
        fhir_base_url=BASE_URL,
        client_id=CLIENT_ID,
        signing_key=signing_key,
        scope=SCOPE,
        token_endpoint=TOKEN_URL,
        transport=httpx.MockTransport(lambda request: refusal),
    )

    with pytest.raises(EhrAuthError) as raised:
        auth.access_token()

    assert "invalid_client" in str(raised.value)
    assert "Rivera" not in str(raised.value)


def test_plain_http_token_endpoint_off_this_machine_is_refused(signing_key: SigningKey) -> None:
    with pytest.raises(EhrProtocolError):
        SmartBackendServicesAuth(
            fhir_base_url=BASE_URL,
            client_id=CLIENT_ID,
            signing_key=signing_key,
            scope=SCOPE,
            token_endpoint="http://auth.northside-clinic.example/oauth2/token",
        )


def test_concurrent_callers_share_one_token_request(signing_key: SigningKey) -> None:
    tokens = TokenEndpoint(delay=0.05)
    auth = smart_auth(signing_key, tokens, FakeClock())
    results: list[str] = []

    def fetch() -> None:
        results.append(auth.access_token())

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert results == ["tok-1"] * 8
    assert len(tokens.forms) == 1


def test_token_endpoint_outage_is_retried_like_any_transient_failure(
    signing_key: SigningKey,
) -> None:
    tokens = TokenEndpoint()
    outage_then_tokens = ScriptedEhr(httpx.Response(503), tokens.handle)
    auth = SmartBackendServicesAuth(
        fhir_base_url=BASE_URL,
        client_id=CLIENT_ID,
        signing_key=signing_key,
        scope=SCOPE,
        token_endpoint=TOKEN_URL,
        transport=outage_then_tokens.transport,
    )
    ehr = ScriptedEhr(fhir_response(200, patient()))

    fhir_client(ehr, auth).read("Patient", PATIENT_ID)

    assert ehr.authorizations == ["Bearer tok-1"]
    assert len(outage_then_tokens.requests) == 2


def test_static_bearer_auth_sends_the_given_token() -> None:
    ehr = ScriptedEhr(fhir_response(200, patient()))

    fhir_client(ehr, StaticBearerAuth("dev-token-123")).read("Patient", PATIENT_ID)

    assert ehr.authorizations == ["Bearer dev-token-123"]
