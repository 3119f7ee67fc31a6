"""SMART Backend Services token endpoint and bearer checks, as an EHR authorization server."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import authlib.deprecate  # noqa: F401  (installs an "always" filter we must override next)

from fhir_bridge.sandbox.outcomes import ForbiddenError, InvalidRequestError, UnauthorizedError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME_SECONDS = 300
CLOCK_SKEW_SECONDS = 5
DEFAULT_SCOPE = "system/*.rs system/Communication.c system/Subscription.cru"
_FULL_ACCESS = ("system/*.cruds",)
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}


class OAuthError(Exception):
    """A token request rejected with an RFC 6749 error code."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """The JSON error body of the token endpoint."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class _Client:
    key_set: Any
    scopes: tuple[str, ...]
    used_jti: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Token:
    expires_at: float
    scopes: tuple[str, ...]


def _permissions(scope: str) -> tuple[str, str] | None:
    """(resource type or '*', permission letters) for a SMART v1/v2 scope, else None."""
    context, _, rest = scope.partition("/")
    if context not in ("system", "user", "patient") or "." not in rest:
        return None
    type_, _, permission = rest.partition(".")
    permission = permission.split("?")[0]
    letters = _V1_PERMISSIONS.get(permission, permission)
    if not letters or any(letter not in "cruds" for letter in letters):
        return None
    return type_, letters


def scope_permits(scopes: tuple[str, ...], type_: str, letter: str) -> bool:
    """True when any scope grants interaction `letter` (c/r/u/d/s) on `type_`."""
    for scope in scopes:
        parsed = _permissions(scope)
        if parsed and parsed[0] in ("*", type_) and letter in parsed[1]:
            return True
    return False


def _covers(granted: tuple[str, ...], requested: str) -> bool:
    parsed = _permissions(requested)
    if parsed is None:
        return False
    type_, letters = parsed
    return all(scope_permits(granted, type_, letter) for letter in letters)


def _jose_header(assertion: str) -> dict[str, Any]:
    try:
        encoded = assertion.split(".")[0]
        decoded = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        header = json.loads(decoded)
    except (ValueError, IndexError) as error:
        raise OAuthError(400, "invalid_request", "client_assertion is not a JWT") from error
    if not isinstance(header, dict):
        raise OAuthError(400, "invalid_request", "client_assertion header is not an object")
    return header


class AuthServer:
    """Registered backend clients, issued tokens and bearer-token checks."""

    def __init__(self, static_token: str, token_url: str) -> None:
        self.static_token = static_token
        self.token_url = token_url
        self.token_lifetime_seconds = 300
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self._tokens: dict[str, _Token] = {}
        self.tokens_issued = 0

    def reset(self) -> None:
        """Forget clients and tokens (the static token keeps working)."""
        with self._lock:
            self._clients.clear()
            self._tokens.clear()
            self.tokens_issued = 0
            self.token_lifetime_seconds = 300

    def register_client(self, client_id: str, jwks: dict[str, Any], scope: str) -> None:
        """Register a backend-services client by its public JWKS."""
        try:
            key_set = JsonWebKey.import_key_set(jwks)
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise InvalidRequestError("jwks could not be imported") from error
        with self._lock:
            self._clients[client_id] = _Client(key_set, tuple(scope.split()))

    def issue_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Validate a client_credentials request with a private_key_jwt assertion."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "Only client_credentials is supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(400, "invalid_request", "client_assertion_type must be jwt-bearer")
        assertion = form.get("client_assertion") or ""
        if not assertion:
            raise OAuthError(400, "invalid_request", "client_assertion is required")
        claims = self._verified_claims(assertion)
        client_id = str(claims["iss"])
        with self._lock:
            client = self._clients[client_id]
            jti = str(claims["jti"])
            if jti in client.used_jti:
                raise OAuthError(401, "invalid_client", "client_assertion jti was already used")
            client.used_jti.add(jti)
            requested = tuple((form.get("scope") or "").split())
            granted = tuple(scope for scope in requested if _covers(client.scopes, scope))
            if not granted:
                raise OAuthError(400, "invalid_scope", "No requested scope is permitted")
            access_token = secrets.token_urlsafe(32)
            lifetime = self.token_lifetime_seconds
            self._tokens[access_token] = _Token(time.time() + lifetime, granted)
            self.tokens_issued += 1
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": lifetime,
            "scope": " ".join(granted),
        }

    def scopes_for(self, authorization: str | None) -> tuple[str, ...]:
        """Scopes of a valid `Authorization: Bearer` header; 401 otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("A bearer token is required")
        token = token.strip()
        if secrets.compare_digest(token, self.static_token):
            return _FULL_ACCESS
        with self._lock:
            issued = self._tokens.get(token)
        if issued is None:
            raise UnauthorizedError("The bearer token is not recognised")
        if issued.expires_at <= time.time():
            raise UnauthorizedError("The bearer token has expired")
        return issued.scopes

    def require(self, authorization: str | None, type_: str, letter: str) -> None:
        """Raise 401/403 unless the bearer may perform `letter` on `type_`."""
        scopes = self.scopes_for(authorization)
        if not scope_permits(scopes, type_, letter):
            raise ForbiddenError(f"Token scopes do not permit '{letter}' on {type_}")

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        header = _jose_header(assertion)
        if header.get("alg") not in SIGNING_ALGORITHMS:
            raise OAuthError(401, "invalid_client", "Assertion must be signed with RS384 or ES384")
        unverified = self._unverified_payload(assertion)
        client_id = unverified.get("iss")
        with self._lock:
            client = self._clients.get(str(client_id))
        if client is None:
            raise OAuthError(401, "invalid_client", "Unknown client")
        key = self._key_for(client, header.get("kid"))
        try:
            claims = JsonWebToken(list(SIGNING_ALGORITHMS)).decode(assertion, key)
        except (JoseError, ValueError) as error:
            raise OAuthError(401, "invalid_client", "Assertion signature is invalid") from error
        self._check_claims(dict(claims), str(client_id))
        return dict(claims)

    @staticmethod
    def _unverified_payload(assertion: str) -> dict[str, Any]:
        try:
            encoded = assertion.split(".")[1]
            payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (ValueError, IndexError) as error:
            raise OAuthError(400, "invalid_request", "client_assertion is not a JWT") from error
        if not isinstance(payload, dict):
            raise OAuthError(400, "invalid_request", "client_assertion payload is not an object")
        return payload

    @staticmethod
    def _key_for(client: _Client, kid: Any) -> Any:
        keys = list(client.key_set.keys)
        if kid is None and len(keys) == 1:
            return keys[0]
        for key in keys:
            if key.kid == kid:
                return key
        raise OAuthError(401, "invalid_client", "No registered key matches the assertion kid")

    def _check_claims(self, claims: dict[str, Any], client_id: str) -> None:
        now = time.time()
        if claims.get("sub") != client_id:
            raise OAuthError(401, "invalid_client", "Assertion iss and sub must be the client_id")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.token_url not in audiences:
            raise OAuthError(401, "invalid_client", "Assertion aud must be the token endpoint")
        expiry = claims.get("exp")
        if not isinstance(expiry, int | float):
            raise OAuthError(401, "invalid_client", "Assertion exp is required")
        if expiry <= now - CLOCK_SKEW_SECONDS:
            raise OAuthError(401, "invalid_client", "Assertion has expired")
        if expiry > now + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS:
            raise OAuthError(401, "invalid_client", "Assertion exp is more than 5 minutes ahead")
        if not claims.get("jti"):
            raise OAuthError(401, "invalid_client", "Assertion jti is required")
