"""The staff panel's AuditEvents: each panel open, each staff action, each refused request.

Hooks the panel calls; each builds an IHE BALP AuditEvent (``fhir_bridge.audit.events``) and
records it (``fhir_bridge.audit.service.record``), from where the relay pushes it to the EHR.
A staff action is recorded in the action's own transaction (both commit or neither); a
panel open and a refusal get a short transaction of their own.

What goes in: the ``fhirUser`` reference, the launch patient's reference, the SMART client
id, the browser's network address, the route *template* and the refusal code. Never the
URL (a callback URL carries the launch code and ``state``), a token, a cookie or any value
from the chart. The request is bound for the duration of a panel request
(:func:`bind_request`) so actions deep in the service know the client's address.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fhir_bridge.audit import events, service
from fhir_bridge.settings import Settings, get_settings
from fhir_bridge.store.db import transaction
from smart_app.errors import SmartAppError
from smart_app.sessions import StaffSession

log = logging.getLogger(__name__)
_REQUEST: ContextVar[Request | None] = ContextVar("smart_app_audit_request", default=None)


def bind_request(request: Request) -> None:
    """Make ``request`` the one staff actions are audited for (each ASGI request runs in a
    context of its own, which the handler's worker thread inherits)."""
    _REQUEST.set(request)


def panel_opened(request: Request, staff: StaffSession) -> None:
    """A staff member viewed the launch patient's panel (BALP PatientRead)."""
    runtime = request.app.state.runtime
    resource = events.panel_opened(
        observer=_observer(runtime.settings),
        recorded=runtime.clock(),
        staff_ref=staff.fhir_user,
        patient_ref=staff.patient_ref,
        client=_client(runtime.settings, request),
    )
    with transaction(runtime.sessions) as session:
        service.record(session, resource)


def staff_action(
    session: Session, staff: StaffSession, action: str, target: dict[str, Any], now: datetime
) -> str:
    """A staff change for the launch patient (``cancel``: update; ``opt-in``/``opt-out``:
    create), recorded in the caller's transaction. ``target``: a FHIR Reference."""
    request = _REQUEST.get()
    settings = request.app.state.runtime.settings if request is not None else get_settings()
    resource = events.patient_change(
        observer=_observer(settings),
        recorded=now,
        action="U" if action == "cancel" else "C",
        requestor_ref=staff.fhir_user,
        patient_ref=staff.patient_ref,
        target=target,
        client=_client(settings, request),
        what=action,
    )
    return service.record(session, resource)


def message_target(message_id: str) -> dict[str, Any]:
    """A planned message, as its Communication in the EHR is identified."""
    settings = _settings()
    return events.identified("Communication", settings.communication_identifier_system, message_id)


def consent_target(action_id: int) -> dict[str, Any]:
    """A staff opt-in/out, as the Consent written for it is identified."""
    settings = _settings()
    return events.identified(
        "Consent", settings.inbound_identifier_system, f"staff-consent-{action_id}"
    )


def request_refused(
    request: Request, code: str, staff: StaffSession | None, *, status: int = 400
) -> None:
    """A refused panel request (Security Alert). Without ``staff``, the session found for the
    request before it was refused (if any) names the user. A database failure is logged, not
    raised: the refusal is answered anyway."""
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return
    staff = staff or _session_of(request)
    route = getattr(request.scope.get("route"), "path", None)
    resource = events.request_refused(
        observer=_observer(runtime.settings),
        recorded=runtime.clock(),
        code=code,
        status=status,
        route=f"{request.method} {route}" if route else request.method,
        staff_ref=staff.fhir_user if staff else None,
        patient_ref=staff.patient_ref if staff else None,
        client=_client(runtime.settings, request),
    )
    try:
        with transaction(runtime.sessions) as session:
            service.record(session, resource)
    except SQLAlchemyError as error:
        log.warning("refusal not audited", extra={"code": code, "error": type(error).__name__})


def refused(request: Request, error: SmartAppError) -> None:
    """:func:`request_refused` for a raised refusal (the panel router's error handler)."""
    request_refused(request, error.code, None, status=error.status_code)


def _session_of(request: Request) -> StaffSession | None:
    """The session ``smart_app.security.current_staff`` found before the refusal, if any."""
    staff = getattr(request.state, "staff_session", None)
    return staff if isinstance(staff, StaffSession) else None


def _settings() -> Settings:
    request = _REQUEST.get()
    if request is not None:
        settings: Settings = request.app.state.runtime.settings
        return settings
    return get_settings()


def _observer(settings: Settings) -> events.Observer:
    return events.Observer(base_url=settings.public_base_url, ehr_base_url=settings.ehr_base_url)


def _client(settings: Settings, request: Request | None) -> events.PanelClient:
    address = request.client.host if request is not None and request.client else None
    return events.PanelClient(client_id=settings.smart_client_id, address=address)
