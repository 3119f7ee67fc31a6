"""SMART App Launch (EHR launch) on the fake EHR: launch contexts, authorize, code exchange.

Tests create a launch context with ``POST /_admin/launch {patient, fhirUser,
need_patient_banner}`` and open the app's launch URL with the returned ``launch`` id;
``GET /auth/authorize`` auto-approves (no login page) and redirects back with a single-use
code, and the token endpoint exchanges it (``grant_type=authorization_code``) after
checking the redirect URI, PKCE S256 and, for registered confidential clients, the secret.

A **standalone launch** (no ``launch`` parameter, no ``launch`` scope) signs in the user
set with ``POST /_admin/standalone-user {fhirUser}`` (there is no login page).
``GET /chart?patient=…&fhirUser=…&app=<launch URL>`` is a minimal chart page that embeds
the app in an iframe, launched for that patient, the way an EHR does; open it on another
host name than the app's (``localhost`` vs ``127.0.0.1``) to try a cross-site frame.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from fhir_bridge.sandbox.auth import OAuthError, _permissions, _Token
from fhir_bridge.sandbox.outcomes import InvalidRequestError
from fhir_bridge.sandbox.state import EhrState

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.jose import JsonWebKey, JsonWebToken

CODE_LIFETIME_SECONDS = 60
ID_TOKEN_LIFETIME_SECONDS = 300
_KEY_ID = "fake-ehr-id-token"
_IDENTITY_SCOPES = frozenset({"launch", "openid", "fhirUser", "profile", "offline_access"})


@dataclass(frozen=True)
class LaunchContext:
    """The chart's context a launch id stands for."""

    patient: str | None
    fhir_user: str | None
    encounter: str | None
    need_patient_banner: bool = False


@dataclass(frozen=True)
class _Grant:
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: tuple[str, ...]
    context: LaunchContext
    expires_at: float


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class SmartLaunch:
    """Launch contexts, confidential client secrets, pending codes and the id_token key."""

    def __init__(self, state: EhrState) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._launches: dict[str, LaunchContext] = {}
        self._secrets: dict[str, str] = {}
        self._codes: dict[str, _Grant] = {}
        self._key: Any = None
        self.standalone_user: str | None = None

    @property
    def authorize_url(self) -> str:
        """The authorization endpoint advertised in the SMART configuration."""
        return f"{self.state.config.origin}/auth/authorize"

    def new_launch(self, context: LaunchContext) -> str:
        """Register a launch context; returns the opaque launch id."""
        launch = secrets.token_urlsafe(16)
        with self._lock:
            self._launches[launch] = context
        return launch

    def register_secret(self, client_id: str, client_secret: str) -> None:
        """Make ``client_id`` confidential (HTTP Basic with this secret)."""
        with self._lock:
            self._secrets[client_id] = client_secret

    def authorize(self, params: dict[str, str]) -> str:
        """Auto-approve an authorization request; returns the redirect back to the app."""
        redirect_uri = params.get("redirect_uri") or ""
        if not redirect_uri.startswith(("http://", "https://")):
            raise InvalidRequestError("redirect_uri is missing or not allowed")

        def refuse(error: str) -> str:
            query = {"error": error, "state": params.get("state", "")}
            return f"{redirect_uri}?{urlencode(query)}"

        with self._lock:
            context = self._launches.get(params.get("launch", ""))
        if params.get("response_type") != "code" or not params.get("client_id"):
            return refuse("invalid_request")
        if params.get("aud", "").rstrip("/") != self.state.config.base_url:
            return refuse("invalid_request")
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            return refuse("invalid_request")
        scopes = tuple((params.get("scope") or "").split())
        if "launch" not in scopes and "launch" not in params and self.standalone_user:
            context = LaunchContext(None, self.standalone_user, None)
        elif context is None or "launch" not in scopes:
            return refuse("access_denied")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Grant(
                client_id=params["client_id"],
                redirect_uri=redirect_uri,
                code_challenge=params["code_challenge"],
                scope=scopes,
                context=context,
                expires_at=time.time() + CODE_LIFETIME_SECONDS,
            )
        return f"{redirect_uri}?{urlencode({'code': code, 'state': params.get('state', '')})}"

    def exchange(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        """``grant_type=authorization_code``: check client, redirect URI and PKCE; issue tokens."""
        client_id = self._client_id(form, authorization)
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires_at < time.time() or grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "Unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier") or ""
        if not verifier or not secrets.compare_digest(s256(verifier), grant.code_challenge):
            raise OAuthError(400, "invalid_grant", "PKCE code_verifier does not match")
        granted = tuple(s for s in grant.scope if s in _IDENTITY_SCOPES or _permissions(s))
        access_token = secrets.token_urlsafe(32)
        lifetime = self.state.auth.token_lifetime_seconds
        with self.state.auth._lock:
            self.state.auth._tokens[access_token] = _Token(time.time() + lifetime, granted)
            self.state.auth.tokens_issued += 1
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(granted),
        }
        if grant.context.patient:
            body["patient"] = grant.context.patient
            body["need_patient_banner"] = grant.context.need_patient_banner
        if grant.context.encounter:
            body["encounter"] = grant.context.encounter
        if "openid" in granted and grant.context.fhir_user:
            body["id_token"] = self._id_token(client_id, grant.context.fhir_user)
        return body

    def jwks(self) -> dict[str, Any]:
        """Public key set for verifying id_tokens."""
        return {"keys": [self._signing_key().as_dict(is_private=False)]}

    def _client_id(self, form: dict[str, str], authorization: str | None) -> str:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError as error:
                raise OAuthError(401, "invalid_client", "Malformed Basic credentials") from error
            with self._lock:
                expected = self._secrets.get(client_id)
            if expected is None or not secrets.compare_digest(secret, expected):
                raise OAuthError(401, "invalid_client", "Client authentication failed")
            return client_id
        client_id = form.get("client_id") or ""
        with self._lock:
            confidential = client_id in self._secrets
        if not client_id or confidential:
            raise OAuthError(401, "invalid_client", "Client authentication required")
        return client_id

    def _signing_key(self) -> Any:
        with self._lock:
            if self._key is None:
                self._key = JsonWebKey.generate_key(
                    "RSA", 2048, is_private=True, options={"kid": _KEY_ID}
                )
            return self._key

    def _id_token(self, client_id: str, fhir_user: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.state.config.origin,
            "sub": fhir_user.rsplit("/", 1)[-1],
            "aud": client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_SECONDS,
            "fhirUser": f"{self.state.config.base_url}/{fhir_user}",
        }
        header = {"alg": "RS256", "kid": _KEY_ID}
        token = JsonWebToken(["RS256"]).encode(header, claims, self._signing_key())
        return token.decode("ascii") if isinstance(token, bytes) else str(token)


def smart_launch_router(launcher: SmartLaunch) -> APIRouter:
    """``/auth/authorize``, ``/auth/jwks`` and the test-only ``/_admin`` launch calls."""
    router = APIRouter()

    @router.get("/auth/authorize")
    def authorize(request: Request) -> Response:
        return RedirectResponse(launcher.authorize(dict(request.query_params)), status_code=302)

    @router.get("/auth/jwks")
    def jwks() -> Response:
        return JSONResponse(launcher.jwks())

    @router.post("/_admin/launch")
    async def new_launch(request: Request) -> Response:
        options = await request.json()
        patient = options.get("patient") if isinstance(options, dict) else None
        if not isinstance(patient, str) or not patient:
            raise InvalidRequestError("patient (a Patient id) is required")
        context = LaunchContext(
            patient,
            options.get("fhirUser"),
            options.get("encounter"),
            options.get("need_patient_banner") is True,
        )
        return JSONResponse({"launch": launcher.new_launch(context)}, status_code=201)

    @router.post("/_admin/standalone-user")
    async def standalone_user(request: Request) -> Response:
        options = await request.json()
        fhir_user = options.get("fhirUser") if isinstance(options, dict) else None
        if fhir_user is not None and not isinstance(fhir_user, str):
            raise InvalidRequestError("fhirUser must be a reference such as Practitioner/123")
        launcher.standalone_user = fhir_user
        return JSONResponse({"fhirUser": fhir_user})

    @router.get("/chart")
    def chart(request: Request) -> Response:
        params = request.query_params
        patient, app = params.get("patient"), params.get("app") or ""
        if not patient or not app.startswith(("http://", "https://")):
            raise InvalidRequestError("patient and app (the app's launch URL) are required")
        context = LaunchContext(
            patient,
            params.get("fhirUser"),
            None,
            params.get("need_patient_banner", "true") != "false",
        )
        launch = launcher.new_launch(context)
        query = urlencode({"iss": launcher.state.config.base_url, "launch": launch})
        separator = "&" if "?" in app else "?"
        return HTMLResponse(
            _CHART_PAGE.format(
                patient=html.escape(patient), src=html.escape(f"{app}{separator}{query}")
            )
        )

    @router.post("/_admin/smart-clients")
    async def register_secret(request: Request) -> Response:
        options = await request.json()
        client_id = options.get("client_id") if isinstance(options, dict) else None
        secret = options.get("client_secret") if isinstance(options, dict) else None
        if not isinstance(client_id, str) or not isinstance(secret, str):
            raise InvalidRequestError("client_id and client_secret are required")
        launcher.register_secret(client_id, secret)
        return JSONResponse({"client_id": client_id}, status_code=201)

    return router


_CHART_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chart: Patient/{patient}</title></head>
<body style="margin:0;font-family:sans-serif">
<header style="background:#333;color:#fff;padding:6px 12px">Development EHR chart:
Patient/{patient}</header>
<iframe id="app" title="App" src="{src}" style="width:100%;height:calc(100vh - 40px);border:0">
</iframe>
</body></html>
"""
