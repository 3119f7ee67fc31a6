"""FHIR ``batch`` (``POST [base]`` with a Bundle of type ``batch``): reads and searches only.

Epic and Cerner accept a batch of GETs, which lets a client re-read an Appointment, its
Patient and their Consents in one round-trip. Each entry is authorised and answered on its
own (``response.status`` and the resource, or an OperationOutcome), as R4 requires; a failed
entry never fails the others. Writes inside a batch are refused per entry (this development
EHR has no use for them). Counted once as ``batch`` plus one ``batch-entry`` per entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request, Response

from fhir_bridge.sandbox.interactions import FhirInteractions
from fhir_bridge.sandbox.outcomes import FhirError, InvalidRequestError, outcome_for
from fhir_bridge.sandbox.state import EhrState

MAX_ENTRIES = 100
_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 410: "Gone"}


def _status(code: int) -> str:
    return f"{code} {_REASONS.get(code, '')}".strip()


def batch_router(
    state: EhrState,
    fhir: FhirInteractions,
    respond: Callable[[dict[str, Any]], Response],
    read_body: Callable[[Request], Any],
) -> APIRouter:
    """``POST /fhir`` answering a batch Bundle with a ``batch-response`` Bundle."""
    router = APIRouter()

    @router.post("/fhir")
    async def batch(request: Request) -> Response:
        state.auth.scopes_for(request.headers.get("authorization"))  # 401 before anything
        bundle = await read_body(request)
        entries = _entries_of(bundle)
        state.count("batch", "Bundle")
        authorization = request.headers.get("authorization")
        answered = [_answer(state, fhir, authorization, entry) for entry in entries]
        return respond({"resourceType": "Bundle", "type": "batch-response", "entry": answered})

    return router


def _entries_of(bundle: Any) -> list[Any]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidRequestError("A batch must be a Bundle")
    if bundle.get("type") != "batch":
        raise InvalidRequestError("Only Bundle.type 'batch' is supported at the base URL")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise InvalidRequestError(f"A batch holds a list of at most {MAX_ENTRIES} entries")
    return entries


def _answer(
    state: EhrState, fhir: FhirInteractions, authorization: str | None, entry: Any
) -> dict[str, Any]:
    try:
        status, resource = _perform(state, fhir, authorization, entry)
    except FhirError as error:
        return {"response": {"status": _status(error.status_code), "outcome": outcome_for(error)}}
    return {"resource": resource, "response": {"status": _status(status)}}


def _perform(
    state: EhrState, fhir: FhirInteractions, authorization: str | None, entry: Any
) -> tuple[int, dict[str, Any]]:
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise InvalidRequestError("Each batch entry needs request.method and request.url")
    if request.get("method") != "GET":
        raise FhirError(405, "not-supported", "Only GET entries are supported in a batch")
    parts = urlsplit(request["url"])
    segments = [s for s in parts.path.split("/") if s]
    if not segments or len(segments) > 2 or parts.scheme or parts.netloc:
        raise InvalidRequestError("A batch entry URL is Type/id or Type?search, relative")
    type_ = segments[0]
    fhir.require_type(type_)
    if len(segments) == 2:
        state.auth.require(authorization, type_, "r")
        state.count("batch-entry", type_)
        return 200, fhir.read(type_, segments[1])
    state.auth.require(authorization, type_, "s")
    state.count("batch-entry", type_)
    return 200, fhir.search(type_, parse_qsl(parts.query, keep_blank_values=True))
