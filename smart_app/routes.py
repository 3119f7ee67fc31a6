"""HTTP surface of the staff panel: EHR launch, callback, panel, JSON twin, actions.

Handlers are thin: they check the session, CSRF and patient, then call
:mod:`smart_app.service`. Blocking handlers are plain ``def`` (run in the
thread pool). Actions answer 303 to the panel (post/redirect/get).
"""

from __future__ import annotations

import secrets
from importlib import resources
from typing import Final

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from smart_app import authorization_server, launch, service
from smart_app.config import PANEL_PATH, SESSION_PREFIX
from smart_app.errors import LaunchRefused, NotFound
from smart_app.security import (
    LAUNCH_COOKIE,
    LAUNCH_COOKIE_PATH,
    SESSION_COOKIE,
    SESSION_COOKIE_PATH,
    PanelRoute,
    check_csrf,
    current_staff,
    launch_base,
    set_cookie,
)
from smart_app.sessions import PENDING_LAUNCH_SECONDS
from smart_app.state import smart_state

router = APIRouter(prefix="/smart", route_class=PanelRoute, include_in_schema=False)

NOTICES: Final = {
    "cancelled": "Message cancelled.",
    "opt-out": "Opt-out recorded.",
    "opt-in": "Opt-in recorded.",
}
STATIC_FILES: Final = {"panel.css": "text/css", "panel.js": "text/javascript"}


@router.get("/launch")
def ehr_launch(request: Request) -> Response:
    """EHR launch: check ``iss``, discover the endpoints, redirect to the EHR's authorize."""
    state = smart_state(request.app)
    launch_id = request.query_params.get("launch")
    iss = launch.check_issuer(request.query_params.get("iss"), state.config)
    if not launch_id:
        raise LaunchRefused("launch-missing")
    endpoints = authorization_server.discover(iss)
    verifier, challenge = launch.pkce_pair()
    launch_state = launch.new_state()
    state.launches.add(
        launch.PendingLaunch(
            state=launch_state,
            code_verifier=verifier,
            token_endpoint=endpoints.token_endpoint,
            issuer=endpoints.issuer,
            created_at=state.now(),
        )
    )
    target = launch.authorize_url(
        endpoints, state.config, launch=launch_id, state=launch_state, code_challenge=challenge
    )
    response = RedirectResponse(target, status_code=302)
    set_cookie(
        response, state, LAUNCH_COOKIE, launch_state, LAUNCH_COOKIE_PATH, PENDING_LAUNCH_SECONDS
    )
    return response


@router.get("/callback")
def callback(request: Request) -> Response:
    """Check ``state`` against this browser's launch, exchange the code, open a session."""
    state = smart_state(request.app)
    params = request.query_params
    if params.get("error"):
        raise LaunchRefused("authorization-denied")
    returned_state = params.get("state") or ""
    cookie_state = request.cookies.get(LAUNCH_COOKIE) or ""
    if not returned_state or not secrets.compare_digest(returned_state, cookie_state):
        raise LaunchRefused("state-mismatch")
    pending = state.launches.take(returned_state, state.now())
    if pending is None:
        raise LaunchRefused("state-unknown-or-expired")
    code = params.get("code")
    if not code:
        raise LaunchRefused("code-missing")
    body = authorization_server.exchange_code(pending, code, state.config)
    context = launch.context_from_token_response(body, state.config, pending.issuer, state.now())
    staff = state.sessions.create(context, state.now(), state.config.session_seconds)
    response = RedirectResponse(PANEL_PATH, status_code=303)
    set_cookie(
        response,
        state,
        SESSION_COOKIE,
        staff.id,
        SESSION_COOKIE_PATH,
        int(staff.expires_at - state.now()),
    )
    response.delete_cookie(LAUNCH_COOKIE, path=LAUNCH_COOKIE_PATH)
    return response


@router.get(SESSION_PREFIX + "/panel")
def panel(request: Request, patient: str | None = None, notice: str | None = None) -> Response:
    """The launch patient's outreach timeline, consent state and actions."""
    staff = current_staff(request)
    service.require_patient(staff, patient)
    state = smart_state(request.app)
    data = service.load_panel(state.deps, staff)
    page = state.templates.get_template("panel.html").render(
        data=data,
        base=launch_base(request),
        csrf_token=staff.csrf_token,
        notice=NOTICES.get(notice or ""),
        channels=[row.channel for row in data.consent] or ["sms", "email"],
    )
    return HTMLResponse(page)


@router.get(SESSION_PREFIX + "/api/timeline")
def timeline_json(request: Request, patient: str | None = None) -> Response:
    """JSON twin of the panel for scripts (same session, same patient rule)."""
    staff = current_staff(request)
    service.require_patient(staff, patient)
    data = service.load_panel(smart_state(request.app).deps, staff)
    return JSONResponse(data.as_json())


@router.get(SESSION_PREFIX + "/api/inbox")
def inbox_json(request: Request) -> Response:
    """The launch patient's open staff-inbox items (replies, crisis and reschedule requests)."""
    staff = current_staff(request)
    items = service.open_inbox(smart_state(request.app).deps, staff)
    return JSONResponse(items)


@router.post(SESSION_PREFIX + "/messages/{message_id}/cancel")
def cancel(request: Request, message_id: str, csrf_token: str = Form(default="")) -> Response:
    """Cancel one pending message of the launch patient."""
    staff = current_staff(request)
    check_csrf(staff, csrf_token)
    service.cancel_message(smart_state(request.app).deps, staff, message_id)
    return RedirectResponse(f"{launch_base(request)}/panel?notice=cancelled", status_code=303)


@router.post(SESSION_PREFIX + "/consent")
def record_consent(
    request: Request,
    csrf_token: str = Form(default=""),
    channel: str = Form(default=""),
    action: str = Form(default=""),
) -> Response:
    """Record a staff opt-in or opt-out for one channel (ledger source ``staff``)."""
    staff = current_staff(request)
    check_csrf(staff, csrf_token)
    service.record_channel_preference(smart_state(request.app).deps, staff, channel, action)
    return RedirectResponse(f"{launch_base(request)}/panel?notice={action}", status_code=303)


@router.get(SESSION_PREFIX + "/static/{name}")
def static_file(request: Request, name: str) -> Response:
    """The panel's own CSS and JS (no CDN: nothing leaves our origin)."""
    current_staff(request)
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound("no-such-file")
    content = resources.files("smart_app").joinpath("static", name).read_bytes()
    return Response(content, media_type=media_type)
