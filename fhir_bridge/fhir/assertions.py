"""Checking SMART Backend Services client assertions, as a token endpoint does.

Shared by the token endpoint we run for auditors (``fhir_bridge.fhir_api.auth``) and the
development EHR's (``fhir_bridge.sandbox.auth``): the ``client_credentials`` form, the unverified
JOSE header and payload (to pick the client and its keys), and the claims of a verified
assertion (``sub``, ``aud``, ``exp`` at most five minutes ahead, a ``jti``). Descriptions name no
values.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from fhir_bridge.fhir.auth import CLIENT_ASSERTION_TYPE

ASSERTION_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME_SECONDS = 300
CLOCK_SKEW_SECONDS = 5
MAX_JTI_LENGTH = 255


class OAuthError(Exception):
    """A refused token request (RFC 6749 error code; the description names no values)."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """The JSON error body of the token endpoint."""
        return {"error": self.error, "error_description": self.description}


def check_token_form(form: Mapping[str, str]) -> str:
    """The client assertion of a ``client_credentials`` + ``private_key_jwt`` token request."""
    if form.get("grant_type") != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        raise OAuthError(400, "invalid_request", "client_assertion_type must be jwt-bearer")
    return form.get("client_assertion") or ""


def unverified_parts(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JOSE header and payload of a compact JWT, before its signature is checked."""
    try:
        parts = assertion.split(".")
        if len(parts) != 3:
            raise ValueError("not three parts")
        header, payload = (
            json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]
        )
    except (ValueError, UnicodeDecodeError):
        raise OAuthError(400, "invalid_request", "client_assertion is not a JWT") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise OAuthError(400, "invalid_request", "client_assertion is not a JWT")
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise OAuthError(401, "invalid_client", "the assertion must be signed with RS384 or ES384")
    return header, payload


def check_assertion_claims(
    claims: Mapping[str, Any], client_id: str, audience: str, now: float
) -> None:
    """Refuse a verified assertion whose claims do not fit the client and this endpoint."""
    if claims.get("sub") != client_id:
        raise OAuthError(401, "invalid_client", "the assertion's iss and sub must be the client id")
    aud = claims.get("aud")
    if audience not in (aud if isinstance(aud, list) else [aud]):
        raise OAuthError(401, "invalid_client", "the assertion's aud must be the token endpoint")
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float):
        raise OAuthError(401, "invalid_client", "the assertion needs exp")
    if expiry <= now - CLOCK_SKEW_SECONDS:
        raise OAuthError(401, "invalid_client", "the assertion has expired")
    if expiry > now + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
        raise OAuthError(401, "invalid_client", "the assertion's exp is more than 5 minutes ahead")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise OAuthError(401, "invalid_client", "the assertion needs a jti")
