"""Server-side staff sessions and pending launches, kept in the API process's memory.

The browser holds only a random session id (HttpOnly cookie); the EHR access
token and the patient context never leave the server. Sessions live in one
process: run the API as a single process, or behind sticky sessions, for the
staff panel (a lost session only means launching again from the chart).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from smart_app.launch import LaunchContext, PendingLaunch

PENDING_LAUNCH_SECONDS = 600
MAX_PENDING_LAUNCHES = 10_000


@dataclass(frozen=True)
class StaffSession:
    """One launched panel: whose chart, which user, the user's token, the CSRF token."""

    id: str
    patient_ref: str
    encounter_ref: str | None
    fhir_user: str | None
    access_token: str
    scope: str
    csrf_token: str
    expires_at: float


class SessionStore:
    """Sessions by random id, forgotten at expiry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, StaffSession] = {}

    def create(self, context: LaunchContext, now: float, lifetime_seconds: int) -> StaffSession:
        """A new session for a completed launch (never reuses an id from before the launch)."""
        lifetime = lifetime_seconds
        if context.expires_in is not None:
            lifetime = min(lifetime, context.expires_in)
        session = StaffSession(
            id=secrets.token_urlsafe(32),
            patient_ref=context.patient_ref,
            encounter_ref=context.encounter_ref,
            fhir_user=context.fhir_user,
            access_token=context.access_token,
            scope=context.scope,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + lifetime,
        )
        with self._lock:
            self._purge(now)
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, now: float) -> StaffSession | None:
        """The live session for a cookie value, or None."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= now:
                del self._sessions[session_id]
                return None
        return session

    def _purge(self, now: float) -> None:
        expired = [key for key, value in self._sessions.items() if value.expires_at <= now]
        for key in expired:
            del self._sessions[key]


class PendingLaunches:
    """Launches between the redirect to the EHR and the callback; each state is used once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, PendingLaunch] = {}

    def add(self, pending: PendingLaunch) -> None:
        """Remember a launch; the oldest are dropped if an attacker floods us with launches."""
        with self._lock:
            cutoff = pending.created_at - PENDING_LAUNCH_SECONDS
            for state in [s for s, p in self._pending.items() if p.created_at < cutoff]:
                del self._pending[state]
            while len(self._pending) >= MAX_PENDING_LAUNCHES:
                del self._pending[next(iter(self._pending))]
            self._pending[pending.state] = pending

    def take(self, state: str, now: float) -> PendingLaunch | None:
        """The pending launch for ``state`` (removed: a state is single-use), if still fresh."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or pending.created_at < now - PENDING_LAUNCH_SECONDS:
            return None
        return pending
