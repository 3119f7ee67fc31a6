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
from rules.fhir_json import first_name
from rules.language import remembered_language
from rules.memo import ContentMemo, content_key
from rules.model import (
    PatientSnapshot,
    PlannedMessage,
    WithheldMessage,
)
from rules.place_time import (
    PATIENT_SAYS_NOTHING,
    PatientZone,
    ZoneDecision,
    patient_zone,
    recipient_at,
    start_offset_check,
    zone_of_place,
)
from rules.privacy import ResourceFindings, classify_sensitivity, read_resource, shared_findings
from rules.snapshot import (
    REFERENCED_TYPES,
    referenced_closure,
    references_of,
    remembered_references_of,
)
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
# The same with the check of an appointment's written start offset, which most starts
# share (only a decision that then consults the Patient is not kept), and where a Patient
# who says nothing about their zone reads messages (the place of care decides).
_PLACE_ZONES_AT: ContentMemo[ZoneDecision] = ContentMemo()
_RECIPIENTS_AT_PLACE: ContentMemo[ZoneDecision] = ContentMemo()
_KEYS: ContentMemo[bytes] = ContentMemo()


def _place_zone(
    location: Mapping[str, Any] | None, configured: str | None, default: str, key: bytes | None
) -> ZoneDecision:
    """The zone of a place, remembered by the Location's content (``key``, its
    :func:`rules.memo.content_key`, ``b""`` without a Location) and the settings."""
    if key is None:
        return zone_of_place(
            location, appointment_start=None, configured=configured, default=default
        )
    memo_key = (configured, default, key)
    found = _PLACE_ZONES.get(memo_key)
    if found is None:
        found = _PLACE_ZONES.put(
            memo_key,
            zone_of_place(
                location or None, appointment_start=None, configured=configured, default=default
            ),
        )
    return found


_Read = tuple[Mapping[str, Any], list[str], ResourceFindings | None]
"""What planning reads in one resource, worked out once per planning run: the resource
(held so that its ``id`` cannot be reused while this is cached), its references and its
own sensitivity findings."""


class _WorkedOut:
    """What one planning run has worked out so far (asked again by several rules)."""

    __slots__ = (
        "by_type",
        "content_keys",
        "overrides",
        "patient_zone",
        "places",
        "reads",
        "recipients",
    )

    def __init__(self) -> None:
        self.recipients: dict[tuple[str, str, tuple[str, ...]], ZoneDecision] = {}
        self.places: dict[tuple[str | None, Any], ZoneDecision] = {}
        self.reads: dict[int, _Read] = {}
        self.content_keys: dict[int, tuple[Mapping[str, Any], bytes | None]] = {}
        self.patient_zone: PatientZone | None = None
        self.by_type: dict[str, list[Mapping[str, Any]]] | None = None
        self.overrides: dict[str | None, LocationOverride | None] = {}


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
    _worked_out: _WorkedOut = field(default_factory=_WorkedOut, compare=False, repr=False)

    @classmethod
    def build(
        cls, snapshot: PatientSnapshot, config: RulesConfig, now: datetime
    ) -> PlanningContext:
        """Derive language and name from the Patient and index the history by key."""
        decision = remembered_language(
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
            sent_keys=(
                frozenset(record.key for record in snapshot.history)
                if snapshot.history
                else frozenset()
            ),
        )

    @property
    def patient_ref(self) -> str:
        """The patient's relative reference."""
        return self.snapshot.patient_ref

    def resources_of(self, resource_type: str) -> list[Mapping[str, Any]]:
        """The snapshot's current resources of one type."""
        by_type = self._worked_out.by_type
        if by_type is None:
            by_type = self._worked_out.by_type = {}
            for resource in self.snapshot.resources:
                kind = resource.get("resourceType")
                if isinstance(kind, str):
                    by_type.setdefault(kind, []).append(resource)
        return list(by_type.get(resource_type, ()))

    def location(self, reference: str | None) -> Mapping[str, Any] | None:
        """The Location resource for a reference, if the pipeline supplied it."""
        return self.snapshot.resolve(reference)

    def override(self, location_ref: str | None) -> LocationOverride | None:
        """The rules file's settings for a location, if any."""
        overrides = self._worked_out.overrides
        if location_ref in overrides:
            return overrides[location_ref]
        found = overrides[location_ref] = self.config.location(location_ref)
        return found

    def place_zone(self, location_ref: str | None, appointment_start: Any = None) -> ZoneDecision:
        """The zone of the place of care (see :mod:`rules.place_time` for the precedence).

        The offset written in ``Appointment.start`` is only checked against it, never used.
        """
        key = (location_ref, appointment_start if isinstance(appointment_start, str) else None)
        places = self._worked_out.places
        found = places.get(key)
        if found is None:
            found = places[key] = self._place_zone(location_ref, key[1])
        return found

    def _place_zone(self, location_ref: str | None, appointment_start: str | None) -> ZoneDecision:
        override = self.override(location_ref)
        location = self.location(location_ref)
        configured = override.timezone if override else None
        default = self.config.organization.timezone
        key = self._content_key(location) if location else b""
        memo_key = (configured, default, key, appointment_start)
        if key is not None and (found := _PLACE_ZONES_AT.get(memo_key)) is not None:
            return found
        decision = _place_zone(location, configured, default, key)
        checks = start_offset_check(appointment_start, decision.zone)
        consults_patient = decision.source == "default" and any(
            c.startswith(OFFSET_DISAGREES) for c in checks
        )
        if key is not None and not consults_patient:
            if checks:
                decision = ZoneDecision(decision.zone, decision.source, (*decision.notes, *checks))
            return _PLACE_ZONES_AT.put(memo_key, decision)
        if consults_patient:
            # Nothing about the place says where it is, and the EHR wrote the start in
            # another offset: the patient's own zone, if it agrees with that offset, is a
            # better answer than the organisation's default (the offset is still only a check).
            home = recipient_at(self._patient(), decision)
            if home.source.startswith("patient") and start_offset_check(
                appointment_start, home.zone
            ) == [OFFSET_AGREES]:
                return ZoneDecision(home.zone, f"{home.source}-matching-start", (OFFSET_AGREES,))
        if not checks:
            return decision
        return ZoneDecision(decision.zone, decision.source, (*decision.notes, *checks))

    def recipient_decision(
        self, location_ref: str | None = None, appointment_start: Any = None
    ) -> ZoneDecision:
        """Where the patient reads messages: Patient zone or home address, else the place."""
        place = self.place_zone(location_ref, appointment_start)
        key = (place.zone.key, place.source, place.notes)
        recipients = self._worked_out.recipients
        found = recipients.get(key)
        if found is None:
            patient = self._patient()
            if patient is PATIENT_SAYS_NOTHING:
                found = _RECIPIENTS_AT_PLACE.get(key)
                if found is None:
                    found = _RECIPIENTS_AT_PLACE.put(key, self._recipient_at(patient, place))
            else:
                found = self._recipient_at(patient, place)
            recipients[key] = found
        return found

    @staticmethod
    def _recipient_at(patient: PatientZone, place: ZoneDecision) -> ZoneDecision:
        found = recipient_at(patient, place)
        if found.source != place.source:
            notes = dict.fromkeys((*place.notes, *found.notes))
            found = ZoneDecision(found.zone, found.source, tuple(notes))
        return found

    def _patient(self) -> PatientZone:
        """What the Patient says about their zone, read once per planning run."""
        worked_out = self._worked_out
        if worked_out.patient_zone is None:
            worked_out.patient_zone = patient_zone(self.snapshot.patient, today=self.now.date())
        return worked_out.patient_zone

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
        result = classify_sensitivity(
            [*resources, *referenced.values()], self.config.privacy, self._findings_of
        )
        return bool(result.sensitive), tuple(result.reasons)

    def _content_key(self, resource: Mapping[str, Any]) -> bytes | None:
        """:func:`rules.memo.content_key`, worked out once per resource per planning run
        (every memo about a shared resource is keyed by it). Equal keys are one object,
        so the memos that hold it compare it by identity rather than byte by byte."""
        content_keys = self._worked_out.content_keys
        found = content_keys.get(id(resource))
        if found is None or found[0] is not resource:
            key = content_key(resource)
            if key is not None:
                canonical = _KEYS.get(key)
                key = canonical if canonical is not None else _KEYS.put(key, key)
            found = content_keys[id(resource)] = (resource, key)
        return found[1]

    def _read(self, resource: Mapping[str, Any]) -> _Read:
        """A resource's references and sensitivity findings, once per planning run.

        A shared resource (a Location...) is looked up by its content; any other is
        walked once for both (:func:`rules.privacy.read_resource`).
        """
        reads = self._worked_out.reads
        found = reads.get(id(resource))
        if found is not None and found[0] is resource:
            return found
        policy = self.config.privacy
        if resource.get("resourceType") in REFERENCED_TYPES:
            key = self._content_key(resource)
            references = remembered_references_of(resource, key)
            found = (resource, references, shared_findings(resource, policy, key))
        elif (read := read_resource(resource, policy)) is not None:
            found = (resource, read[1], read[0])
        else:
            found = (resource, references_of(resource), None)
        reads[id(resource)] = found
        return found

    def _references_of(self, resource: Mapping[str, Any]) -> list[str]:
        found = self._worked_out.reads.get(id(resource))
        return (found if found is not None and found[0] is resource else self._read(resource))[1]

    def _findings_of(self, resource: Mapping[str, Any]) -> ResourceFindings | None:
        found = self._worked_out.reads.get(id(resource))
        return (found if found is not None and found[0] is resource else self._read(resource))[2]
