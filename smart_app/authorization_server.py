"""Talking to the EHR's authorization server: discovery and the code exchange (I/O only)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from smart_app.config import SmartAppConfig
from smart_app.errors import EhrDiscoveryFailed, TokenExchangeFailed
from smart_app.launch import PendingLaunch, SmartEndpoints, parse_smart_configuration

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0


def discover(iss: str, transport: httpx.BaseTransport | None = None) -> SmartEndpoints:
    """Read ``{iss}/.well-known/smart-configuration`` (the issuer was checked before)."""
    url = iss.rstrip("/") + "/.well-known/smart-configuration"
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, transport=transport) as http:
            response = http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as error:
        raise EhrDiscoveryFailed("smart-configuration-unreachable") from error
    if response.status_code != 200:
        log.warning("smart_discovery_failed status=%d", response.status_code)
        raise EhrDiscoveryFailed("smart-configuration-unavailable")
    try:
        document = response.json()
    except ValueError as error:
        raise EhrDiscoveryFailed("smart-configuration-not-json") from error
    return parse_smart_configuration(document)


def exchange_code(
    pending: PendingLaunch,
    code: str,
    config: SmartAppConfig,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, Any]:
    """POST the authorization code with its PKCE verifier; returns the token response body.

    A confidential client authenticates with HTTP Basic (``client-confidential-symmetric``);
    a public client sends only its ``client_id`` and relies on PKCE.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": config.redirect_uri,
        "code_verifier": pending.code_verifier,
    }
    auth: httpx.BasicAuth | None = None
    if config.client_secret:
        auth = httpx.BasicAuth(config.client_id, config.client_secret)
    else:
        form["client_id"] = config.client_id
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS, transport=transport, auth=auth) as http:
            response = http.post(
                pending.token_endpoint, data=form, headers={"Accept": "application/json"}
            )
    except httpx.HTTPError as error:
        raise TokenExchangeFailed("token-endpoint-unreachable") from error
    if response.status_code != 200:
        log.warning("smart_token_exchange_failed status=%d", response.status_code)
        raise TokenExchangeFailed("token-exchange-refused")
    try:
        body: dict[str, Any] = response.json()
    except ValueError as error:
        raise TokenExchangeFailed("token-response-not-json") from error
    return body
