"""Per-app state of the staff panel, built on first use (settings are read then, not at import)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, overload

from fastapi import FastAPI
from jinja2 import Environment, PackageLoader, select_autoescape

from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import SettingsError
from smart_app.config import SmartAppConfig
from smart_app.errors import SmartAppError
from smart_app.service import PanelDeps
from smart_app.sessions import PendingLaunches, SecretBox, SessionStore

_LOCK = threading.Lock()


class NotConfigured(SmartAppError):
    """The staff panel needs the EHR base URL and a secret to protect sessions with."""

    status_code = 503


@dataclass
class SmartAppState:
    """Config, session stores, templates and the service dependencies of one app."""

    config: SmartAppConfig
    deps: PanelDeps
    templates: Environment
    sessions: SessionStore
    launches: PendingLaunches
    clinic_timezone: str = "America/New_York"
    now: Callable[[], float] = time.time


@functools.cache
def page_templates() -> Environment:
    """The panel's Jinja templates (autoescaped); error pages need no configured app."""
    return Environment(
        loader=PackageLoader("smart_app", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def build_state(runtime: Runtime) -> SmartAppState:
    """Everything the panel needs, from the app's runtime."""
    settings = runtime.settings
    try:
        config = SmartAppConfig.from_settings(settings)
        box = SecretBox(settings.require_notification_secret())
    except SettingsError as error:
        code = "smart-app-not-configured" if not settings.ehr_base_url else "session-key-missing"
        raise NotConfigured(code) from error
    deps = PanelDeps(
        sessions=runtime.sessions,
        policy=runtime.rules.consent,
        ehr_base_url=config.iss,
        clock=runtime.clock,
        ehr_timeout=settings.ehr_timeout_seconds,
        runtime=runtime,
    )
    return SmartAppState(
        config=config,
        deps=deps,
        templates=page_templates(),
        sessions=SessionStore(
            runtime.sessions,
            box,
            lifetime_seconds=config.session_seconds,
            idle_seconds=config.idle_seconds,
        ),
        launches=PendingLaunches(runtime.sessions, box),
        clinic_timezone=runtime.rules.organization.timezone,
    )


@overload
def smart_state(app: FastAPI, required: Literal[True] = True) -> SmartAppState: ...
@overload
def smart_state(app: FastAPI, required: bool) -> SmartAppState | None: ...
def smart_state(app: FastAPI, required: bool = True) -> SmartAppState | None:
    """The app's panel state, built once; with ``required=False`` None when unconfigured."""
    state: SmartAppState | None = getattr(app.state, "smart_app", None)
    if state is not None:
        return state
    with _LOCK:
        state = getattr(app.state, "smart_app", None)
        if state is None:
            try:
                state = build_state(app.state.runtime)
            except NotConfigured:
                if required:
                    raise
                return None
            app.state.smart_app = state
    return state
