"""Small, pure helpers over raw R4 JSON: references, versions, validation.

We keep the EHR's raw JSON as the record and use ``fhir.resources.R4B`` models
only to validate shape (R4B matches R4 for the resources we touch; the default
R5 models would silently drop R4 fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from rules.resource_types import PLANNED_TYPES

SUPPORTED_TYPES = (*PLANNED_TYPES, "Patient")


class InvalidResource(ValueError):
    """The JSON is not a valid R4 resource of the expected type (message carries no PHI)."""


def _model_for(resource_type: str) -> Any:
    if resource_type == "Appointment":
        from fhir.resources.R4B.appointment import Appointment

        return Appointment
    if resource_type == "MedicationRequest":
        from fhir.resources.R4B.medicationrequest import MedicationRequest

        return MedicationRequest
    if resource_type == "Encounter":
        from fhir.resources.R4B.encounter import Encounter

        return Encounter
    if resource_type == "Patient":
        from fhir.resources.R4B.patient import Patient

        return Patient
    raise InvalidResource(f"unsupported resourceType {resource_type!r}")


def validate_resource(resource: Any, expected_type: str | None = None) -> dict[str, Any]:
    """Check a resource is valid R4 JSON of a supported type; return it unchanged."""
    if not isinstance(resource, dict):
        raise InvalidResource("resource must be a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidResource("resourceType is missing")
    if expected_type and resource_type != expected_type:
        raise InvalidResource(f"expected {expected_type}, got {resource_type}")
    if resource_type not in SUPPORTED_TYPES:
        raise InvalidResource(f"unsupported resourceType {resource_type}")
    if not isinstance(resource.get("id"), str):
        raise InvalidResource(f"{resource_type} has no id")
    try:
        _model_for(resource_type).model_validate(resource)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "(root)" for e in exc.errors()})
        raise InvalidResource(
            f"invalid {resource_type}: problems at " + ", ".join(fields[:10])
        ) from None
    return resource


def relative_reference(reference: str | None) -> str | None:
    """``http://ehr/fhir/Patient/1`` or ``Patient/1/_history/3`` → ``Patient/1``."""
    if not reference:
        return None
    parts = [p for p in reference.split("?")[0].split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2:
        return None
    return f"{parts[-2]}/{parts[-1]}"


def patient_reference(resource: Mapping[str, Any]) -> str | None:
    """The patient a resource is about, as ``Patient/{id}``."""
    resource_type = resource.get("resourceType")
    if resource_type == "Patient":
        return f"Patient/{resource.get('id')}"
    if resource_type == "Appointment":
        for participant in resource.get("participant") or []:
            ref = relative_reference((participant.get("actor") or {}).get("reference"))
            if ref and ref.startswith("Patient/"):
                return ref
        return None
    for field in ("subject", "patient"):
        ref = relative_reference((resource.get(field) or {}).get("reference"))
        if ref and ref.startswith("Patient/"):
            return ref
    return None


def parse_instant(value: str | None) -> datetime | None:
    """A FHIR instant/dateTime with offset → aware datetime; anything else → None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


@dataclass(frozen=True)
class Version:
    """What we know about a resource version, for ordering."""

    version_id: str | None
    last_updated: datetime | None

    @classmethod
    def of(cls, resource: Mapping[str, Any]) -> Version:
        meta = resource.get("meta") or {}
        return cls(meta.get("versionId"), parse_instant(meta.get("lastUpdated")))


def compare_versions(incoming: Version, stored: Version) -> int | None:
    """1 if incoming is newer, 0 if the same, -1 if older, None if we cannot tell.

    Numeric versionIds are compared first (HAPI, Medplum and most servers count
    up); otherwise lastUpdated decides. None means: re-read from the EHR.
    """
    if incoming.version_id and stored.version_id:
        if incoming.version_id == stored.version_id:
            return 0
        if incoming.version_id.isdigit() and stored.version_id.isdigit():
            return 1 if int(incoming.version_id) > int(stored.version_id) else -1
    if incoming.last_updated and stored.last_updated:
        if incoming.last_updated == stored.last_updated:
            return 0 if incoming.version_id == stored.version_id else None
        return 1 if incoming.last_updated > stored.last_updated else -1
    return None
