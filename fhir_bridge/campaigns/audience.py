"""Who is in an audience: FHIR searches against the EHR, then the pure filters.

The searches run with no database transaction open (paged by the EHR client); what they
return is grouped by patient and handed to :func:`rules.audiences.evaluate`. An audience
with an appointment filter starts from the Appointments in its window (at its first place
when one is given); any other starts from ``Patient?<patient_search>``. Other resource
types the filters need (Condition, MedicationRequest, Observation, Procedure) and active
Consents are searched type-wide and grouped by patient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rules.audiences import AudienceDefinition, Membership, evaluate

PAGE = "200"
ID_CHUNK = 50


@dataclass
class AudienceData:
    """Patients by reference, each one's resources and Consents (raw R4 JSON)."""

    patients: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    consents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def members(
        self, definition: AudienceDefinition, now: datetime
    ) -> Iterable[tuple[str, Membership]]:
        for ref, patient in self.patients.items():
            yield ref, evaluate(definition, patient, self.resources.get(ref, []), now)


def _patient_of(resource: dict[str, Any]) -> str | None:
    for key in ("subject", "patient"):
        ref = (resource.get(key) or {}).get("reference")
        if isinstance(ref, str) and "Patient/" in ref:
            return "Patient/" + ref.rsplit("Patient/", 1)[1].split("/")[0]
    for participant in resource.get("participant") or []:
        ref = (participant.get("actor") or {}).get("reference")
        if isinstance(ref, str) and "Patient/" in ref:
            return "Patient/" + ref.rsplit("Patient/", 1)[1].split("/")[0]
    return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch(ehr: Any, definition: AudienceDefinition, now: datetime) -> AudienceData:
    """Everything :func:`rules.audiences.evaluate` needs, read from the EHR."""
    data = AudienceData()
    rule = definition.appointments
    if rule is not None:
        start, end = rule.window(now)
        params: dict[str, Any] = {
            "date": [f"ge{_stamp(start)}", f"lt{_stamp(end)}"],
            "_count": PAGE,
        }
        if len(rule.locations) == 1:
            params["location"] = rule.locations[0]
        for appointment in ehr.search_all("Appointment", params):
            ref = _patient_of(appointment)
            if ref is not None:
                data.resources.setdefault(ref, []).append(appointment)
        refs = sorted(data.resources)
        for begin in range(0, len(refs), ID_CHUNK):
            ids = ",".join(ref.split("/", 1)[1] for ref in refs[begin : begin + ID_CHUNK])
            for patient in ehr.search_all("Patient", {"_id": ids, "_count": PAGE}):
                data.patients[f"Patient/{patient['id']}"] = patient
    else:
        for patient in ehr.search_all("Patient", {**definition.patient_search, "_count": PAGE}):
            data.patients[f"Patient/{patient['id']}"] = patient
    for resource_type in definition.resource_types():
        if resource_type == "Appointment":
            continue
        for resource in ehr.search_all(resource_type, {"_count": PAGE}):
            ref = _patient_of(resource)
            if ref in data.patients:
                data.resources.setdefault(ref, []).append(resource)
    for consent in ehr.search_all("Consent", {"status": "active", "_count": PAGE}):
        ref = _patient_of(consent)
        if ref in data.patients:
            data.consents.setdefault(ref, []).append(consent)
    return data
