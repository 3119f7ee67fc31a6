"""OperationOutcome errors, because real FHIR servers answer every failure with one."""

from __future__ import annotations

from typing import Any


class FhirError(Exception):
    """A failed FHIR interaction; rendered as an OperationOutcome with `status_code`."""

    def __init__(self, status_code: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status_code = status_code
        self.code = code
        self.diagnostics = diagnostics


class NotFoundError(FhirError):
    """The resource or route does not exist."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(404, "not-found", diagnostics)


class GoneError(FhirError):
    """The resource existed but was deleted (FHIR answers 410)."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(410, "deleted", diagnostics)


class InvalidRequestError(FhirError):
    """The request body or parameters are unusable."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(400, "invalid", diagnostics)


class PreconditionFailedError(FhirError):
    """If-Match / If-None-Exist preconditions did not hold."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(412, "conflict", diagnostics)


class UnauthorizedError(FhirError):
    """Missing, unknown or expired bearer token."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(401, "login", diagnostics)


class ForbiddenError(FhirError):
    """The token's scopes do not cover the interaction."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(403, "forbidden", diagnostics)


class NotSupportedError(FhirError):
    """The server does not implement the requested operation."""

    def __init__(self, diagnostics: str) -> None:
        super().__init__(501, "not-supported", diagnostics)


def operation_outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    """Build a single-issue OperationOutcome (diagnostics must never carry PHI)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def outcome_for(error: FhirError) -> dict[str, Any]:
    """The OperationOutcome body for an error."""
    return operation_outcome("error", error.code, error.diagnostics)
