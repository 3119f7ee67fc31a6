"""SMART Backend Services token endpoint and bearer checks, as an EHR authorization server."""

from __future__ import annotations

import secrets
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import authlib.deprecate  # noqa: F401  (installs an "always" filter we must override next)

from fhir_bridge.fhir.assertions import (
    ASSERTION_ALGORITHMS,
    OAuthError,
    check_assertion_claims,
    check_token_form,
    unverified_parts,
)
from fhir_bridge.sandbox.outcomes import ForbiddenError, InvalidRequestError, UnauthorizedError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError

DEFAULT_SCOPE = "system/*.rs system/Communication.c system/Subscription.cru"
_FULL_ACCESS = ("system/*.cruds",)
_V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}


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
        assertion = check_token_form(form)
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
        header, unverified = unverified_parts(assertion)
        client_id = unverified.get("iss")
        with self._lock:
            client = self._clients.get(str(client_id))
        if client is None:
            raise OAuthError(401, "invalid_client", "Unknown client")
        key = self._key_for(client, header.get("kid"))
        try:
            claims = JsonWebToken(list(ASSERTION_ALGORITHMS)).decode(assertion, key)
        except (JoseError, ValueError) as error:
            raise OAuthError(401, "invalid_client", "Assertion signature is invalid") from error
        check_assertion_claims(claims, str(client_id), self.token_url, time.time())
        return dict(claims)

    @staticmethod
    def _key_for(client: _Client, kid: Any) -> Any:
        keys = list(client.key_set.keys)
        if kid is None and len(keys) == 1:
            return keys[0]
        for key in keys:
            if key.kid == kid:
                return key
        raise OAuthError(401, "invalid_client", "No registered key matches the assertion kid")
