"""SMART Backend Services over real HTTP: a token endpoint and FHIR endpoint on 127.0.0.1.

The token endpoint verifies each client assertion with an independent JOSE library (joserfc)
against the JWKS produced by `keys.public_jwks`, exactly as an EHR would after clinic IT
registered it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from joserfc import jwt
from joserfc.errors import JoseError

from fhir_bridge.fhir import (
    EhrAuthError,
    EhrClient,
    SigningKey,
    SmartBackendServicesAuth,
    generate_private_key,
    load_signing_key,
    public_jwks,
)
from tests.fhir_client.ehr_doubles import PATIENT_ID, patient, verifier_key_set

CLIENT_ID = "fhir-bridge-northside"
SCOPE = "system/Patient.rs system/Communication.c"


class SharedClock:
    """Epoch seconds that tests move forward; used by both client and fake EHR."""

    def __init__(self) -> None:
        self.now = 1_796_040_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeEhrState:
    """What the fake EHR knows and has seen."""

    registered_jwks: dict[str, Any]
    clock: SharedClock
    expires_in: int = 300
    token_url: str = ""
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    seen_jti: set[str] = field(default_factory=set)
    rejections: list[str] = field(default_factory=list)
    bearer_tokens_seen: list[str] = field(default_factory=list)


class FakeEhrHandler(BaseHTTPRequestHandler):
    state: FakeEhrState

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        if self.path == "/fhir/.well-known/smart-configuration":
            self._reply(
                200,
                {
                    "token_endpoint": self.state.token_url,
                    "grant_types_supported": ["client_credentials"],
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                    "capabilities": ["client-confidential-asymmetric"],
                },
            )
        elif self.path == f"/fhir/Patient/{PATIENT_ID}":
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self.state.bearer_tokens_seen.append(token)
            if token in self.state.issued and token not in self.state.revoked:
                self._reply(200, patient(), "application/fhir+json")
            else:
                self._reply(
                    401,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "login"}],
                    },
                )
        else:
            self._reply(404, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        problem = self._assertion_problem(form)
        if problem:
            self.state.rejections.append(problem)
            self._reply(401, {"error": "invalid_client"})
            return
        token = f"live-{len(self.state.issued) + 1}"
        self.state.issued.append(token)
        self._reply(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.state.expires_in,
                "scope": form["scope"],
            },
        )

    def _assertion_problem(self, form: dict[str, str]) -> str | None:
        if form.get("grant_type") != "client_credentials":
            return "grant_type"
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return "client_assertion_type"
        try:
            assertion = jwt.decode(
                form.get("client_assertion", ""),
                verifier_key_set(self.state.registered_jwks),
                algorithms=["RS384", "ES384"],
            )
        except (JoseError, ValueError):
            return "signature"
        header, claims, now = assertion.header, assertion.claims, self.state.clock()
        checks = {
            "typ": header.get("typ") == "JWT",
            "iss": claims.get("iss") == CLIENT_ID == claims.get("sub"),
            "aud": claims.get("aud") == self.state.token_url,
            "exp": now < claims.get("exp", 0) <= now + 300,
            "jti": bool(claims.get("jti")) and claims["jti"] not in self.state.seen_jti,
        }
        self.state.seen_jti.add(str(claims.get("jti")))
        failed = [name for name, ok in checks.items() if not ok]
        return ",".join(failed) or None

    def _reply(
        self, status: int, body: dict[str, Any], content_type: str = "application/json"
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@dataclass
class LiveEhr:
    base_url: str
    state: FakeEhrState


@pytest.fixture(scope="module")
def signing_keys() -> dict[str, SigningKey]:
    return {
        "RS384": load_signing_key(generate_private_key("RS384", rsa_bits=2048)),
        "ES384": load_signing_key(generate_private_key("ES384")),
    }


@pytest.fixture
def clock() -> SharedClock:
    return SharedClock()


def start_fake_ehr(registered: SigningKey, clock: SharedClock) -> Iterator[LiveEhr]:
    state = FakeEhrState(registered_jwks=public_jwks(registered), clock=clock)
    handler = type("BoundHandler", (FakeEhrHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    host, port = server.server_address[:2]
    state.token_url = f"http://{host!s}:{port}/auth/token"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield LiveEhr(base_url=f"http://{host!s}:{port}/fhir", state=state)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(params=["RS384", "ES384"])
def alg(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def live_ehr(
    signing_keys: dict[str, SigningKey], alg: str, clock: SharedClock
) -> Iterator[LiveEhr]:
    yield from start_fake_ehr(signing_keys[alg], clock)


@contextmanager
def connect(ehr: LiveEhr, key: SigningKey, clock: SharedClock) -> Iterator[EhrClient]:
    auth = SmartBackendServicesAuth(
        fhir_base_url=ehr.base_url, client_id=CLIENT_ID, signing_key=key, scope=SCOPE, clock=clock
    )
    try:
        with EhrClient(ehr.base_url, auth=auth, timeout=5.0) as client:
            yield client
    finally:
        auth.close()


def test_client_assertion_validates_against_registered_jwks(
    live_ehr: LiveEhr, signing_keys: dict[str, SigningKey], alg: str, clock: SharedClock
) -> None:
    with connect(live_ehr, signing_keys[alg], clock) as client:
        fetched = client.read("Patient", PATIENT_ID)

    assert fetched["id"] == PATIENT_ID
    assert live_ehr.state.rejections == []
    assert live_ehr.state.issued == ["live-1"]


def test_token_is_cached_across_calls(
    live_ehr: LiveEhr, signing_keys: dict[str, SigningKey], alg: str, clock: SharedClock
) -> None:
    with connect(live_ehr, signing_keys[alg], clock) as client:
        for _ in range(3):
            client.read("Patient", PATIENT_ID)

    assert live_ehr.state.issued == ["live-1"]
    assert live_ehr.state.bearer_tokens_seen == ["live-1"] * 3


def test_token_is_refreshed_near_expiry(
    live_ehr: LiveEhr, signing_keys: dict[str, SigningKey], alg: str, clock: SharedClock
) -> None:
    live_ehr.state.expires_in = 120
    with connect(live_ehr, signing_keys[alg], clock) as client:
        client.read("Patient", PATIENT_ID)
        clock.now += 61  # inside the default 60 s safety margin of a 120 s token
        client.read("Patient", PATIENT_ID)

    assert live_ehr.state.bearer_tokens_seen == ["live-1", "live-2"]
    assert live_ehr.state.rejections == []


def test_token_is_refreshed_after_fhir_server_rejects_it(
    live_ehr: LiveEhr, signing_keys: dict[str, SigningKey], alg: str, clock: SharedClock
) -> None:
    with connect(live_ehr, signing_keys[alg], clock) as client:
        client.read("Patient", PATIENT_ID)
        live_ehr.state.revoked.add("live-1")
        fetched = client.read("Patient", PATIENT_ID)

    assert fetched["id"] == PATIENT_ID
    assert live_ehr.state.bearer_tokens_seen == ["live-1", "live-1", "live-2"]


def test_assertion_signed_with_unregistered_key_is_refused(
    live_ehr: LiveEhr, alg: str, clock: SharedClock
) -> None:
    stranger = load_signing_key(generate_private_key("ES384"))

    with connect(live_ehr, stranger, clock) as client, pytest.raises(EhrAuthError):
        client.read("Patient", PATIENT_ID)

    assert live_ehr.state.rejections == ["signature"]
