"""Exceptions raised by the EHR client.

Callers (Celery tasks, CLI commands) decide what to do from the exception *type*: retry later,
give up, or alert clinic IT. Messages carry only the HTTP status, the request method and resource
type, and OperationOutcome issue codes, never resource content or diagnostics text, because
exception messages end up in logs and error trackers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EhrError(Exception):
    """Any failure talking to the EHR FHIR API."""

    def __init__(
        self, message: str, *, status: int | None = None, outcome: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        # Kept for programmatic inspection only; it may contain free text, so never log it.
        self.outcome = outcome


class EhrNotFound(EhrError):
    """The resource does not exist (404) or was deleted (410 Gone)."""


class EhrPreconditionFailed(EhrError):
    """A conditional request conflicted (412): stale If-Match version or ambiguous If-None-Exist."""


class EhrUnavailable(EhrError):
    """The EHR stayed unreachable, overloaded or failing after all retries; try again later."""


class EhrAuthError(EhrError):
    """The EHR or its token endpoint refused our credentials (401/403, OAuth error)."""


class EhrNotSupported(EhrError):
    """The EHR does not implement the interaction or operation (501, or 400/404 on `$op`)."""


class SigningKeyError(ValueError):
    """A private key is unreadable, of an unsupported type, or too weak for SMART signing."""


def outcome_issue_codes(outcome: Mapping[str, Any] | None) -> list[str]:
    """Return the machine-readable `issue.code` values of an OperationOutcome (safe to log)."""
    if not outcome or outcome.get("resourceType") != "OperationOutcome":
        return []
    issues = outcome.get("issue")
    if not isinstance(issues, list):
        return []
    return [str(issue["code"]) for issue in issues if isinstance(issue, dict) and "code" in issue]


def describe_failure(
    method: str, resource_type: str, status: int | None, outcome: Mapping[str, Any] | None
) -> str:
    """Build a PHI-free exception message from request shape, status and issue codes."""
    status_text = f"HTTP {status}" if status is not None else "no response"
    codes = outcome_issue_codes(outcome)
    suffix = f" (issues: {', '.join(codes)})" if codes else ""
    return f"EHR {method} {resource_type} failed: {status_text}{suffix}"


class EhrProtocolError(EhrError):
    """The EHR answered with something we cannot safely use (non-JSON body, foreign page link)."""


def error_for_status(
    status: int, outcome: dict[str, Any] | None, method: str, resource_type: str
) -> EhrError:
    """The exception type callers act on for a failed HTTP status (after any retries)."""
    error_class: type[EhrError]
    if status in (401, 403):
        error_class = EhrAuthError
    elif status in (404, 410):
        error_class = EhrNotFound
    elif status == 412:
        error_class = EhrPreconditionFailed
    elif status == 501:
        error_class = EhrNotSupported
    elif status == 429 or status >= 500:
        error_class = EhrUnavailable
    else:
        error_class = EhrError
    message = describe_failure(method, resource_type, status, outcome)
    return error_class(message, status=status, outcome=outcome)


def as_operation_error(error: EhrError, *, on_instance: bool) -> EhrError:
    """Reclassify a failed `$operation`: 400/404 there usually mean "operation not supported".

    410 Gone, and a 404 on an instance whose issues are all `not-found`/`deleted`, still mean
    the target resource is missing.
    """
    if error.status not in (400, 404):
        return error
    codes = set(outcome_issue_codes(error.outcome))
    if error.status == 404 and on_instance and codes and codes <= {"not-found", "deleted"}:
        return error
    return EhrNotSupported(str(error), status=error.status, outcome=error.outcome)
