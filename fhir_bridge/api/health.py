"""Liveness, readiness and the public JWKS clinic IT registers with the EHR."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from fhir_bridge.runtime import Runtime

router = APIRouter()


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Can we accept notifications durably? (Database reachable and migrated.)"""
    rt: Runtime = request.app.state.runtime
    checks = await run_in_threadpool(_readiness, rt)
    status = 200 if all(v == "ok" for v in checks.values()) else 503
    return JSONResponse(
        {"status": "ok" if status == 200 else "unavailable", "checks": checks}, status_code=status
    )


def _readiness(rt: Runtime) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with rt.engine.connect() as connection:
            connection.execute(text("SELECT version_num FROM alembic_version"))
        checks["database"] = "ok"
    except SQLAlchemyError:
        checks["database"] = "unavailable or not migrated"
    checks["notification_secret"] = "ok" if rt.settings.notification_secret else "missing"
    return checks


@router.get("/.well-known/jwks.json")
def jwks(request: Request) -> dict[str, Any]:
    """Public keys for SMART Backend Services (no private parameters, ever)."""
    rt: Runtime = request.app.state.runtime
    if rt.settings.ehr_private_key_file is None and rt.settings.ehr_private_key is None:
        return {"keys": []}
    from fhir_bridge.fhir.keys import public_jwks
    from fhir_bridge.runtime import load_signing_key

    return public_jwks(load_signing_key(rt.settings))
