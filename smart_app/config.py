"""The staff panel's view of the settings, resolved once per app.

Kept apart from ``fhir_bridge.settings`` so the launch and security code can be
tested with plain values, and so the derived values (redirect URI, frame
ancestors) are computed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from fhir_bridge.settings import Settings

CALLBACK_PATH = "/smart/callback"
LAUNCH_PATH = "/smart/launch"
STANDALONE_PATH = "/smart/standalone"
# Path (under the /smart router) of everything bound to one launch's session. Every route
# that acts for a launch is declared as SESSION_PREFIX + "/…"; links, forms and redirects
# are built from `smart_app.security.launch_base(request)`, never spelled out. `{launch}`
# is the launch's handle: each launch (each tab) is its own session.
SESSION_PREFIX = "/l/{launch}"
LAUNCH_PARAM = "launch"


@dataclass(frozen=True)
class SmartAppConfig:
    """What the SMART EHR launch and the panel's security headers need."""

    iss: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    scope: str
    session_seconds: int
    frame_ancestors: str
    secure_cookies: bool
    standalone_scope: str = "openid fhirUser user/Patient.rs user/Communication.rs"
    idle_seconds: int = 900

    @classmethod
    def from_settings(cls, settings: Settings) -> SmartAppConfig:
        """Derive the config; the EHR base URL is the only issuer we accept."""
        iss = settings.require_ehr()
        secret = settings.smart_client_secret
        return cls(
            iss=iss.rstrip("/"),
            client_id=settings.smart_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            redirect_uri=settings.public_base_url.rstrip("/") + CALLBACK_PATH,
            scope=settings.smart_scope,
            session_seconds=settings.smart_session_seconds,
            frame_ancestors=settings.smart_frame_ancestors or f"'self' {origin_of(iss)}",
            secure_cookies=settings.public_base_url.startswith("https://"),
            standalone_scope=settings.smart_standalone_scope,
            idle_seconds=settings.smart_session_idle_seconds,
        )


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: the form CSP source lists expect."""
    parsed = httpx.URL(url)
    default_port = {"http": 80, "https": 443}.get(parsed.scheme)
    port = f":{parsed.port}" if parsed.port and parsed.port != default_port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
