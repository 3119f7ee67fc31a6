"""FastAPI application factory: notification endpoints, health, readiness, JWKS.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from the app itself
(``fastapi-offline`` ships them), so they work on a clinic network without internet;
``FHIR_BRIDGE_API_DOCS=false`` turns them and ``/openapi.json`` off.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

import smart_app
from fhir_bridge.api import health, notifications, twilio_webhooks, unsubscribe
from fhir_bridge.fhir.outcome import FHIR_JSON, operation_outcome
from fhir_bridge.logging_setup import configure_logging
from fhir_bridge.runtime import Runtime, get_runtime


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the app; settings are validated here, at start, not at import."""
    rt = runtime or get_runtime()
    configure_logging(rt.settings.log_level, rt.settings.log_format)
    app = _new_app(docs=rt.settings.api_docs)
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


def _new_app(*, docs: bool) -> FastAPI:
    if not docs:
        return FastAPI(
            title="fhir-bridge", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None
        )
    return FastAPIOffline(title="fhir-bridge", version="0.1.0", static_url="/docs-assets")
