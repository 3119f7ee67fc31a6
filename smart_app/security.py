"""Security for everything under ``/smart``: sessions by handle, browser binding, CSRF, headers.

The panel is embedded by the EHR, so framing is allowed only for the configured
ancestors (CSP ``frame-ancestors``); all content comes from us (``default-src
'self'``, no CDN). URLs carry the per-launch handle but never PHI, and
``Referrer-Policy: no-referrer`` keeps handles and launch codes out of other servers' logs.

How a request finds its session: the handle in the path (``/smart/l/<handle>/…``) selects
the launch's session. Over HTTPS the session is also bound to the browser that launched
it: an HttpOnly cookie ``SameSite=None; Secure; Partitioned`` (sent inside the EHR's
cross-site frame, partitioned to the EHR's site) must match, so a copied URL is useless
in another browser. Over plain HTTP (development) browsers refuse such cookies in a
cross-site frame, so the handle alone (256 random bits, never logged) is the credential.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from smart_app import audit
from smart_app.config import LAUNCH_PARAM
from smart_app.errors import CsrfRejected, SessionRequired, SmartAppError, explain
from smart_app.sessions import ClinicSession, StaffSession, digest
from smart_app.state import SmartAppState, page_templates, smart_state

log = logging.getLogger(__name__)
SESSION_COOKIE = "fhir_bridge_staff"
SESSION_COOKIE_PATH = "/smart"
ROUTER_PREFIX = "/smart"
_BROWSER_KEY = re.compile(r"[A-Za-z0-9_-]{32,128}")


def content_security_policy(frame_ancestors: str) -> str:
    """Our own origin only; framing by the EHR (configurable) and ourselves."""
    return (
        "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


def apply_security_headers(response: Response, frame_ancestors: str) -> None:
    """Headers on every ``/smart`` response, errors included."""
    response.headers["Content-Security-Policy"] = content_security_policy(frame_ancestors)
    if frame_ancestors.strip() == "'self'":
        # Legacy header for old browsers; it cannot name another origin, so CSP does that.
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"


class PanelRoute(APIRoute):
    """Route class for the panel router: refused requests and headers handled in one place."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            audit.bind_request(request)
            try:
                response = await original(request)
            except SmartAppError as error:
                await run_in_threadpool(audit.refused, request, error)
                response = error_response(request, error)
            state = smart_state(request.app, required=False)
            ancestors = state.config.frame_ancestors if state is not None else "'none'"
            apply_security_headers(response, ancestors)
            return response

        return handler


def error_response(request: Request, error: SmartAppError) -> Response:
    """A refusal: ``{"error": code}`` for scripts; for people a page in plain words."""
    log.info("smart_request_refused", extra={"code": error.code, "status": error.status_code})
    if "/api/" in request.url.path or "json" in request.headers.get("accept", ""):
        return JSONResponse({"error": error.code}, status_code=error.status_code)
    explanation = explain(error.code, error.status_code)
    page = (
        page_templates()
        .get_template("error.html")
        .render(code=error.code, title=explanation.title, guidance=explanation.guidance)
    )
    return HTMLResponse(page, status_code=error.status_code)


def _session(request: Request) -> StaffSession | ClinicSession | None:
    state = smart_state(request.app)
    handle = request.path_params.get(LAUNCH_PARAM)
    browser_key = request.cookies.get(SESSION_COOKIE) if state.config.secure_cookies else None
    return state.sessions.get(handle, browser_key, state.now())


def current_staff(request: Request) -> StaffSession:
    """This tab's EHR-launch session (from the handle in its URL), or SessionRequired.

    The session is also left on ``request.state.staff_session`` for hooks that run later
    (audit of a refusal after the session was found).
    """
    staff = _session(request)
    if not isinstance(staff, StaffSession):
        raise SessionRequired("session-required")
    request.state.staff_session = staff
    return staff


def current_clinic_user(request: Request) -> ClinicSession:
    """This tab's standalone-launch session (clinic-wide views), or SessionRequired."""
    user = _session(request)
    if not isinstance(user, ClinicSession):
        raise SessionRequired("session-required")
    request.state.staff_session = user
    return user


def launch_base(request: Request) -> str:
    """URL prefix of this launch's pages: every panel link, form and redirect starts with it."""
    handle = request.path_params.get(LAUNCH_PARAM)
    return session_base(handle) if handle else ROUTER_PREFIX


def session_base(handle: str) -> str:
    """``/smart/l/<handle>``: the pages of one launch."""
    return f"{ROUTER_PREFIX}/l/{quote(handle, safe='')}"


def check_csrf(staff: StaffSession | ClinicSession, submitted: str | None) -> None:
    """The form's token must equal the session's (constant-time comparison)."""
    if not submitted or not secrets.compare_digest(submitted, staff.csrf_token):
        raise CsrfRejected("csrf-token-invalid")


def browser_key(request: Request, state: SmartAppState) -> str | None:
    """This browser's binding key over HTTPS (the cookie's, or a new one); None over HTTP."""
    if not state.config.secure_cookies:
        return None
    current = request.cookies.get(SESSION_COOKIE) or ""
    return current if _BROWSER_KEY.fullmatch(current) else secrets.token_urlsafe(32)


def binding_of(key: str | None) -> str | None:
    return digest(key) if key else None


def set_browser_cookie(response: Response, state: SmartAppState, key: str | None) -> None:
    """HttpOnly; ``SameSite=None; Secure; Partitioned`` so it works in the EHR's frame."""
    if key is None:
        return
    # Written by hand: Starlette supports ``Partitioned`` only on Python 3.14+.
    response.headers.append(
        "set-cookie",
        f"{SESSION_COOKIE}={key}; Max-Age={state.config.session_seconds}; "
        f"Path={SESSION_COOKIE_PATH}; HttpOnly; Secure; SameSite=None; Partitioned",
    )
