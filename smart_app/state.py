"""Per-app state of the staff panel, built on first use (settings are read then, not at import)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, overload

from fastapi import FastAPI
from jinja2 import Environment, PackageLoader, select_autoescape

from fhir_bridge.runtime import Runtime
from fhir_bridge.settings import SettingsError
from smart_app.config import SmartAppConfig
from smart_app.errors import SmartAppError
from smart_app.service import PanelDeps
from smart_app.sessions import PendingLaunches, SessionStore

_LOCK = threading.Lock()


class NotConfigured(SmartAppError):
    """The staff panel needs the EHR base URL."""

    status_code = 503


@dataclass
class SmartAppState:
    """Config, session stores, templates and the service dependencies of one app."""

    config: SmartAppConfig
    deps: PanelDeps
    templates: Environment
    sessions: SessionStore = field(default_factory=SessionStore)
    launches: PendingLaunches = field(default_factory=PendingLaunches)
    now: Callable[[], float] = time.time


def build_state(runtime: Runtime) -> SmartAppState:
    """Everything the panel needs, from the app's runtime."""
    try:
        config = SmartAppConfig.from_settings(runtime.settings)
    except SettingsError as error:
        raise NotConfigured("smart-app-not-configured") from error
    deps = PanelDeps(
        sessions=runtime.sessions,
        policy=runtime.rules.consent,
        ehr_base_url=config.iss,
        clock=runtime.clock,
        ehr_timeout=runtime.settings.ehr_timeout_seconds,
    )
    templates = Environment(
        loader=PackageLoader("smart_app", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    return SmartAppState(config=config, deps=deps, templates=templates)


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
