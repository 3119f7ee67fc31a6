"""FastAPI application factory: notification endpoints, health, readiness, JWKS."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

import smart_app
from fhir_bridge.api import health, notifications, twilio_webhooks, unsubscribe
from fhir_bridge.fhir.outcome import FHIR_JSON, operation_outcome
from fhir_bridge.logging_setup import configure_logging
from fhir_bridge.runtime import Runtime, get_runtime


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the app; settings are validated here, at start, not at import."""
    rt = runtime or get_runtime()
    configure_logging(rt.settings.log_level)
    app = FastAPI(title="fhir-bridge", version="0.1.0")
    app.state.runtime = rt
    app.include_router(notifications.router)
    app.include_router(health.router)
    app.include_router(twilio_webhooks.router)
    app.include_router(unsubscribe.router)
    app.include_router(smart_app.router)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse(
            operation_outcome("exception", "internal error; see server logs"),
            status_code=500,
            media_type=FHIR_JSON,
        )

    return app
