"""What every rule needs to know about one patient while planning.

Built once per ``plan_for_patient`` call so each rule reads the patient's
language, time zone and history the same way, and so traces agree on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rules.config import LocationOverride, RulesConfig
from rules.fhir_json import first_name
from rules.language import preferred_language
from rules.memo import ContentMemo, content_key
from rules.model import PatientSnapshot, PlannedMessage, WithheldMessage
from rules.place_time import ZoneDecision, recipient_zone, start_offset_check, zone_of_place
from rules.privacy import classify_sensitivity
from rules.snapshot import referenced_closure, shared_references_of
from rules.timing import QuietHours, into_window, local_iso


@dataclass
class RuleOutcome:
    """Messages one rule wants sent, and those it decided against (with reasons)."""

    planned: list[PlannedMessage] = field(default_factory=list)
    withheld: list[WithheldMessage] = field(default_factory=list)

    def extend(self, other: RuleOutcome) -> None:
        """Append another rule's outcome."""
        self.planned.extend(other.planned)
        self.withheld.extend(other.withheld)


OFFSET_DISAGREES = "start-offset-disagrees"
OFFSET_AGREES = "start-offset-used-as-check"


_PLACE_ZONES: ContentMemo[ZoneDecision] = ContentMemo()


def _place_zone(
    location: Mapping[str, Any] | None, configured: str | None, default: str
) -> ZoneDecision:
    """The zone of a place, remembered by the Location's content and the settings."""
    key = content_key(location) if location else ""
    if key is None:
        return zone_of_place(
            location, appointment_start=None, configured=configured, default=default
        )
    memo_key = f"{configured!r}|{default!r}|{key}"
    found = _PLACE_ZONES.get(memo_key)
    if found is None:
        found = _PLACE_ZONES.put(
            memo_key,
            zone_of_place(
                location or None, appointment_start=None, configured=configured, default=default
            ),
        )
    return found


@dataclass(frozen=True)
class PromptSend:
    """When a message meant to go at once may go: now, or when the patient's window opens."""

    send_at: datetime
    zone: ZoneDecision
    quiet_hours: str
    """``inside-window``, ``moved-after-quiet-hours``, or ``emergency`` (window ignored)."""


@dataclass(frozen=True)
class PlanningContext:
    """The patient-level facts shared by all rules for one planning run."""

    snapshot: PatientSnapshot
    config: RulesConfig
    now: datetime
    language: str
    language_source: str
    language_note: str | None
    first_name: str
    sent_keys: frozenset[str]
    _recipients: dict[tuple[str, str, tuple[str, ...]], ZoneDecision] = field(
        default_factory=dict, compare=False, repr=False
    )
    _places: dict[tuple[str | None, Any], ZoneDecision] = field(
        default_factory=dict, compare=False, repr=False
    )
    _references: dict[int, list[str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls, snapshot: PatientSnapshot, config: RulesConfig, now: datetime
    ) -> PlanningContext:
        """Derive language and name from the Patient and index the history by key."""
        decision = preferred_language(
            snapshot.patient, config.languages.supported, config.languages.default
        )
        return cls(
            snapshot=snapshot,
            config=config,
            now=now,
            language=decision.language,
            language_source=decision.source,
            language_note=decision.note,
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

    def place_zone(self, location_ref: str | None, appointment_start: Any = None) -> ZoneDecision:
        """The zone of the place of care (see :mod:`rules.place_time` for the precedence).

        The offset written in ``Appointment.start`` is only checked against it, never used.
        """
        key = (location_ref, appointment_start if isinstance(appointment_start, str) else None)
        found = self._places.get(key)
        if found is None:
            found = self._places[key] = self._place_zone(location_ref, key[1])
        return found

    def _place_zone(self, location_ref: str | None, appointment_start: str | None) -> ZoneDecision:
        override = self.override(location_ref)
        location = self.location(location_ref)
        decision = _place_zone(
            location,
            override.timezone if override else None,
            self.config.organization.timezone,
        )
        checks = start_offset_check(appointment_start, decision.zone)
        if decision.source == "default" and any(c.startswith(OFFSET_DISAGREES) for c in checks):
            # Nothing about the place says where it is, and the EHR wrote the start in
            # another offset: the patient's own zone, if it agrees with that offset, is a
            # better answer than the organisation's default (the offset is still only a check).
            home = recipient_zone(self.snapshot.patient, decision, today=self.now.date())
            if home.source.startswith("patient") and start_offset_check(
                appointment_start, home.zone
            ) == [OFFSET_AGREES]:
                return ZoneDecision(home.zone, f"{home.source}-matching-start", (OFFSET_AGREES,))
        return replace(decision, notes=(*decision.notes, *checks)) if checks else decision

    def recipient_decision(
        self, location_ref: str | None = None, appointment_start: Any = None
    ) -> ZoneDecision:
        """Where the patient reads messages: Patient zone or home address, else the place."""
        place = self.place_zone(location_ref, appointment_start)
        key = (place.zone.key, place.source, place.notes)
        found = self._recipients.get(key)
        if found is None:
            found = recipient_zone(self.snapshot.patient, place, today=self.now.date())
            if found.source != place.source:
                notes = dict.fromkeys((*place.notes, *found.notes))
                found = replace(found, notes=tuple(notes))
            self._recipients[key] = found
        return found

    def recipient_zone(self, location_ref: str | None = None) -> tuple[ZoneInfo, str]:
        """The recipient's zone and its source, for quiet hours and caps."""
        decision = self.recipient_decision(location_ref)
        return decision.zone, decision.source

    def venue_zone(
        self, location_ref: str | None, appointment_start: Any = None
    ) -> tuple[ZoneInfo, str]:
        """Where the appointment happens, for displaying its local date and time."""
        decision = self.place_zone(location_ref, appointment_start)
        return decision.zone, decision.source

    def window(self, location_ref: str | None = None) -> QuietHours:
        """Quiet hours for a location (its override) or the organisation."""
        override = self.override(location_ref)
        if override and override.quiet_hours:
            return override.quiet_hours.window()
        return self.config.quiet_hours.window()

    def send_now(self, *, emergency: bool = False) -> PromptSend:
        """A message requested now (a staff answer, an invitation, a campaign message):
        held to the patient's sending window, unless it is an emergency."""
        zone = self.recipient_decision(None)
        if emergency:
            return PromptSend(self.now, zone, "emergency")
        send_at, moved = into_window(self.now, zone.zone, self.window(None))
        return PromptSend(send_at, zone, moved or "inside-window")

    def send_now_trace(self, prompt: PromptSend) -> dict[str, Any]:
        """The trace of a message requested now: language, zone, quiet hours, times."""
        return {
            "language": self.language,
            "language_source": self.language_source,
            "zone": prompt.zone.name,
            "zone_source": prompt.zone.source,
            "quiet_hours": prompt.quiet_hours,
            "requested_at": self.now.isoformat(),
            "send_at_local": local_iso(prompt.send_at, prompt.zone.zone),
        }

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
        referenced = referenced_closure(resources, self.snapshot.resolve, self._references_of)
        result = classify_sensitivity([*resources, *referenced.values()], self.config.privacy)
        return bool(result.sensitive), tuple(result.reasons)

    def _references_of(self, resource: Mapping[str, Any]) -> list[str]:
        """One resource's references, walked once per planning run (the snapshot and its
        resolved references live as long as this context, so ``id`` is a safe key)."""
        found = self._references.get(id(resource))
        if found is None:
            found = self._references[id(resource)] = shared_references_of(resource)
        return found
