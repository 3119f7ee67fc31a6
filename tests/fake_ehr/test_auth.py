"""SMART Backend Services: the token endpoint accepts only well-formed signed assertions."""

from __future__ import annotations

import time
import uuid
import warnings
from typing import Any

import httpx
import pytest

from fhir_bridge.sandbox import EhrServer
from tests.fake_ehr.samples import appointment

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, jwt

pytestmark = pytest.mark.integration
CLIENT_ID = "fhir-bridge-backend"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
def rsa_key() -> Any:
    return JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "bridge-rs384"})


def _assertion(key: Any, token_url: str, jti: str) -> str:
    now = int(time.time())
    claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_url, "exp": now + 240, "jti": jti}
    header = {"alg": "RS384", "kid": "bridge-rs384", "typ": "JWT"}
    return jwt.encode(header, claims, key).decode()


def _token_request(ehr: EhrServer, assertion: str) -> httpx.Response:
    return httpx.post(
        ehr.token_url,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": "system/Appointment.rs system/Communication.c",
        },
    )


def test_rs384_client_assertion_yields_a_token_that_reads_fhir(
    ehr: EhrServer, rsa_key: Any
) -> None:
    ehr.register_client(CLIENT_ID, {"keys": [rsa_key.as_dict(is_private=False)]})

    issued = _token_request(ehr, _assertion(rsa_key, ehr.token_url, str(uuid.uuid4()))).json()
    search = httpx.get(
        f"{ehr.base_url}/Appointment",
        headers={"Authorization": f"Bearer {issued['access_token']}"},
    )

    assert issued["token_type"] == "bearer"
    assert issued["scope"] == "system/Appointment.rs system/Communication.c"
    assert search.status_code == 200
    assert ehr.stats()["tokens_issued"] == 1


def test_reused_assertion_jti_is_rejected(ehr: EhrServer, rsa_key: Any) -> None:
    ehr.register_client(CLIENT_ID, {"keys": [rsa_key.as_dict(is_private=False)]})
    jti = str(uuid.uuid4())
    _token_request(ehr, _assertion(rsa_key, ehr.token_url, jti))

    replay = _token_request(ehr, _assertion(rsa_key, ehr.token_url, jti))

    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


def test_issued_token_cannot_exceed_its_scopes(ehr: EhrServer, rsa_key: Any) -> None:
    ehr.register_client(CLIENT_ID, {"keys": [rsa_key.as_dict(is_private=False)]})
    issued = _token_request(ehr, _assertion(rsa_key, ehr.token_url, str(uuid.uuid4()))).json()

    response = httpx.post(
        f"{ehr.base_url}/Appointment",
        json=appointment("1001"),
        headers={"Authorization": f"Bearer {issued['access_token']}"},
    )

    assert response.status_code == 403
