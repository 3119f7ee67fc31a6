"""Security for everything under ``/smart``: session cookie, CSRF, headers, error pages.

The panel is embedded by the EHR, so framing is allowed only for the configured
ancestors (CSP ``frame-ancestors``); all content comes from us (``default-src
'self'``, no CDN). URLs never carry PHI, and ``Referrer-Policy: no-referrer``
keeps launch codes out of other servers' logs.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute

from smart_app.errors import CsrfRejected, SessionRequired, SmartAppError
from smart_app.sessions import StaffSession
from smart_app.state import SmartAppState, smart_state

log = logging.getLogger(__name__)
SESSION_COOKIE = "fhir_bridge_staff"
LAUNCH_COOKIE = "fhir_bridge_launch"
SESSION_COOKIE_PATH = "/smart"
LAUNCH_COOKIE_PATH = "/smart/callback"


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
            try:
                response = await original(request)
            except SmartAppError as error:
                response = error_response(request, error)
            state = smart_state(request.app, required=False)
            ancestors = state.config.frame_ancestors if state is not None else "'none'"
            apply_security_headers(response, ancestors)
            return response

        return handler


def error_response(request: Request, error: SmartAppError) -> Response:
    """A short coded refusal: JSON for scripts, a small page for the browser."""
    log.info("smart_request_refused", extra={"code": error.code, "status": error.status_code})
    if request.url.path.startswith("/smart/api/") or "json" in request.headers.get("accept", ""):
        return JSONResponse({"error": error.code}, status_code=error.status_code)
    state = smart_state(request.app, required=False)
    if state is None:
        return HTMLResponse(f"<p>{error.code}</p>", status_code=error.status_code)
    page = state.templates.get_template("error.html").render(
        code=error.code, relaunch=isinstance(error, SessionRequired)
    )
    return HTMLResponse(page, status_code=error.status_code)


def current_staff(request: Request) -> StaffSession:
    """The request's staff session, or SessionRequired (launch again from the chart)."""
    state = smart_state(request.app)
    staff = state.sessions.get(request.cookies.get(SESSION_COOKIE), state.now())
    if staff is None:
        raise SessionRequired("session-required")
    return staff


def launch_base(request: Request) -> str:
    """URL prefix of this launch's pages: every panel link, form and redirect starts with it."""
    return "/smart"


def check_csrf(staff: StaffSession, submitted: str | None) -> None:
    """The form's token must equal the session's (constant-time comparison)."""
    if not submitted or not secrets.compare_digest(submitted, staff.csrf_token):
        raise CsrfRejected("csrf-token-invalid")


def set_cookie(
    response: Response, state: SmartAppState, name: str, value: str, path: str, max_age: int
) -> None:
    """HttpOnly, SameSite=Lax; Secure whenever we are served over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="lax",
        secure=state.config.secure_cookies,
    )
