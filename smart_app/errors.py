"""Why a staff panel request was refused: short codes only, never PHI or token values.

The code is logged and shown small on the error page, for support; what the person reads
is :func:`explain`: what happened in plain words and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


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


class RoleRefused(SmartAppError):
    """The user is not a member of staff (``fhirUser`` not a Practitioner/PractitionerRole)."""

    status_code = 403


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


@dataclass(frozen=True)
class Explanation:
    """The human side of a refusal: a title and what to do."""

    title: str
    guidance: str


_RELAUNCH = "Open the outreach panel again from the patient's chart in the EHR."
_EXPLANATIONS: Final = {
    "unknown-iss": Explanation(
        "This link did not come from the clinic's EHR",
        "The outreach panel only opens from our EHR. " + _RELAUNCH,
    ),
    "launch-missing": Explanation(
        "The EHR did not start this launch", "This address cannot be opened directly. " + _RELAUNCH
    ),
    "state-unknown-or-expired": Explanation(
        "This sign-in link has expired or was already used",
        "Sign-in links work once and for ten minutes. " + _RELAUNCH,
    ),
    "state-other-browser": Explanation(
        "This sign-in was started in another browser",
        "Finish signing in in the browser where you opened the panel, or "
        + _RELAUNCH[0].lower()
        + _RELAUNCH[1:],
    ),
    "authorization-denied": Explanation(
        "The EHR did not grant access to the outreach panel",
        "If you need it, ask your EHR administrator to give your account access to the "
        "outreach app, then open it again from the chart.",
    ),
    "code-missing": Explanation(
        "The EHR's answer was incomplete", "Nothing was changed. " + _RELAUNCH
    ),
    "no-patient-context": Explanation(
        "The EHR did not say which patient's chart you are in",
        "Open the outreach panel from inside a patient's chart.",
    ),
    "no-fhir-user": Explanation(
        "The panel is for clinic staff",
        "The EHR did not say who you are, so the panel cannot open. Sign in to the EHR with "
        "your staff account; if this keeps happening, ask your EHR administrator to link "
        "your account to your staff (Practitioner) record.",
    ),
    "staff-only": Explanation(
        "The panel is for clinic staff",
        "You are signed in as a patient or a patient's family member or caregiver, and this "
        "panel shows the clinic's messages to patients. Patients can reply to our messages "
        "or call the clinic. If you work at the clinic, sign in to the EHR with your staff "
        "account.",
    ),
    "session-required": Explanation(
        "Your session has ended",
        "For privacy, the panel closes after a while without activity or after a few hours. "
        + _RELAUNCH,
    ),
    "csrf-token-invalid": Explanation(
        "This page was out of date, so nothing was changed",
        "Reload the page and try again.",
    ),
    "other-patient": Explanation(
        "This request was about another patient, so nothing was changed",
        "This tab belongs to one patient's chart. Open the panel from the other patient's "
        "chart to work on their messages.",
    ),
    "smart-app-not-configured": Explanation(
        "The outreach panel is not set up yet",
        "fhir-bridge has no EHR configured. Please tell your IT team.",
    ),
    "session-key-missing": Explanation(
        "The outreach panel is not set up yet",
        "fhir-bridge has no secret to protect sessions with. Please tell your IT team.",
    ),
}
_BY_STATUS: Final = {
    401: _EXPLANATIONS["session-required"],
    403: Explanation("This request is not allowed", "Nothing was changed. " + _RELAUNCH),
    404: Explanation("Not found", "It may have been removed. Reload the page from the chart."),
    409: Explanation(
        "This changed in the meantime", "Reload the page to see where things stand now."
    ),
    502: Explanation(
        "The EHR could not be reached",
        "Try again in a minute. If it keeps happening, tell your IT team the code below.",
    ),
    503: Explanation(
        "The outreach panel is unavailable", "Please try again in a minute or tell your IT team."
    ),
}
_DEFAULT: Final = Explanation(
    "The request could not be completed", "Nothing was changed. Reload the page and try again."
)


def explain(code: str, status_code: int) -> Explanation:
    """What a refused request means for the person in front of the screen."""
    return _EXPLANATIONS.get(code) or _BY_STATUS.get(status_code) or _DEFAULT
