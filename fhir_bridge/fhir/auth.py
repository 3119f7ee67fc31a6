"""httpx authentication for the EHR: SMART Backend Services, plus a static token for development.

SMART App Launch 2 Backend Services: the service proves its identity with a short-lived JWT signed
by its private key (`private_key_jwt`), exchanges it for an access token with the
`client_credentials` grant, and presents that token as a Bearer on every FHIR call. Tokens are
cached until shortly before they expire and shared between threads (Celery worker threads reuse
one client); a 401 from the FHIR server triggers exactly one refresh-and-retry.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx

from fhir_bridge.fhir.errors import (
    EhrAuthError,
    EhrNotSupported,
    EhrProtocolError,
    EhrUnavailable,
)
from fhir_bridge.fhir.keys import SigningKey

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300.0  # SMART: exp no more than five minutes in the future
DEFAULT_TOKEN_LIFETIME = 300.0  # assumed when a token response omits expires_in
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

logger = logging.getLogger(__name__)


class StaticBearerAuth(httpx.Auth):
    """Send a fixed bearer token (development servers and manual testing only)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and the clock time after which we stop using it."""

    value: str
    refresh_at: float
    scope: str | None


class SmartBackendServicesAuth(httpx.Auth):
    """Obtain, cache and attach SMART Backend Services access tokens.

    `clock` returns epoch seconds and drives both assertion timestamps and token expiry, so tests
    can move time. The token endpoint is discovered from `{fhir_base_url}/.well-known/
    smart-configuration` on first use unless `token_endpoint` is given.
    """

    requires_request_body = True  # the request is re-sent after a 401

    def __init__(
        self,
        *,
        fhir_base_url: str,
        client_id: str,
        signing_key: SigningKey,
        scope: str,
        token_endpoint: str | None = None,
        expiry_margin: float = 60.0,
        assertion_lifetime: float = MAX_ASSERTION_LIFETIME,
        jku: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._fhir_base_url = fhir_base_url.rstrip("/")
        self._client_id = client_id
        self._signing_key = signing_key
        self._scope = scope
        self._token_endpoint = token_endpoint and _checked_endpoint(token_endpoint)
        self._expiry_margin = expiry_margin
        self._assertion_lifetime = min(assertion_lifetime, MAX_ASSERTION_LIFETIME)
        self._jku = jku
        self._clock = clock
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._http = httpx.Client(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "fhir-bridge"},
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            logger.info("smart_token_rejected status=401; refreshing once")
            self.invalidate(token)
            request.headers["Authorization"] = f"Bearer {self.access_token()}"
            yield request

    def access_token(self) -> str:
        """A currently valid access token, requesting a new one when needed."""
        with self._lock:
            if self._token is None or self._clock() >= self._token.refresh_at:
                self._token = self._request_token()
            return self._token.value

    def invalidate(self, token: str) -> None:
        """Forget `token` if it is still the cached one (another thread may have refreshed)."""
        with self._lock:
            if self._token is not None and self._token.value == token:
                self._token = None

    def client_assertion(self, audience: str) -> str:
        """Signed JWT proving our identity to the token endpoint `audience`."""
        now = int(self._clock())
        claims = {
            "iss": self._client_id,
            "sub": self._client_id,
            "aud": audience,
            "iat": now,
            "exp": now + int(self._assertion_lifetime),
            "jti": uuid.uuid4().hex,
        }
        extra_header = {"jku": self._jku} if self._jku else None
        return self._signing_key.sign_jwt(claims, extra_header)

    def close(self) -> None:
        """Release the token endpoint connection pool."""
        self._http.close()

    def _request_token(self) -> AccessToken:
        endpoint = self._discovered_token_endpoint()
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(endpoint),
        }
        requested_at = self._clock()
        response = self._post_form(endpoint, form)
        if response.status_code in (400, 401, 403):
            raise EhrAuthError(
                f"token endpoint refused client credentials: HTTP {response.status_code}"
                f" (error: {_oauth_error_code(response)})",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise EhrUnavailable(
                f"token endpoint failed: HTTP {response.status_code}", status=response.status_code
            )
        return self._parse_token(response, requested_at)

    def _parse_token(self, response: httpx.Response, requested_at: float) -> AccessToken:
        body = _json_object(response, "token response")
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise EhrProtocolError("token response has no access_token", status=200)
        if str(body.get("token_type", "")).lower() != "bearer":
            raise EhrProtocolError("token response is not a bearer token", status=200)
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else None
        if lifetime is None or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        # Never let the margin eat more than half the lifetime, or every call would re-fetch.
        margin = min(self._expiry_margin, lifetime / 2)
        scope = body.get("scope")
        logger.info("smart_token_issued expires_in_s=%d", int(lifetime))
        return AccessToken(
            value=value,
            refresh_at=requested_at + lifetime - margin,
            scope=scope if isinstance(scope, str) else None,
        )

    def _discovered_token_endpoint(self) -> str:
        if self._token_endpoint:
            return self._token_endpoint
        url = f"{self._fhir_base_url}/.well-known/smart-configuration"
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            raise EhrUnavailable(f"SMART discovery failed ({type(exc).__name__})") from exc
        if response.status_code in (404, 501):
            raise EhrNotSupported(
                f"EHR publishes no SMART configuration: HTTP {response.status_code}",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise EhrUnavailable(
                f"SMART discovery failed: HTTP {response.status_code}", status=response.status_code
            )
        config = _json_object(response, "SMART configuration")
        endpoint = config.get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise EhrProtocolError("SMART configuration has no token_endpoint", status=200)
        supported = config.get("token_endpoint_auth_signing_alg_values_supported")
        if isinstance(supported, list) and self._signing_key.alg not in supported:
            logger.warning("smart_alg_not_advertised alg=%s", self._signing_key.alg)
        self._token_endpoint = _checked_endpoint(endpoint)
        return self._token_endpoint

    def _post_form(self, endpoint: str, form: dict[str, str]) -> httpx.Response:
        try:
            return self._http.post(endpoint, data=form)
        except httpx.HTTPError as exc:
            raise EhrUnavailable(f"token endpoint unreachable ({type(exc).__name__})") from exc


def _checked_endpoint(url: str) -> str:
    """Refuse to send client assertions over plain HTTP, except to this machine."""
    parsed = httpx.URL(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.host in _LOOPBACK_HOSTS):
        return url
    raise EhrProtocolError("token endpoint must use https")


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise EhrProtocolError(f"{what} is not JSON", status=response.status_code) from exc
    if not isinstance(body, dict):
        raise EhrProtocolError(f"{what} is not a JSON object", status=response.status_code)
    return body


def _oauth_error_code(response: httpx.Response) -> str:
    """The RFC 6749 `error` code only; `error_description` is free text and is never surfaced."""
    try:
        body = response.json()
    except ValueError:
        return "unknown"
    code = body.get("error") if isinstance(body, dict) else None
    if isinstance(code, str) and code.replace("_", "").isalpha() and len(code) <= 40:
        return code
    return "unknown"
