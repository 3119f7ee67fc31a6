"""Staff sessions and pending launches in the database: every API process sees the same ones.

Each launch gets its own session, found by a random **handle** that the tab carries in its
URLs (``/smart/l/<handle>/…``), so a second launch in another tab never changes what this
tab shows or acts on. Only the handle's SHA-256 is stored; the EHR access token and the
PKCE verifier are stored encrypted (Fernet, key derived from the notification secret).
Over HTTPS the session is also bound to this browser by an HttpOnly cookie (see
``smart_app.security``). Sessions end after ``smart_session_idle_seconds`` without a
request, or ``smart_session_seconds`` after the launch (or when the EHR token expires).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import PendingLaunchRecord, StaffSessionRecord
from smart_app import repository
from smart_app.banner import PatientBanner
from smart_app.launch import LaunchContext, PendingLaunch

PENDING_LAUNCH_SECONDS = 600
TOUCH_EVERY_SECONDS = 30
KIND_EHR: Final = "ehr"
KIND_STANDALONE: Final = "standalone"
LaunchKind = Literal["ehr", "standalone"]
_KEY_LABEL = b"fhir-bridge staff-panel session encryption v1"


@dataclass(frozen=True)
class StaffSession:
    """One EHR launch: whose chart, which user, the user's token, the CSRF token, the banner."""

    id: str
    patient_ref: str
    encounter_ref: str | None
    fhir_user: str | None
    access_token: str
    scope: str
    csrf_token: str
    expires_at: float
    banner: PatientBanner | None = None


@dataclass(frozen=True)
class ClinicSession:
    """One standalone launch (user-level scopes, no patient): the clinic-wide views."""

    id: str
    fhir_user: str
    access_token: str
    scope: str
    csrf_token: str
    expires_at: float


def digest(value: str) -> str:
    """SHA-256 hex of a handle, a ``state`` or a browser key: what the database keeps."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class SecretBox:
    """Encrypts tokens at rest with a key derived from the notification secret."""

    def __init__(self, master_secret: str) -> None:
        key = hmac.new(master_secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, value: str) -> str | None:
        """The plain value, or None when it was sealed with another key."""
        try:
            return self._fernet.decrypt(value.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class SessionStore:
    """Sessions by handle, with idle and absolute timeouts."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        box: SecretBox,
        *,
        lifetime_seconds: int,
        idle_seconds: int,
    ) -> None:
        self._factory = factory
        self._box = box
        self.lifetime_seconds = lifetime_seconds
        self.idle_seconds = idle_seconds

    def create(
        self,
        context: LaunchContext,
        now: float,
        *,
        kind: LaunchKind = KIND_EHR,
        browser_binding: str | None = None,
        banner: PatientBanner | None = None,
    ) -> tuple[str, StaffSession | ClinicSession]:
        """A new session for a completed launch: ``(handle, session)``; the handle is new."""
        lifetime = self.lifetime_seconds
        if context.expires_in is not None:
            lifetime = min(lifetime, context.expires_in)
        handle = secrets.token_urlsafe(32)
        record = StaffSessionRecord(
            id=digest(handle),
            kind=kind,
            patient_ref=context.patient_ref if kind == KIND_EHR else None,
            encounter_ref=context.encounter_ref,
            fhir_user=context.fhir_user or "",
            scope=context.scope,
            access_token=self._box.seal(context.access_token),
            csrf_token=secrets.token_urlsafe(32),
            browser_binding=browser_binding,
            banner=banner.as_json() if banner is not None else None,
            created_at=_at(now),
            last_seen_at=_at(now),
            expires_at=_at(now + lifetime),
        )
        with transaction(self._factory) as session:
            repository.add_session(session, record, _at(now))
        staff = self._session_of(record, context.access_token)
        assert staff is not None
        return handle, staff

    def get(
        self, handle: str | None, browser_key: str | None, now: float
    ) -> StaffSession | ClinicSession | None:
        """The live session for a handle (and, when it is bound, this browser's key), or None."""
        if not handle or len(handle) > 128:
            return None
        session_id = digest(handle)
        with transaction(self._factory) as session:
            record = repository.get_session(session, session_id)
            if record is None:
                return None
            expired = record.expires_at <= _at(now) or (
                record.last_seen_at.timestamp() + self.idle_seconds <= now
            )
            if expired:
                repository.delete_session(session, session_id)
                return None
            if record.browser_binding is not None and not (
                browser_key and secrets.compare_digest(digest(browser_key), record.browser_binding)
            ):
                return None
            if now - record.last_seen_at.timestamp() >= TOUCH_EVERY_SECONDS:
                repository.touch_session(session, session_id, _at(now))
        token = self._box.open(record.access_token)
        return None if token is None else self._session_of(record, token)

    @staticmethod
    def _session_of(
        record: StaffSessionRecord, access_token: str
    ) -> StaffSession | ClinicSession | None:
        expires_at = record.expires_at.timestamp()
        if record.kind == KIND_STANDALONE:
            return ClinicSession(
                id=record.id,
                fhir_user=record.fhir_user,
                access_token=access_token,
                scope=record.scope,
                csrf_token=record.csrf_token,
                expires_at=expires_at,
            )
        if record.patient_ref is None:
            return None
        return StaffSession(
            id=record.id,
            patient_ref=record.patient_ref,
            encounter_ref=record.encounter_ref,
            fhir_user=record.fhir_user or None,
            access_token=access_token,
            scope=record.scope,
            csrf_token=record.csrf_token,
            expires_at=expires_at,
            banner=PatientBanner.from_json(record.banner),
        )


class PendingLaunches:
    """Launches between the redirect to the EHR and the callback; each ``state`` is used once."""

    def __init__(self, factory: sessionmaker[Session], box: SecretBox) -> None:
        self._factory = factory
        self._box = box

    def add(self, pending: PendingLaunch) -> None:
        """Remember a launch (stale ones are dropped on the way)."""
        record = PendingLaunchRecord(
            state_hash=digest(pending.state),
            kind=pending.kind,
            code_verifier=self._box.seal(pending.code_verifier),
            token_endpoint=pending.token_endpoint,
            issuer=pending.issuer,
            browser_binding=pending.browser_binding,
            created_at=_at(pending.created_at),
        )
        with transaction(self._factory) as session:
            repository.add_pending(
                session, record, _at(pending.created_at - PENDING_LAUNCH_SECONDS)
            )

    def take(self, state: str, now: float) -> PendingLaunch | None:
        """The pending launch for ``state`` (removed: a state is single-use), if still fresh."""
        if not state or len(state) > 128:
            return None
        with transaction(self._factory) as session:
            record = repository.take_pending(session, digest(state))
        if record is None or record.created_at.timestamp() < now - PENDING_LAUNCH_SECONDS:
            return None
        verifier = self._box.open(record.code_verifier)
        if verifier is None:
            return None
        return PendingLaunch(
            state=state,
            code_verifier=verifier,
            token_endpoint=record.token_endpoint,
            issuer=record.issuer,
            created_at=record.created_at.timestamp(),
            kind=KIND_STANDALONE if record.kind == KIND_STANDALONE else KIND_EHR,
            browser_binding=record.browser_binding,
        )
