"""Unauthenticated `/_admin` API through which tests steer the fake EHR's bad habits."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from fhir_bridge.sandbox.auth import DEFAULT_SCOPE
from fhir_bridge.sandbox.outcomes import InvalidRequestError
from fhir_bridge.sandbox.state import EhrState


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(json.dumps(body), status_code, media_type="application/json")


async def _options(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        options = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequestError("Admin request body is not valid JSON") from error
    if not isinstance(options, dict):
        raise InvalidRequestError("Admin request body must be a JSON object")
    return options


def admin_router(state: EhrState) -> APIRouter:
    """Routes under `/_admin` bound to one server state."""
    router = APIRouter(prefix="/_admin")

    @router.post("/chaos")
    async def chaos(request: Request) -> Response:
        state.chaos.update(await _options(request))
        return _json(state.chaos.as_dict())

    @router.post("/flush")
    def flush() -> Response:
        state.subscriptions.dispatcher.flush()
        return _json({"flushed": True})

    @router.post("/settings")
    async def settings(request: Request) -> Response:
        state.update_settings(await _options(request))
        return _json(state.stats()["settings"])

    @router.post("/restart")
    def restart() -> Response:
        state.subscriptions.simulate_restart()
        return _json({"restarted": True})

    @router.post("/subscriptions/{subscription_id}/error")
    def force_error(subscription_id: str) -> Response:
        state.subscriptions.force_error(subscription_id)
        return _json({"id": subscription_id, "status": "error"})

    @router.get("/deliveries")
    def deliveries() -> Response:
        return _json(state.delivery_log.entries())

    @router.post("/clients")
    async def register_client(request: Request) -> Response:
        options = await _options(request)
        client_id = options.get("client_id")
        jwks = options.get("jwks")
        scope = options.get("scope", DEFAULT_SCOPE)
        if not isinstance(client_id, str) or not client_id:
            raise InvalidRequestError("client_id is required")
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise InvalidRequestError("jwks must be a JWK Set object with 'keys'")
        if not isinstance(scope, str):
            raise InvalidRequestError("scope must be a space-separated string")
        state.auth.register_client(client_id, jwks, scope)
        return _json({"client_id": client_id, "scope": scope}, 201)

    @router.get("/stats")
    def stats() -> Response:
        return _json(state.stats())

    @router.post("/reset")
    def reset() -> Response:
        state.reset()
        return _json({"reset": True})

    return router
