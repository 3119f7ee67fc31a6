"""Liveness, readiness and the public JWKS clinic IT registers with the EHR."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from fhir_bridge.runtime import Runtime
from fhir_bridge.store import worklist
from fhir_bridge.store.db import transaction

router = APIRouter()


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Can we accept notifications durably? (Database reachable and migrated.)"""
    """Can we accept notifications durably (database reachable and migrated), and is the
    work getting done? Each kind of work reports how long its oldest unprocessed item has
    waited (``queues``, seconds); past ``FHIR_BRIDGE_STALL_SECONDS`` the answer is 503 and
    ``stalled`` names the queue. Ids and ages only, never PHI."""
    rt: Runtime = request.app.state.runtime
    body = await run_in_threadpool(_readiness, rt)
    status = 200 if body["status"] == "ok" else 503
    return JSONResponse(body, status_code=status)


def _readiness(rt: Runtime) -> dict[str, Any]:
    checks: dict[str, str] = {}
    queues: dict[str, int | None] = {}
    try:
        with rt.engine.connect() as connection:
            connection.execute(text("SELECT version_num FROM alembic_version"))
        checks["database"] = "ok"
        with transaction(rt.sessions) as session:
            queues = worklist.queue_ages(session, rt.clock())
    except SQLAlchemyError:
        checks["database"] = "unavailable or not migrated"
    checks["notification_secret"] = "ok" if rt.settings.notification_secret else "missing"
    stalled = worklist.stalled_queues(queues, rt.settings.stall_seconds)
    checks["queues"] = "ok" if not stalled else "stalled"
    ok = all(value == "ok" for value in checks.values())
    body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
    body["queues"] = queues
    if stalled:
        body["stalled"] = [{"queue": name, "age_seconds": age} for name, age in stalled.items()]
    return body


@router.get("/.well-known/jwks.json")
def jwks(request: Request) -> dict[str, Any]:
    """Public keys for SMART Backend Services (no private parameters, ever)."""
    rt: Runtime = request.app.state.runtime
    if rt.settings.ehr_private_key_file is None and rt.settings.ehr_private_key is None:
        return {"keys": []}
    from fhir_bridge.fhir.keys import public_jwks
    from fhir_bridge.runtime import load_signing_key

    return public_jwks(load_signing_key(rt.settings))
