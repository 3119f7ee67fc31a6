"""Endpoints the EHR delivers Subscription notifications to.

* ``POST /notifications/{id}``: Backport IG bundles, classic empty pings, and
  Medplum-style raw resources (``X-Signature``).
* ``PUT|POST /notifications/{id}/{type}/{rid}``: HAPI-style full resources.
Answers 200 only after the notification is durable (a group commit: ``ingest.writer``);
401 (nothing stored) for an unknown subscription or bad credentials; 4xx +
OperationOutcome for bad input; 503 + Retry-After when the database is unreachable.
The worker is woken once per group commit, after the answers, off the request path.
Requests reach the handler through :class:`NotificationFastPath` (registered by
``create_app``), past FastAPI's routing; the routes below describe them in OpenAPI.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from fhir_bridge.fhir.outcome import FHIR_JSON, operation_outcome
from fhir_bridge.fhir.resources import SUPPORTED_TYPES
from fhir_bridge.ingest.parsing import STATUS_TYPES, InvalidNotification
from fhir_bridge.ingest.repository import forget_enqueued
from fhir_bridge.ingest.service import NotAuthenticated, check_notification
from fhir_bridge.ingest.writer import GroupCommitWriter, WakeUps
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.tasks import enqueue_inbox_batch

router = APIRouter()

# OpenAPI only: the routes read the raw body (the signature covers its exact bytes) and
# authenticate in ``check_notification``, so no FastAPI security dependency runs per
# request; these describe what an EHR sends, so API tooling (and a fuzzer) can build
# valid requests. ``create_app`` adds SECURITY_SCHEMES to the schema's components.
SECURITY_SCHEMES: dict[str, Any] = {
    "subscriptionToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The per-Subscription token given to the EHR as the Subscription's header.",
    },
    "bodySignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "Hex HMAC-SHA256 of the body with the per-Subscription signing key.",
    },
}
_SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]

_STRING = {"type": "string"}
_REFERENCE = {"type": "object", "properties": {"reference": _STRING, "display": _STRING}}
_PART: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "valueString": _STRING,
        "valueCode": _STRING,
        "valueInteger64": {"type": "integer"},
        "valueReference": _REFERENCE,
    },
}
_PARAMETERS = {
    "type": "object",
    "required": ["resourceType", "parameter"],
    "properties": {
        "resourceType": {"enum": ["Parameters"]},
        "parameter": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    **_PART["properties"],
                    "valueCanonical": _STRING,
                    "part": {"type": "array", "items": _PART},
                },
            },
        },
    },
}
_SUBSCRIPTION_STATUS = {
    "type": "object",
    "required": ["resourceType", "type"],
    "properties": {
        "resourceType": {"enum": ["SubscriptionStatus"]},
        "status": _STRING,
        "type": {"enum": sorted(STATUS_TYPES)},
        "eventsSinceSubscriptionStart": _STRING,
        "subscription": _REFERENCE,
        "notificationEvent": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"eventNumber": _STRING, "focus": _REFERENCE},
            },
        },
    },
}
_RESOURCE = {
    "type": "object",
    "required": ["resourceType", "id"],
    "properties": {
        "resourceType": {"enum": list(SUPPORTED_TYPES)},
        "id": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
        "meta": {"type": "object", "properties": {"versionId": _STRING, "lastUpdated": _STRING}},
    },
}
_NOTIFICATION_BUNDLE = {
    "type": "object",
    "required": ["resourceType", "type", "entry"],
    "properties": {
        "resourceType": {"enum": ["Bundle"]},
        "type": {"enum": ["history"]},
        "entry": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "fullUrl": _STRING,
                    "resource": {"anyOf": [_PARAMETERS, _SUBSCRIPTION_STATUS, _RESOURCE]},
                },
            },
        },
    },
}


def _request_body(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "security": _SECURITY,
        "requestBody": {
            "required": False,
            "description": description,
            "content": {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema}},
        },
    }


_TOPIC_BODY = _request_body(
    {"anyOf": [_NOTIFICATION_BUNDLE, _RESOURCE]},
    "A Subscriptions Backport IG notification Bundle (R4 Parameters or R4B "
    "SubscriptionStatus first), a classic rest-hook resource, or nothing (classic ping).",
)
_RESOURCE_BODY = _request_body(_RESOURCE, "The changed resource (HAPI-style rest-hook).")
_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "content": {FHIR_JSON: {}}}
    for code, text in (
        (400, "Malformed notification (OperationOutcome)"),
        (401, "Unknown subscription or invalid credentials (OperationOutcome)"),
        (413, "Body too large (OperationOutcome)"),
        (503, "Database unreachable; retry after Retry-After seconds (OperationOutcome)"),
    )
}


class BodyTooLarge(ValueError):
    """The request body exceeds the configured limit."""


def _fhir_error(status: int, code: str, diagnostics: str) -> JSONResponse:
    return JSONResponse(
        operation_outcome(code, diagnostics), status_code=status, media_type=FHIR_JSON
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refused past ``limit`` bytes (declared or sent); read from the ASGI
    messages directly, as ``Request.stream`` would, without its async generator."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = bytearray()
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.extend(message.get("body", b""))
        if len(chunks) > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return bytes(chunks)


@router.post(
    "/notifications/{subscription_id}",
    openapi_extra=_TOPIC_BODY,
    responses=_RESPONSES,
)
async def notify(request: Request, subscription_id: str) -> Response:
    return await _receive(request, subscription_id, None, None)


@router.put(
    "/notifications/{subscription_id}/{resource_type}/{resource_id}",
    operation_id="notify_resource_put",
    openapi_extra=_RESOURCE_BODY,
    responses=_RESPONSES,
)
@router.post(
    "/notifications/{subscription_id}/{resource_type}/{resource_id}",
    operation_id="notify_resource_post",
    openapi_extra=_RESOURCE_BODY,
    responses=_RESPONSES,
)
async def notify_resource(
    request: Request, subscription_id: str, resource_type: str, resource_id: str
) -> Response:
    return await _receive(request, subscription_id, resource_type, resource_id)


async def _receive(
    request: Request, subscription_id: str, resource_type: str | None, resource_id: str | None
) -> Response:
    rt: Runtime = request.app.state.runtime
    limit = rt.settings.max_notification_bytes
    try:
        body = await _read_limited(request, limit)
    except BodyTooLarge:
        return _fhir_error(413, "too-long", "notification body exceeds the configured limit")
    check = partial(
        check_notification,
        master_secret=rt.settings.require_notification_secret(),
        subscription_id=subscription_id,
        authorization=request.headers.get("authorization"),
        signature=request.headers.get("x-signature"),
        body=body,
        path_type=resource_type,
        path_id=resource_id,
        now=rt.clock(),
    )
    try:
        # Small bodies are checked on the event loop (cheaper than a thread hop); a large
        # one, whose parse and validation take milliseconds, in a worker thread.
        note = check() if len(body) <= INLINE_CHECK_BYTES else await run_in_threadpool(check)
        accepted = await _writer(request.app, rt).store(note)
    except NotAuthenticated:
        return _fhir_error(401, "login", "unknown subscription or invalid credentials")
    except InvalidNotification as exc:
        return _fhir_error(400, exc.code, str(exc))
    return Response(_DUPLICATE if accepted.duplicate else _ACCEPTED, media_type=FHIR_JSON)


class NotificationFastPath:
    """Pure ASGI middleware: notification requests go straight to :func:`_receive`.

    ``POST /notifications/{id}`` and ``PUT|POST /notifications/{id}/{type}/{rid}`` skip
    FastAPI's routing over every route, its per-request dependency solving and the inner
    middleware, about a tenth of the API's CPU per notification; the response is the same.
    The outer middleware (FastAPI's 500 handler, body limit and telemetry) still wraps it, an
    exception gets the app's own handler (a database outage: 503 + Retry-After), and
    anything else (another method, an odd path, an app under a root path) goes on to the
    routes above, which also describe these endpoints in the OpenAPI schema.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = _notification_target(scope) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await _receive(request, *target)
        except Exception as exc:
            handler = _exception_handler(request.app, exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


def _notification_target(scope: Scope) -> tuple[str, str | None, str | None] | None:
    """``(subscription_id, resource_type, resource_id)`` when a notification route matches."""
    if scope.get("root_path"):
        return None
    parts = scope["path"].split("/")
    if parts[:2] != ["", "notifications"] or len(parts) not in (3, 5) or not all(parts[2:]):
        return None
    if len(parts) == 3:
        return (parts[2], None, None) if scope["method"] == "POST" else None
    return (parts[2], parts[3], parts[4]) if scope["method"] in ("POST", "PUT") else None


def _exception_handler(app: Any, exc: Exception) -> Callable[..., Any] | None:
    """The handler Starlette's ExceptionMiddleware would pick (those for ``Exception`` and
    500 belong to the outermost middleware, which sees whatever is raised on)."""
    handlers: dict[Any, Callable[..., Any]] = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _informational(text: str) -> bytes:
    return orjson.dumps(operation_outcome("informational", text, severity="information"))


# The two answers that are not errors, serialized once.
_ACCEPTED = _informational("notification accepted")
_DUPLICATE = _informational("duplicate notification ignored")


INLINE_CHECK_BYTES = 16 * 1024
_WRITER_LOCK = threading.Lock()


def _writer(app: Any, rt: Runtime) -> GroupCommitWriter:
    """The app's one group-commit writer, made on first use."""
    writer: GroupCommitWriter | None = getattr(app.state, "notification_writer", None)
    if writer is None:
        with _WRITER_LOCK:
            writer = getattr(app.state, "notification_writer", None)
            if writer is None:
                wake_ups = WakeUps(
                    lambda ids: wake_worker(ids), lambda ids: _lost_wake_ups(rt, ids)
                )
                writer = GroupCommitWriter(rt.engine, wake_ups, rt.clock)
                app.state.notification_writer = writer
    return writer


def wake_worker(inbox_ids: list[int]) -> bool:
    """One wake-up for every notification stored since the last one (never raises)."""
    return enqueue_inbox_batch(inbox_ids)


def _lost_wake_ups(rt: Runtime, inbox_ids: list[int]) -> None:
    with transaction(rt.sessions) as session:
        forget_enqueued(session, inbox_ids)
