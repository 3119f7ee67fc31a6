"""Endpoints the EHR delivers Subscription notifications to.

* ``POST /notifications/{id}``: Backport IG bundles, classic empty pings, and
  Medplum-style raw resources (``X-Signature``).
* ``PUT|POST /notifications/{id}/{type}/{rid}``: HAPI-style full resources.
Answers 200 only after the notification is durable (a group commit: ``ingest.writer``);
401 (nothing stored) for an unknown subscription or bad credentials; 4xx +
OperationOutcome for bad input; 503 + Retry-After when the database is unreachable.
The worker is woken once per group commit, after the answers, off the request path.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from fhir_bridge.fhir.outcome import FHIR_JSON, operation_outcome
from fhir_bridge.fhir.resources import SUPPORTED_TYPES
from fhir_bridge.ingest.parsing import STATUS_TYPES, InvalidNotification
from fhir_bridge.ingest.repository import forget_enqueued
from fhir_bridge.ingest.service import NotAuthenticated, check_notification, log_accepted
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
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > limit:
            raise BodyTooLarge
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
    log_accepted(note, accepted)
    return Response(_DUPLICATE if accepted.duplicate else _ACCEPTED, media_type=FHIR_JSON)


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
