"""Why a staff panel request was refused: short codes only, never PHI or token values."""

from __future__ import annotations


class SmartAppError(Exception):
    """A refused panel request; ``code`` is shown to the user and logged."""

    status_code = 400

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class LaunchRefused(SmartAppError):
    """The launch or callback cannot continue (unknown issuer, bad state, failed exchange)."""


class EhrDiscoveryFailed(LaunchRefused):
    """The EHR's ``.well-known/smart-configuration`` was unusable."""

    status_code = 502


class TokenExchangeFailed(LaunchRefused):
    """The authorization code could not be exchanged for a usable token."""

    status_code = 502


class SessionRequired(SmartAppError):
    """No valid staff session: the app must be launched from the chart again."""

    status_code = 401


class CsrfRejected(SmartAppError):
    """A state-changing request without the session's CSRF token."""

    status_code = 403


class OtherPatientForbidden(SmartAppError):
    """The request concerns a patient other than the launch patient."""

    status_code = 403


class NotFound(SmartAppError):
    """No such thing under ``/smart``."""

    status_code = 404


class MessageNotFound(NotFound):
    """No such planned message."""


class NotPending(SmartAppError):
    """Only planned or queued messages can be cancelled."""

    status_code = 409
