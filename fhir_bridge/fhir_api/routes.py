"""The read-only FHIR R4 API under ``/fhir``, its token endpoint and discovery documents.

Thin shell: check the bearer token and scope, parse the search (``search``), run it
(``repository``), build the Bundle (``resources``), and record the query as an AuditEvent
in the same transaction (``trail``). A refused query is recorded too, in its own.
Errors are OperationOutcomes naming parameters, never values.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from fhir_bridge.fhir.outcome import FHIR_JSON, operation_outcome
from fhir_bridge.fhir_api import auth, repository, trail
from fhir_bridge.fhir_api.paging import decode_cursor, encode_cursor
from fhir_bridge.fhir_api.resources import (
    SERVED,
    audit_event_resource,
    bundle,
    capability_statement,
    communication_resource,
    validate_r4,
)
from fhir_bridge.fhir_api.search import SearchError, SearchQuery, parse_search, safe_name
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction

log = logging.getLogger(__name__)
router = APIRouter()

_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PAGING_LABEL = b"fhir-bridge read-only FHIR API paging cursor key"
MAX_FORM_BYTES = 16_384


class Refusal(Exception):
    """A request answered with an OperationOutcome (and recorded as a failed query)."""

    def __init__(self, status_code: int, code: str, message: str, outcome: str = "4") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.outcome = outcome


def _runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _fhir(body: dict[str, Any], status_code: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, media_type=FHIR_JSON, headers=headers)


@router.get("/fhir/metadata")
def metadata(request: Request) -> JSONResponse:
    """The CapabilityStatement: exactly the types, interactions and parameters we serve."""
    rt = _runtime(request)
    try:
        _only_format(request)
    except SearchError as exc:
        return _fhir(operation_outcome("invalid", str(exc)), 400)
    statement = capability_statement(
        auth.fhir_base(rt.settings),
        auth.token_url(rt.settings),
        request.app.version,
        rt.clock().date().isoformat(),
    )
    return _fhir(validate_r4(statement))


@router.get("/fhir/.well-known/smart-configuration")
@router.get("/.well-known/smart-configuration")
def smart_configuration(request: Request) -> JSONResponse:
    """SMART discovery for Backend Services clients of ``/fhir``."""
    settings = _runtime(request).settings
    return JSONResponse(
        {
            "token_endpoint": auth.token_url(settings),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(auth.ASSERTION_ALGORITHMS),
            "scopes_supported": list(auth.GRANTABLE_SCOPES),
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }
    )


@router.post("/auth/token")
async def token(request: Request) -> JSONResponse:
    """``client_credentials`` with a ``private_key_jwt`` assertion -> a short access token."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _oauth_error(auth.OAuthError(400, "invalid_request", "the request is too large"))
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _oauth_error(auth.OAuthError(400, "invalid_request", "send a form"))
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return _oauth_error(auth.OAuthError(400, "invalid_request", "the form is not UTF-8"))
    rt = _runtime(request)
    try:
        answer = await run_in_threadpool(_issue, rt, form)
    except auth.OAuthError as exc:
        log.info("token request refused", extra={"error": exc.error})
        return _oauth_error(exc)
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _issue(rt: Runtime, form: dict[str, str]) -> dict[str, Any]:
    # The client's JWKS may be fetched over the network: before any transaction opens.
    assertion = auth.verify_assertion(rt.settings, form, now=rt.clock().timestamp())
    with transaction(rt.sessions) as session:
        first = repository.accept_assertion(
            session, assertion.client_id, assertion.jti, assertion.expires_at
        )
    if not first:
        raise auth.OAuthError(401, "invalid_client", "the assertion's jti was already used")
    log.info("access token issued", extra={"client_id": assertion.client_id})
    return auth.issue_access_token(rt.settings, assertion, now=rt.clock().timestamp())


def _oauth_error(exc: auth.OAuthError) -> JSONResponse:
    return JSONResponse(
        exc.body(), status_code=exc.status_code, headers={"Cache-Control": "no-store"}
    )


@router.get("/fhir/Communication")
def search_communication(request: Request) -> JSONResponse:
    return _guarded(request, "Communication", "s", trail.QUERY, _communication_search)


@router.get("/fhir/Communication/{resource_id}")
def read_communication(request: Request, resource_id: str) -> JSONResponse:
    def run(session: Session, rt: Runtime, _query: SearchQuery | None) -> dict[str, Any]:
        return communication_resource(_version(session, resource_id, None))

    return _guarded(request, "Communication", "r", trail.READ, run, search=False)


@router.get("/fhir/Communication/{resource_id}/_history")
def communication_history(request: Request, resource_id: str) -> JSONResponse:
    def run(session: Session, rt: Runtime, _query: SearchQuery | None) -> dict[str, Any]:
        versions = repository.communication_history(session, _checked_id(resource_id))
        if not versions:
            raise Refusal(404, "not-found", "no such Communication")
        base = auth.fhir_base(rt.settings)
        return bundle(
            "history",
            [communication_resource(v) for v in versions],
            base=base,
            self_url=f"{base}/Communication/{resource_id}/_history",
            total=len(versions),
            timestamp=rt.clock(),
        )

    return _guarded(request, "Communication", "r", "history-instance", run, search=False)


@router.get("/fhir/Communication/{resource_id}/_history/{version_id}")
def communication_version(request: Request, resource_id: str, version_id: str) -> JSONResponse:
    def run(session: Session, rt: Runtime, _query: SearchQuery | None) -> dict[str, Any]:
        if not version_id.isdigit() or len(version_id) > 9:
            raise Refusal(404, "not-found", "no such version")
        return communication_resource(_version(session, resource_id, int(version_id)))

    return _guarded(request, "Communication", "r", "vread", run, search=False)


@router.get("/fhir/AuditEvent")
def search_audit_event(request: Request) -> JSONResponse:
    return _guarded(request, "AuditEvent", "s", trail.QUERY, _audit_event_search)


@router.get("/fhir/AuditEvent/{resource_id}")
def read_audit_event(request: Request, resource_id: str) -> JSONResponse:
    def run(session: Session, rt: Runtime, _query: SearchQuery | None) -> dict[str, Any]:
        row = repository.read_audit_event(session, _checked_id(resource_id))
        if row is None:
            raise Refusal(404, "not-found", "no such AuditEvent")
        return audit_event_resource(row)

    return _guarded(request, "AuditEvent", "r", trail.READ, run, search=False)


def _audit_event_search(session: Session, rt: Runtime, query: SearchQuery | None) -> dict[str, Any]:
    assert query is not None
    for criterion in query.criteria:
        if criterion.param.type == "token" and any(t.system is not None for t in criterion.tokens):
            raise SearchError(f"{criterion.param.name} takes a code without a system")
        if criterion.param.type == "reference" and any(t.system is None for t in criterion.tokens):
            raise SearchError(f"{criterion.param.name} takes a Type/id reference")
    key = auth.signing_key(rt.settings, _PAGING_LABEL)
    page = repository.search_audit_events(session, query, decode_cursor(key, query))
    return _searchset(
        rt,
        "AuditEvent",
        query,
        [audit_event_resource(r) for r in page.rows],
        page.total,
        encode_cursor(key, query, page.last) if page.more and page.last else None,
    )


def _searchset(
    rt: Runtime,
    resource_type: str,
    query: SearchQuery,
    resources: list[dict[str, Any]],
    total: int,
    cursor: str | None,
) -> dict[str, Any]:
    base = auth.fhir_base(rt.settings)
    here = list(query.canonical) + ([("_cursor", query.cursor)] if query.cursor else [])
    next_url = None
    if cursor is not None:
        next_url = f"{base}/{resource_type}?" + urlencode([*query.canonical, ("_cursor", cursor)])
    return bundle(
        "searchset",
        resources,
        base=base,
        self_url=f"{base}/{resource_type}" + (f"?{urlencode(here)}" if here else ""),
        next_url=next_url,
        total=total,
        timestamp=rt.clock(),
    )


def _checked_id(resource_id: str) -> str:
    if not _ID.fullmatch(resource_id):
        raise Refusal(404, "not-found", "no such resource")
    return resource_id


def _version(session: Session, resource_id: str, version: int | None) -> Any:
    row = repository.read_communication(session, _checked_id(resource_id), version)
    if row is None:
        raise Refusal(
            404, "not-found", "no such Communication" if version is None else "no such version"
        )
    return row


def _communication_search(
    session: Session, rt: Runtime, query: SearchQuery | None
) -> dict[str, Any]:
    assert query is not None
    key = auth.signing_key(rt.settings, _PAGING_LABEL)
    page = repository.search_communications(session, query, decode_cursor(key, query))
    return _searchset(
        rt,
        "Communication",
        query,
        [communication_resource(v) for _c, v in page.rows],
        page.total,
        encode_cursor(key, query, page.last) if page.more and page.last else None,
    )


Handler = Callable[[Session, Runtime, SearchQuery | None], dict[str, Any]]


def _guarded(
    request: Request,
    resource_type: str,
    interaction: str,
    action: trail.Action,
    handler: Handler,
    *,
    search: bool = True,
) -> JSONResponse:
    """Authorise, parse, run and audit one ``/fhir`` request; refusals are audited too."""
    rt = _runtime(request)
    context = trail.Context(
        action=action,
        resource_type=resource_type,
        path=request.url.path,
        query=request.url.query,
        address=request.client.host if request.client else None,
        base_url=rt.settings.public_base_url,
    )
    client_id: str | None = None
    try:
        caller = auth.caller(
            rt.settings, request.headers.get("authorization"), rt.clock().timestamp()
        )
        client_id = caller.client_id
        if not auth.permits(caller.scopes, resource_type, interaction):
            raise Refusal(
                403, "forbidden", f"the token's scopes do not allow this on {resource_type}", "8"
            )
        query = _parsed(request, resource_type) if search else None
        if not search:
            _only_format(request)
        with transaction(rt.sessions) as session:
            body = validate_r4(handler(session, rt, query))
            trail.record_query(session, context, client_id, body, outcome="0", at=rt.clock())
    except auth.AccessDenied as exc:
        _record_refusal(rt, context, client_id, "8")
        return _fhir(
            operation_outcome(exc.code, exc.message),
            exc.status_code,
            **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    except Refusal as exc:
        _record_refusal(rt, context, client_id, exc.outcome)
        return _fhir(operation_outcome(exc.code, exc.message), exc.status_code)
    except SearchError as exc:
        _record_refusal(rt, context, client_id, "4")
        return _fhir(operation_outcome("invalid", str(exc)), 400)
    return _fhir(body)


def _record_refusal(
    rt: Runtime, context: trail.Context, client_id: str | None, outcome: str
) -> None:
    with transaction(rt.sessions) as session:
        trail.record_query(session, context, client_id, None, outcome=outcome, at=rt.clock())


def _parsed(request: Request, resource_type: str) -> SearchQuery:
    params, sorts, _history = SERVED[resource_type]
    return parse_search(list(request.query_params.multi_items()), params, sorts)


def _only_format(request: Request) -> None:
    """Reads take no parameters but ``_format=json``."""
    for name, value in request.query_params.multi_items():
        if name != "_format":
            raise SearchError(f"{safe_name(name)} is not supported here")
        parse_search([("_format", value)], (), ())


@router.api_route("/fhir/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def anything_else(request: Request, rest: str) -> JSONResponse:
    """This API is read-only and serves two types: everything else is a FHIR error."""
    if request.method != "GET":
        return _fhir(operation_outcome("not-supported", "this FHIR API is read-only"), 405)
    return _fhir(operation_outcome("not-found", "not served here; see /fhir/metadata"), 404)
