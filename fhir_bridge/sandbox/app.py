"""FastAPI application: the FHIR REST surface, the SMART token endpoint and error mapping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_bridge.sandbox.admin import admin_router
from fhir_bridge.sandbox.auth import OAuthError
from fhir_bridge.sandbox.batch import batch_router
from fhir_bridge.sandbox.capability import capability_statement, smart_configuration
from fhir_bridge.sandbox.interactions import FhirInteractions, etag
from fhir_bridge.sandbox.outcomes import (
    FhirError,
    InvalidRequestError,
    NotFoundError,
    operation_outcome,
    outcome_for,
)
from fhir_bridge.sandbox.smart_launch import SmartLaunch, smart_launch_router
from fhir_bridge.sandbox.state import EhrState, ServerConfig
from fhir_bridge.sandbox.subscription_model import PAYLOAD_CONTENTS

FHIR_JSON = "application/fhir+json"
_HTTP_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
}


def fhir_response(
    body: dict[str, Any], status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A FHIR JSON response with the proper media type."""
    return Response(
        content=json.dumps(body),
        status_code=status_code,
        media_type=f"{FHIR_JSON}; charset=utf-8",
        headers=headers,
    )


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidRequestError("Request body is not valid JSON") from error


def _version_headers(state: EhrState, resource: dict[str, Any]) -> dict[str, str]:
    location = (
        f"{state.config.base_url}/{resource['resourceType']}/{resource['id']}"
        f"/_history/{resource['meta']['versionId']}"
    )
    return {"ETag": etag(resource), "Location": location, "Content-Location": location}


def create_app(config: ServerConfig) -> FastAPI:
    """Build the fake EHR application around a fresh in-memory state."""
    state = EhrState(config)
    fhir = FhirInteractions(state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.subscriptions.shutdown()

    app = FastAPI(
        title="fhir-bridge fake EHR",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.ehr = state
    app.include_router(admin_router(state))
    launcher = SmartLaunch(state)
    app.include_router(smart_launch_router(launcher))
    app.include_router(batch_router(state, fhir, fhir_response, _json_body))

    @app.middleware("http")
    async def _latency(request: Request, call_next: Any) -> Response:
        """The chaos ``latency``: FHIR requests answer no sooner than a real EHR would."""
        delay = state.chaos.latency
        if delay and request.url.path.startswith("/fhir/"):
            await asyncio.sleep(delay)
        response: Response = await call_next(request)
        return response

    def authorize(request: Request, type_: str, letter: str) -> None:
        state.auth.require(request.headers.get("authorization"), type_, letter)

    @app.exception_handler(FhirError)
    async def _fhir_error(_: Request, error: FhirError) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="fhir"'} if error.status_code == 401 else None
        return fhir_response(outcome_for(error), error.status_code, headers)

    @app.exception_handler(OAuthError)
    async def _oauth_error(_: Request, error: OAuthError) -> Response:
        return Response(json.dumps(error.body()), error.status_code, media_type="application/json")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(error.status_code, "exception")
        outcome = operation_outcome("error", code, f"HTTP {error.status_code}")
        return fhir_response(outcome, error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, __: RequestValidationError) -> Response:
        return fhir_response(operation_outcome("error", "invalid", "Malformed request"), 400)

    @app.get("/fhir/metadata")
    def metadata() -> Response:
        state.count("capabilities")
        return fhir_response(capability_statement(state))

    @app.get("/fhir/.well-known/smart-configuration")
    def smart_config() -> Response:
        return Response(json.dumps(smart_configuration(state)), media_type="application/json")

    @app.post("/auth/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        fields = {key: str(value) for key, value in form.items()}
        if fields.get("grant_type") == "authorization_code":
            issued = launcher.exchange(fields, request.headers.get("authorization"))
        else:
            issued = state.auth.issue_token(fields)
        return Response(
            json.dumps(issued),
            media_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    @app.get("/fhir")
    def paging(request: Request) -> Response:
        params = dict(request.query_params)
        if "_getpages" not in params:
            raise NotFoundError("Unknown request")
        state.auth.scopes_for(request.headers.get("authorization"))
        authorize(request, state.pager.resource_type_of(params["_getpages"]), "s")
        state.count("search-type")
        return fhir_response(fhir.page(params))

    @app.post("/fhir/{type_}")
    async def create(type_: str, request: Request) -> Response:
        fhir.require_type(type_)
        authorize(request, type_, "c")
        body = await _json_body(request)
        state.count("create", type_)
        status, resource = fhir.create(type_, body, request.headers.get("if-none-exist"))
        return fhir_response(resource, status, _version_headers(state, resource))

    @app.get("/fhir/{type_}")
    def search(type_: str, request: Request) -> Response:
        fhir.require_type(type_)
        authorize(request, type_, "s")
        state.count("search-type", type_)
        return fhir_response(fhir.search(type_, list(request.query_params.multi_items())))

    @app.get("/fhir/{type_}/{id_}")
    def read(type_: str, id_: str, request: Request) -> Response:
        fhir.require_type(type_)
        authorize(request, type_, "r")
        state.count("read", type_)
        resource = fhir.read(type_, id_)
        return fhir_response(resource, 200, {"ETag": etag(resource)})

    @app.put("/fhir/{type_}/{id_}")
    async def update(type_: str, id_: str, request: Request) -> Response:
        fhir.require_type(type_)
        authorize(request, type_, "u")
        body = await _json_body(request)
        state.count("update", type_)
        status, resource = fhir.update(type_, id_, body, request.headers.get("if-match"))
        return fhir_response(resource, status, _version_headers(state, resource))

    @app.delete("/fhir/{type_}/{id_}")
    def delete(type_: str, id_: str, request: Request) -> Response:
        fhir.require_type(type_)
        authorize(request, type_, "d")
        state.count("delete", type_)
        fhir.delete(type_, id_)
        outcome = operation_outcome("information", "informational", "Resource deleted")
        return fhir_response(outcome, 200)

    @app.get("/fhir/{type_}/{id_}/_history/{version_id}")
    def vread(type_: str, id_: str, version_id: str, request: Request) -> Response:
        fhir.require_type(type_)
        authorize(request, type_, "r")
        state.count("vread", type_)
        resource = fhir.vread(type_, id_, version_id)
        return fhir_response(resource, 200, {"ETag": etag(resource)})

    @app.get("/fhir/{type_}/{id_}/{operation}")
    def instance_operation(type_: str, id_: str, operation: str, request: Request) -> Response:
        if type_ != "Subscription" or operation not in ("$status", "$events"):
            raise NotFoundError("Unknown operation")
        authorize(request, type_, "r")
        state.count("operation", type_)
        if operation == "$status":
            return fhir_response(state.subscriptions.status_bundle(id_))
        query = request.query_params
        if query.get("content") not in (None, *PAYLOAD_CONTENTS):
            raise InvalidRequestError("content must be empty, id-only or full-resource")
        bundle = state.subscriptions.events_bundle(
            id_,
            _optional_int(query.get("eventsSinceNumber")),
            _optional_int(query.get("eventsUntilNumber")),
            query.get("content"),
        )
        return fhir_response(bundle)

    return app


def _optional_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise InvalidRequestError("Event numbers must be non-negative integers")
    return int(value)
