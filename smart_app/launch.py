"""SMART App Launch 2.x (EHR and standalone launch): the pure parts (issuer, PKCE, URLs, context).

The EHR opens ``/smart/launch?iss=…&launch=…``; we accept only our configured EHR
as ``iss`` (an attacker-chosen ``iss`` would receive our client id and, after the
exchange, make us trust its patient context). PKCE ``S256`` is always used, even
by a confidential client. ``state`` and the PKCE verifier are kept server-side, keyed
by ``state`` (single use), so the callback needs no cookie inside a cross-site frame.
Only practitioner users (``fhirUser`` a Practitioner or PractitionerRole) get a session.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from smart_app.config import SmartAppConfig
from smart_app.errors import LaunchRefused, RoleRefused, TokenExchangeFailed

PKCE_METHOD = "S256"
STAFF_USER_TYPES = ("Practitioner", "PractitionerRole")


@dataclass(frozen=True)
class SmartEndpoints:
    """What discovery tells us about the EHR's authorization server."""

    authorization_endpoint: str
    token_endpoint: str
    issuer: str | None = None


@dataclass(frozen=True)
class PendingLaunch:
    """A launch waiting for its callback, keyed by ``state``."""

    state: str
    code_verifier: str
    token_endpoint: str
    issuer: str | None
    created_at: float
    kind: str = "ehr"
    browser_binding: str | None = None


@dataclass(frozen=True)
class LaunchContext:
    """What the token response grants: the user's token and the chart's context."""

    access_token: str
    scope: str
    patient_ref: str | None
    encounter_ref: str | None
    fhir_user: str | None
    expires_in: int | None
    need_patient_banner: bool = False


def check_issuer(iss: str | None, config: SmartAppConfig) -> str:
    """The launch's ``iss`` if it is our EHR's FHIR base URL; anything else is refused."""
    if not iss or iss.rstrip("/") != config.iss:
        raise LaunchRefused("unknown-iss")
    return config.iss


def new_state() -> str:
    """An unguessable ``state`` value (also the key of the pending launch)."""
    return secrets.token_urlsafe(32)


def pkce_pair() -> tuple[str, str]:
    """``(code_verifier, code_challenge)`` for PKCE S256 (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)
    return verifier, s256_challenge(verifier)


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def parse_smart_configuration(document: Any) -> SmartEndpoints:
    """Endpoints from ``.well-known/smart-configuration``; refuses servers without S256."""
    if not isinstance(document, Mapping):
        raise LaunchRefused("bad-smart-configuration")
    authorize = document.get("authorization_endpoint")
    token = document.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str):
        raise LaunchRefused("no-authorization-endpoint")
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and PKCE_METHOD not in methods:
        raise LaunchRefused("pkce-s256-unsupported")
    issuer = document.get("issuer")
    return SmartEndpoints(authorize, token, issuer if isinstance(issuer, str) else None)


def authorize_url(
    endpoints: SmartEndpoints,
    config: SmartAppConfig,
    *,
    launch: str | None,
    state: str,
    code_challenge: str,
) -> str:
    """The authorization request the browser is redirected to (SMART 2.x).

    With a ``launch`` id: the EHR launch and its patient scopes; without: the standalone
    launch with the user-level scopes (``config.standalone_scope``).
    """
    params = {
        "response_type": "code",
        "client_id": config.client_id,
        "redirect_uri": config.redirect_uri,
        "scope": config.scope if launch is not None else config.standalone_scope,
        "state": state,
        "aud": config.iss,
        "code_challenge": code_challenge,
        "code_challenge_method": PKCE_METHOD,
    }
    if launch is not None:
        params["launch"] = launch
    query = urlencode(params)
    separator = "&" if "?" in endpoints.authorization_endpoint else "?"
    return f"{endpoints.authorization_endpoint}{separator}{query}"


def context_from_token_response(
    body: Any,
    config: SmartAppConfig,
    issuer: str | None,
    now: float,
    *,
    patient_required: bool = True,
) -> LaunchContext:
    """The launch context from a token response.

    An EHR launch (``patient_required``) without a patient is refused; a standalone launch
    keeps no patient even if the EHR names one.
    """
    if not isinstance(body, Mapping):
        raise TokenExchangeFailed("bad-token-response")
    access_token = body.get("access_token")
    patient = body.get("patient") if patient_required else None
    if not isinstance(access_token, str) or not access_token:
        raise TokenExchangeFailed("no-access-token")
    if patient_required and (not isinstance(patient, str) or not _is_fhir_id(patient)):
        raise TokenExchangeFailed("no-patient-context")
    encounter = body.get("encounter")
    expires_in = body.get("expires_in")
    id_token = body.get("id_token")
    claims = id_token_claims(id_token, config, issuer, now) if isinstance(id_token, str) else {}
    fhir_user = claims.get("fhirUser") or body.get("fhirUser")
    return LaunchContext(
        access_token=access_token,
        scope=str(body.get("scope") or ""),
        patient_ref=f"Patient/{patient}" if isinstance(patient, str) else None,
        encounter_ref=f"Encounter/{encounter}"
        if patient_required and isinstance(encounter, str) and _is_fhir_id(encounter)
        else None,
        fhir_user=relative_reference(fhir_user, config.iss) if isinstance(fhir_user, str) else None,
        expires_in=expires_in if isinstance(expires_in, int) else None,
        need_patient_banner=body.get("need_patient_banner") is True,
    )


def require_staff_user(fhir_user: str | None) -> str:
    """The ``fhirUser`` if it is a Practitioner or PractitionerRole on our EHR; else refused.

    Patients and related persons (and users the EHR does not name) never get a session: the
    panel shows other people's messages and lets its user change consent.
    """
    if not fhir_user:
        raise RoleRefused("no-fhir-user")
    resource_type, _, resource_id = fhir_user.partition("/")
    if resource_type not in STAFF_USER_TYPES or not _is_fhir_id(resource_id):
        raise RoleRefused("staff-only")
    return fhir_user


def id_token_claims(
    id_token: str, config: SmartAppConfig, issuer: str | None, now: float
) -> dict[str, Any]:
    """Claims of an id_token received directly from the token endpoint.

    OpenID Connect Core 3.1.3.7 allows TLS server validation in place of the
    signature for a token obtained over that direct channel; ``aud``, ``iss`` and
    ``exp`` are still checked, since they bind the token to this app and this EHR.
    """
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as error:
        raise TokenExchangeFailed("bad-id-token") from error
    if not isinstance(claims, dict):
        raise TokenExchangeFailed("bad-id-token")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if config.client_id not in audiences:
        raise TokenExchangeFailed("id-token-audience")
    if issuer is not None and claims.get("iss") != issuer:
        raise TokenExchangeFailed("id-token-issuer")
    expiry = claims.get("exp")
    if not isinstance(expiry, int | float) or expiry < now:
        raise TokenExchangeFailed("id-token-expired")
    return claims


def relative_reference(reference: str, base_url: str) -> str:
    """``Practitioner/123`` from an absolute ``fhirUser`` on our EHR; others kept as given."""
    prefix = base_url.rstrip("/") + "/"
    return reference[len(prefix) :] if reference.startswith(prefix) else reference


def _is_fhir_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(char.isalnum() or char in "-." for char in value)
