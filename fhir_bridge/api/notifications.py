"""Endpoints the EHR delivers Subscription notifications to.

* ``POST /notifications/{id}``: Backport IG bundles, classic empty pings, and
  Medplum-style raw resources (``X-Signature``).
* ``PUT|POST /notifications/{id}/{type}/{rid}``: HAPI-style full resources.
Answers 200 only after the notification is durable; 401 (nothing stored) for an
unknown subscription or bad credentials; 4xx + OperationOutcome for bad input.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from fhir_bridge.fhir.outcome import FHIR_JSON, operation_outcome
from fhir_bridge.ingest.parsing import InvalidNotification
from fhir_bridge.ingest.service import NotAuthenticated, accept_notification
from fhir_bridge.runtime import Runtime
from fhir_bridge.tasks import enqueue_inbox

router = APIRouter()


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


@router.post("/notifications/{subscription_id}")
async def notify(request: Request, subscription_id: str) -> Response:
    return await _receive(request, subscription_id, None, None)


@router.api_route(
    "/notifications/{subscription_id}/{resource_type}/{resource_id}", methods=["PUT", "POST"]
)
async def notify_resource(
    request: Request, subscription_id: str, resource_type: str, resource_id: str
) -> Response:
    return await _receive(request, subscription_id, resource_type, resource_id)


async def _receive(
    request: Request, subscription_id: str, resource_type: str | None, resource_id: str | None
) -> Response:
    rt: Runtime = request.app.state.runtime
    try:
        body = await _read_limited(request, rt.settings.max_notification_bytes)
    except BodyTooLarge:
        return _fhir_error(413, "too-long", "notification body exceeds the configured limit")
    accepted_ids: list[int] = []
    try:
        accepted = await run_in_threadpool(
            accept_notification,
            rt.sessions,
            master_secret=rt.settings.require_notification_secret(),
            subscription_id=subscription_id,
            authorization=request.headers.get("authorization"),
            signature=request.headers.get("x-signature"),
            body=body,
            path_type=resource_type,
            path_id=resource_id,
            now=rt.clock(),
            enqueue=accepted_ids.append,
        )
    except NotAuthenticated:
        return _fhir_error(401, "login", "unknown subscription or invalid credentials")
    except InvalidNotification as exc:
        return _fhir_error(400, exc.code, str(exc))
    outcome = operation_outcome(
        "informational",
        "duplicate notification ignored" if accepted.duplicate else "notification accepted",
        severity="information",
    )
    return JSONResponse(
        outcome,
        status_code=200,
        media_type=FHIR_JSON,
        background=BackgroundTask(_enqueue_all, accepted_ids),
    )


def _enqueue_all(inbox_ids: list[int]) -> None:
    """After the 200 has gone out: a slow or absent broker never delays the EHR."""
    for inbox_id in inbox_ids:
        enqueue_inbox(inbox_id)
