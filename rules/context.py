"""What every rule needs to know about one patient while planning.

Built once per ``plan_for_patient`` call so each rule reads the patient's
language, time zone and history the same way, and so traces agree on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.config import LocationOverride, RulesConfig
from rules.fhir_json import first_name, preferred_language
from rules.model import PatientSnapshot, PlannedMessage, WithheldMessage
from rules.privacy import classify_sensitivity
from rules.snapshot import referenced_closure
from rules.timing import QuietHours, resolve_zone


@dataclass
class RuleOutcome:
    """Messages one rule wants sent, and those it decided against (with reasons)."""

    planned: list[PlannedMessage] = field(default_factory=list)
    withheld: list[WithheldMessage] = field(default_factory=list)

    def extend(self, other: RuleOutcome) -> None:
        """Append another rule's outcome."""
        self.planned.extend(other.planned)
        self.withheld.extend(other.withheld)


@dataclass(frozen=True)
class PlanningContext:
    """The patient-level facts shared by all rules for one planning run."""

    snapshot: PatientSnapshot
    config: RulesConfig
    now: datetime
    language: str
    language_source: str
    first_name: str
    sent_keys: frozenset[str]

    @classmethod
    def build(
        cls, snapshot: PatientSnapshot, config: RulesConfig, now: datetime
    ) -> PlanningContext:
        """Derive language and name from the Patient and index the history by key."""
        stated = preferred_language(snapshot.patient)
        supported = config.languages.supported
        language = stated if stated in supported else config.languages.default
        source = "patient.communication" if stated in supported else "default"
        return cls(
            snapshot=snapshot,
            config=config,
            now=now,
            language=language,
            language_source=source,
            first_name=first_name(snapshot.patient),
            sent_keys=frozenset(record.key for record in snapshot.history),
        )

    @property
    def patient_ref(self) -> str:
        """The patient's relative reference."""
        return self.snapshot.patient_ref

    def resources_of(self, resource_type: str) -> list[Mapping[str, Any]]:
        """The snapshot's current resources of one type."""
        return [r for r in self.snapshot.resources if r.get("resourceType") == resource_type]

    def location(self, reference: str | None) -> Mapping[str, Any] | None:
        """The Location resource for a reference, if the pipeline supplied it."""
        return self.snapshot.resolve(reference)

    def override(self, location_ref: str | None) -> LocationOverride | None:
        """The rules file's settings for a location, if any."""
        return self.config.location(location_ref)

    def recipient_zone(self, location_ref: str | None = None) -> tuple[ZoneInfo, str]:
        """Where the patient reads messages: Patient, then Location, then configuration."""
        override = self.override(location_ref)
        return resolve_zone(
            ("patient", self.snapshot.patient),
            ("location", self.location(location_ref)),
            ("location-config", override.timezone if override else None),
            default=self.config.organization.timezone,
        )

    def venue_zone(self, location_ref: str | None) -> tuple[ZoneInfo, str]:
        """Where the appointment happens, for displaying its local date and time."""
        override = self.override(location_ref)
        return resolve_zone(
            ("location", self.location(location_ref)),
            ("location-config", override.timezone if override else None),
            ("patient", self.snapshot.patient),
            default=self.config.organization.timezone,
        )

    def window(self, location_ref: str | None = None) -> QuietHours:
        """Quiet hours for a location (its override) or the organisation."""
        override = self.override(location_ref)
        if override and override.quiet_hours:
            return override.quiet_hours.window()
        return self.config.quiet_hours.window()

    def base_variables(self, location_ref: str | None = None) -> dict[str, str]:
        """The variables every template may use: name, clinic, callback number, link."""
        override = self.override(location_ref)
        organization = self.config.organization
        return {
            "first_name": self.first_name,
            "clinic_name": (override and override.clinic_name) or organization.clinic_name,
            "clinic_phone": (override and override.clinic_phone) or organization.clinic_phone,
            "link": organization.link,
        }

    def location_name(self, location_ref: str | None, sensitive: bool) -> str:
        """The place name a message may print, or ``""`` (the organisation only).

        Default-deny: only places the rules file lists as patient-facing (or with
        an alias) are named; for sensitive care only those marked safe for it; and
        never a name the privacy policy finds revealing, whatever the listing says.
        """
        override = self.override(location_ref)
        if override is None or not (override.patient_facing or override.display_name):
            return ""
        if sensitive and not override.safe_for_sensitive:
            return ""
        location = self.location(location_ref)
        name = override.display_name or (location or {}).get("name")
        if not isinstance(name, str) or not name.strip():
            return ""
        if self.config.privacy.name_is_revealing(name):
            return ""
        return name.strip()

    def sensitivity(self, resources: Sequence[Mapping[str, Any]]) -> tuple[bool, tuple[str, ...]]:
        """Whether the messages about ``resources`` must use the generic wording.

        Reads the resources and everything they refer to (Location, HealthcareService,
        Practitioner, PractitionerRole, Organization, Medication) from the snapshot.
        """
        referenced = referenced_closure(resources, self.snapshot.resolve)
        result = classify_sensitivity([*resources, *referenced.values()], self.config.privacy)
        return bool(result.sensitive), tuple(result.reasons)
