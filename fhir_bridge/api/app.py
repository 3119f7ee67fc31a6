"""FastAPI application factory: notification endpoints, health, readiness, JWKS.

``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from the app itself
(``fastapi-offline`` ships them), so they work on a clinic network without internet;
``FHIR_BRIDGE_API_DOCS=false`` turns them and ``/openapi.json`` off.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

import smart_app
from fhir_bridge import metrics
from fhir_bridge.api import health, notifications, twilio_webhooks, unsubscribe
from fhir_bridge.fhir.outcome import FHIR_JSON, operation_outcome
from fhir_bridge.fhir_api import routes as fhir_api_routes
from fhir_bridge.logging_setup import configure_logging
from fhir_bridge.runtime import Runtime, get_runtime
from smart_app import campaign_routes, outcomes_routes

log = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 10


def database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean "cannot reach or lock the database now", not bad SQL."""
    if isinstance(exc, PoolTimeout | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


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
    app.include_router(fhir_api_routes.router)
    app.include_router(metrics.router)
    app.include_router(outcomes_routes.router)
    app.include_router(campaign_routes.router)
    app.add_middleware(notifications.NotificationFastPath)  # the hot path, past routing
    _document_security_schemes(app)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        # The database is down or locked: the sender should retry (an EHR counts a 5xx
        # other than 503 against the Subscription); a retry is safe, every write is deduplicated.
        if not database_unavailable(exc):
            raise exc  # a bug, not an outage: the 500 handler below, as before
        log.warning(
            "database unavailable", extra={"path": request.url.path, "error": type(exc).__name__}
        )
        return JSONResponse(
            operation_outcome("transient", "database unavailable; retry later"),
            status_code=503,
            media_type=FHIR_JSON,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse(
            operation_outcome("exception", "internal error; see server logs"),
            status_code=500,
            media_type=FHIR_JSON,
        )

    return app


def _document_security_schemes(app: FastAPI) -> None:
    """Add the notification routes' security schemes to the generated OpenAPI schema.

    The routes check credentials themselves (no per-request security dependency), so
    FastAPI does not list the schemes their operations name; they are added here, once.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema or generate()  # generated once, then cached by FastAPI
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(
            notifications.SECURITY_SCHEMES
        )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _new_app(*, docs: bool) -> FastAPI:
    if not docs:
        return FastAPI(
            title="fhir-bridge", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None
        )
    return FastAPIOffline(title="fhir-bridge", version="0.1.0", static_url="/docs-assets")
