"""SMART Backend Services for auditors: the token endpoint we run and the bearer check.

An auditor client is registered in settings by its public JWKS (``AUDITOR_CLIENTS``). It
asks ``/auth/token`` for a token with the ``client_credentials`` grant and a
``private_key_jwt`` assertion (RS384 or ES384, ``aud`` = our token URL, ``exp`` at most five
minutes ahead, a ``jti`` accepted once). The access token is a short JWT signed with a key
derived from the notification secret; ``/fhir`` checks it and its scopes on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from fhir_bridge.fhir.assertions import (
    ASSERTION_ALGORITHMS,
    OAuthError,
    check_assertion_claims,
    check_token_form,
    unverified_parts,
)
from fhir_bridge.settings import Settings

with warnings.catch_warnings():
    import authlib.deprecate  # noqa: F401  (installs an "always" filter we override next)

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError

ACCESS_TOKEN_ALGORITHM = "HS256"  # noqa: S105 (an algorithm name)
JWKS_TIMEOUT_SECONDS = 5.0
# What an auditor may be granted: v2 `.rs` and v1 `.read` of the two types we serve.
GRANTABLE_SCOPES = (
    "system/Communication.rs",
    "system/Communication.read",
    "system/AuditEvent.rs",
    "system/AuditEvent.read",
)
_KEY_LABEL = b"fhir-bridge read-only FHIR API access token"


class AccessDenied(Exception):
    """A ``/fhir`` request without a usable token (401) or without the scope it needs (403)."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Assertion:
    """A client assertion whose signature and claims were checked (its jti not yet)."""

    client_id: str
    jti: str
    expires_at: datetime
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Caller:
    """Who is asking, from a verified access token."""

    client_id: str
    scopes: tuple[str, ...]


def token_url(settings: Settings) -> str:
    return f"{settings.public_base_url}/auth/token"


def fhir_base(settings: Settings) -> str:
    return f"{settings.public_base_url}/fhir"


def verify_assertion(
    settings: Settings, form: Mapping[str, str], now: float | None = None
) -> Assertion:
    """Check a token request up to the replay check (which needs the database)."""
    assertion = check_token_form(form)
    _, unverified = unverified_parts(assertion)
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or client_id not in settings.auditor_clients:
        raise OAuthError(401, "invalid_client", "unknown client")
    keys = _client_keys(settings.auditor_clients[client_id])
    try:
        claims = dict(JsonWebToken(list(ASSERTION_ALGORITHMS)).decode(assertion, keys))
    except (JoseError, ValueError) as exc:
        raise OAuthError(401, "invalid_client", "the assertion signature is invalid") from exc
    now = time.time() if now is None else now
    check_assertion_claims(claims, client_id, token_url(settings), now)
    requested = tuple((form.get("scope") or "").split())
    granted = tuple(scope for scope in requested if scope in GRANTABLE_SCOPES)
    if not granted:
        raise OAuthError(400, "invalid_scope", "no requested scope can be granted")
    return Assertion(
        client_id=client_id,
        jti=str(claims["jti"]),
        expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
        scopes=granted,
    )


def _client_keys(source: str) -> Any:
    """The client's registered public keys, read from its JWKS URL or file on each request."""
    try:
        if source.startswith(("https://", "http://")):
            response = httpx.get(source, timeout=JWKS_TIMEOUT_SECONDS)
            response.raise_for_status()
            jwks = response.json()
        else:
            jwks = json.loads(Path(source).read_text(encoding="utf-8"))
        return JsonWebKey.import_key_set(jwks)
    except (OSError, ValueError, KeyError, TypeError, JoseError, httpx.HTTPError):
        raise OAuthError(
            401, "invalid_client", "the client's registered keys are unusable"
        ) from None


def signing_key(settings: Settings, label: bytes = _KEY_LABEL) -> bytes:
    """A key for one purpose, derived from the notification secret (never the secret itself)."""
    secret = settings.require_notification_secret().encode("utf-8")
    return hmac.new(secret, label, hashlib.sha256).digest()


def issue_access_token(
    settings: Settings, assertion: Assertion, now: float | None = None
) -> dict[str, Any]:
    """The token response for a verified, first-seen assertion."""
    issued = int(time.time() if now is None else now)
    lifetime = settings.auditor_token_seconds
    claims = {
        "iss": token_url(settings),
        "aud": fhir_base(settings),
        "sub": assertion.client_id,
        "scope": " ".join(assertion.scopes),
        "iat": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
    }
    token = JsonWebToken([ACCESS_TOKEN_ALGORITHM]).encode(
        {"alg": ACCESS_TOKEN_ALGORITHM, "typ": "at+jwt"}, claims, signing_key(settings)
    )
    return {
        "access_token": token.decode("ascii"),
        "token_type": "bearer",
        "expires_in": lifetime,
        "scope": claims["scope"],
    }


def caller(settings: Settings, authorization: str | None, now: float | None = None) -> Caller:
    """The client behind ``Authorization: Bearer …``; ``AccessDenied`` (401) otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AccessDenied(401, "login", "a bearer token is required")
    try:
        claims = JsonWebToken([ACCESS_TOKEN_ALGORITHM]).decode(token.strip(), signing_key(settings))
    except (JoseError, ValueError):
        raise AccessDenied(401, "login", "the bearer token is not valid") from None
    current = time.time() if now is None else now
    if claims.get("iss") != token_url(settings) or claims.get("aud") != fhir_base(settings):
        raise AccessDenied(401, "login", "the bearer token is not for this server")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= current:
        raise AccessDenied(401, "expired", "the bearer token has expired")
    client_id = str(claims.get("sub", ""))
    if client_id not in settings.auditor_clients:
        raise AccessDenied(401, "login", "the client is no longer registered")
    return Caller(client_id, tuple(str(claims.get("scope", "")).split()))


def permits(scopes: tuple[str, ...], resource_type: str, interaction: str) -> bool:
    """Whether the scopes allow ``interaction`` (``r`` read/history, ``s`` search)."""
    for scope in scopes:
        type_, _, permission = scope.removeprefix("system/").partition(".")
        if type_ != resource_type:
            continue
        if permission == "read" or interaction in permission:
            return True
    return False
