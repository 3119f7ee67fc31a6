"""HTTP surface of the staff panel: EHR and standalone launch, callback, panel, actions.

Handlers are thin: they check the session, CSRF and patient, then call
:mod:`smart_app.service`. Blocking handlers are plain ``def`` (run in the
thread pool). Actions answer 303 to the panel (post/redirect/get). Every page of a
launch lives under ``/smart/l/<handle>/`` (``SESSION_PREFIX``), so each tab keeps its own
session and patient.
"""

from __future__ import annotations

from importlib import resources
from typing import Final

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from smart_app import audit, authorization_server, clinic, launch, service
from smart_app.banner import read_banner
from smart_app.config import SESSION_PREFIX
from smart_app.errors import LaunchRefused, NotFound
from smart_app.security import (
    SESSION_COOKIE,
    PanelRoute,
    binding_of,
    browser_key,
    check_csrf,
    current_clinic_user,
    current_staff,
    launch_base,
    session_base,
    set_browser_cookie,
)
from smart_app.sessions import KIND_EHR, KIND_STANDALONE
from smart_app.state import SmartAppState, smart_state

router = APIRouter(prefix="/smart", route_class=PanelRoute, include_in_schema=False)

NOTICES: Final = {
    "cancelled": "Message cancelled.",
    "opt-out": "Opt-out recorded.",
    "opt-in": "Opt-in recorded.",
    "handled": "Reply marked handled.",
    "assigned": "Reply assigned.",
    "answer-sending": "Answer sent to the patient by text; the reply is marked handled.",
    "answer-held": "It is night where the patient is: the answer goes in the morning.",
    "answer-withheld": "Answer not sent (see the reply for why); the reply stays open.",
}
STATIC_FILES: Final = {
    "panel.css": "text/css",
    "panel.js": "text/javascript",
    "shell.css": "text/css",
}


@router.get("/launch")
def ehr_launch(request: Request) -> Response:
    """EHR launch: check ``iss``, discover the endpoints, redirect to the EHR's authorize."""
    state = smart_state(request.app)
    launch_id = request.query_params.get("launch")
    iss = launch.check_issuer(request.query_params.get("iss"), state.config)
    if not launch_id:
        raise LaunchRefused("launch-missing")
    return _authorize(request, state, iss, launch_id)


@router.get("/standalone")
def standalone_launch(request: Request) -> Response:
    """Standalone launch (EHR app list or a bookmark): user-level scopes, clinic-wide views."""
    state = smart_state(request.app)
    return _authorize(request, state, state.config.iss, None)


def _authorize(request: Request, state: SmartAppState, iss: str, launch_id: str | None) -> Response:
    """Remember ``state`` and the PKCE verifier server-side; send the browser to authorize."""
    endpoints = authorization_server.discover(iss)
    verifier, challenge = launch.pkce_pair()
    launch_state = launch.new_state()
    key = browser_key(request, state)
    state.launches.add(
        launch.PendingLaunch(
            state=launch_state,
            code_verifier=verifier,
            token_endpoint=endpoints.token_endpoint,
            issuer=endpoints.issuer,
            created_at=state.now(),
            kind=KIND_EHR if launch_id is not None else KIND_STANDALONE,
            browser_binding=binding_of(key),
        )
    )
    target = launch.authorize_url(
        endpoints, state.config, launch=launch_id, state=launch_state, code_challenge=challenge
    )
    response = RedirectResponse(target, status_code=302)
    set_browser_cookie(response, state, key)
    return response


@router.get("/callback")
def callback(request: Request) -> Response:
    """Find the launch by ``state`` (server-side, single use), exchange the code, open a session.

    No cookie is needed to get here (it works inside the EHR's cross-site frame); when this
    browser does send its binding cookie, it must be the one the launch started with.
    """
    state = smart_state(request.app)
    params = request.query_params
    pending = state.launches.take(params.get("state") or "", state.now())
    if params.get("error"):
        raise LaunchRefused("authorization-denied")
    if pending is None:
        raise LaunchRefused("state-unknown-or-expired")
    key = browser_key(request, state)
    if (
        pending.browser_binding is not None
        and request.cookies.get(SESSION_COOKIE)
        and binding_of(key) != pending.browser_binding
    ):
        raise LaunchRefused("state-other-browser")
    code = params.get("code")
    if not code:
        raise LaunchRefused("code-missing")
    body = authorization_server.exchange_code(pending, code, state.config)
    standalone = pending.kind == KIND_STANDALONE
    context = launch.context_from_token_response(
        body, state.config, pending.issuer, state.now(), patient_required=not standalone
    )
    launch.require_staff_user(context.fhir_user)
    banner = None
    if context.patient_ref is not None:
        banner = read_banner(
            state.config.iss,
            context.access_token,
            context.patient_ref,
            context.need_patient_banner,
            state.deps.ehr_timeout,
        )
    handle, _ = state.sessions.create(
        context,
        state.now(),
        kind=KIND_STANDALONE if standalone else KIND_EHR,
        browser_binding=binding_of(key),
        banner=banner,
    )
    page = "/clinic" if standalone else "/panel"
    response = RedirectResponse(session_base(handle) + page, status_code=303)
    set_browser_cookie(response, state, key)
    return response


@router.get(SESSION_PREFIX + "/panel")
def panel(request: Request, patient: str | None = None, notice: str | None = None) -> Response:
    """The launch patient's outreach timeline, consent state and actions."""
    staff = current_staff(request)
    service.require_patient(staff, patient)
    state = smart_state(request.app)
    data = service.load_panel(state.deps, staff)
    audit.panel_opened(request, staff)
    page = state.templates.get_template("panel.html").render(
        data=data,
        base=launch_base(request),
        banner=staff.banner,
        csrf_token=staff.csrf_token,
        notice=NOTICES.get(notice or ""),
        channels=[row.channel for row in data.consent] or ["sms", "email"],
    )
    return HTMLResponse(page)


@router.get(SESSION_PREFIX + "/clinic")
def clinic_inbox(request: Request) -> Response:
    """Standalone launch: replies waiting across patients (oldest urgent first)."""
    user = current_clinic_user(request)
    state = smart_state(request.app)
    rows = clinic.load_open_replies(state.deps, user, state.clinic_timezone)
    page = state.templates.get_template("clinic_inbox.html").render(
        rows=rows, user=user, base=launch_base(request)
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
    """The launch patient's staff-inbox items, with the reply's text (crisis first)."""
    staff = current_staff(request)
    items = service.open_inbox(smart_state(request.app).deps, staff)
    return JSONResponse(items)


@router.post(SESSION_PREFIX + "/messages/{message_id}/cancel")
def cancel(
    request: Request,
    message_id: str,
    csrf_token: str = Form(default=""),
    reason: str = Form(default=""),
    note: str = Form(default=""),
) -> Response:
    """Cancel one pending message of the launch patient (coded reason, optional note)."""
    staff = current_staff(request)
    check_csrf(staff, csrf_token)
    service.cancel_message(smart_state(request.app).deps, staff, message_id, reason, note)
    return RedirectResponse(f"{launch_base(request)}/panel?notice=cancelled", status_code=303)


@router.post(SESSION_PREFIX + "/consent")
def record_consent(
    request: Request,
    csrf_token: str = Form(default=""),
    channel: str = Form(default=""),
    action: str = Form(default=""),
    purpose: list[str] = Form(default=[]),
    reason: str = Form(default=""),
    note: str = Form(default=""),
) -> Response:
    """Record a staff opt-in or opt-out on one channel for the chosen purposes."""
    staff = current_staff(request)
    check_csrf(staff, csrf_token)
    service.record_channel_preference(
        smart_state(request.app).deps, staff, channel, action, purpose, reason, note
    )
    return RedirectResponse(f"{launch_base(request)}/panel?notice={action}", status_code=303)


@router.post(SESSION_PREFIX + "/inbox/{item_id}/handled")
def inbox_handled(request: Request, item_id: int, csrf_token: str = Form(default="")) -> Response:
    """Mark one of the patient's replies handled."""
    staff = current_staff(request)
    check_csrf(staff, csrf_token)
    service.mark_handled(smart_state(request.app).deps, staff, item_id)
    return RedirectResponse(f"{launch_base(request)}/panel?notice=handled", status_code=303)


@router.post(SESSION_PREFIX + "/inbox/{item_id}/assign")
def inbox_assign(
    request: Request,
    item_id: int,
    csrf_token: str = Form(default=""),
    to: str = Form(default=""),
) -> Response:
    """Assign one of the patient's replies to me, to a team, or to nobody."""
    staff = current_staff(request)
    check_csrf(staff, csrf_token)
    service.assign(smart_state(request.app).deps, staff, item_id, to)
    return RedirectResponse(f"{launch_base(request)}/panel?notice=assigned", status_code=303)


@router.post(SESSION_PREFIX + "/inbox/{item_id}/answer")
def inbox_answer(
    request: Request,
    item_id: int,
    csrf_token: str = Form(default=""),
    answer: str = Form(default=""),
) -> Response:
    """Answer one of the patient's replies with an approved template (rules file)."""
    staff = current_staff(request)
    check_csrf(staff, csrf_token)
    result = service.answer_reply(smart_state(request.app).deps, staff, item_id, answer)
    notice = f"answer-{result.outcome}"
    return RedirectResponse(f"{launch_base(request)}/panel?notice={notice}", status_code=303)


@router.get("/static/{name}")
@router.get(SESSION_PREFIX + "/static/{name}")
def static_file(name: str) -> Response:
    """The panel's own CSS and JS (no CDN: nothing leaves our origin; nothing private in
    them, so error pages without a session use them too)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFound("no-such-file")
    content = resources.files("smart_app").joinpath("static", name).read_bytes()
    return Response(content, media_type=media_type)
