"""Audiences for campaigns and broadcasts: who is in, decided from FHIR data (pure: no I/O).

An audience is declared in the rules file (``audiences:``) or built for a broadcast: the
shell (``fhir_bridge.campaigns.audience``) runs the FHIR searches and hands each patient's
resources here; :func:`evaluate` applies the filters and says whether the patient is in,
with the terms that put them there (so a message can be checked never to reveal them) and
the appointments that matched (a broadcast pauses their reminders).

Filters (all that are set must hold):

* ``age``: ``min``/``max`` whole years at ``now`` (no birth date: not in the audience);
* ``languages``: the patient's ``Patient.communication`` languages (any of them);
* ``appointments``: a booked/arrived/pending appointment between ``start`` and ``end``
  (absolute) or ``from_days``/``to_days`` (relative to now, negative in the past), at one of
  ``locations``, of one of ``service_types``, with one of ``practitioners``;
* ``conditions`` / ``medications``: an active Condition / MedicationRequest with one of
  these ``system|code`` tokens (a bare ``code`` matches any system);
* ``without_observation`` / ``without_procedure``: no Observation / Procedure with one of
  the codes in the last ``days`` (e.g. no HbA1c in 180 days).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

ACTIVE_APPOINTMENT_STATUSES = ("booked", "arrived", "pending", "checked-in")
REASON_NOT_IN_AUDIENCE = "not-in-audience"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgeRange(_Model):
    min: int | None = Field(default=None, ge=0, le=130)
    max: int | None = Field(default=None, ge=0, le=130)


class AppointmentFilter(_Model):
    start: datetime | None = None
    end: datetime | None = None
    from_days: int | None = None
    to_days: int | None = None
    locations: list[str] = Field(default_factory=list)
    service_types: list[str] = Field(default_factory=list)
    practitioners: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_window(self) -> AppointmentFilter:
        absolute = self.start is not None or self.end is not None
        relative = self.from_days is not None or self.to_days is not None
        if absolute == relative:
            raise ValueError("give start/end or from_days/to_days (one window)")
        for moment in (self.start, self.end):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("start/end need a UTC offset")
        return self

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        if self.start is not None or self.end is not None:
            return (self.start or datetime.min.replace(tzinfo=now.tzinfo)), (
                self.end or datetime.max.replace(tzinfo=now.tzinfo)
            )
        return now + timedelta(days=self.from_days or 0), now + timedelta(days=self.to_days or 0)


class Lookback(_Model):
    codes: list[str] = Field(min_length=1)
    days: int = Field(ge=1, le=3650)


class AudienceDefinition(_Model):
    """One audience: FHIR search parameters for Patients plus the filters above."""

    description: str = ""
    patient_search: dict[str, str] = Field(default_factory=dict)
    age: AgeRange | None = None
    languages: list[str] = Field(default_factory=list)
    appointments: AppointmentFilter | None = None
    conditions: list[str] = Field(default_factory=list)
    medications: list[str] = Field(default_factory=list)
    without_observation: Lookback | None = None
    without_procedure: Lookback | None = None
    care_service_types: list[str] = Field(default_factory=list)
    """Preventive care: the Appointment service types (``system|code`` or ``code``) that
    count as booking the care (``fhir-bridge report --campaign``); not a filter."""

    def resource_types(self) -> list[str]:
        """Which resource types the shell must fetch besides Patient."""
        wanted = []
        if self.appointments is not None:
            wanted.append("Appointment")
        if self.conditions:
            wanted.append("Condition")
        if self.medications:
            wanted.append("MedicationRequest")
        if self.without_observation is not None:
            wanted.append("Observation")
        if self.without_procedure is not None:
            wanted.append("Procedure")
        return wanted


class CampaignsConfig(_Model):
    """The ``campaigns:`` section: the tip library (``tip-<name>`` templates, used in turn)
    and the broadcast templates on offer (``broadcast-<name>``); checked when rules load
    (:func:`rules.campaigns.check_campaign_templates`)."""

    tips: list[str] = Field(default_factory=list)
    broadcasts: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Membership:
    """Whether one patient is in the audience; ``terms`` are what put them there."""

    member: bool
    failed: str | None = None
    terms: tuple[str, ...] = ()
    appointments: tuple[str, ...] = field(default=())


def _codings(concept: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    concept = concept or {}
    found = [
        (str(c.get("system") or ""), str(c.get("code") or ""), str(c.get("display") or ""))
        for c in concept.get("coding") or []
    ]
    if concept.get("text"):
        found.append(("", "", str(concept["text"])))
    return found


def _matches(concepts: Iterable[Mapping[str, Any] | None], tokens: Sequence[str]) -> list[str]:
    """The display words (and text) of the concepts with a coding in ``tokens``."""
    words: list[str] = []
    for concept in concepts:
        if _has_match([concept], tokens):
            words += [display for _, _, display in _codings(concept) if display]
    return words


def age_on(birth: str | None, today: date) -> int | None:
    if not birth or len(birth) < 4:
        return None
    try:
        born = date.fromisoformat(birth if len(birth) == 10 else f"{birth[:4]}-01-01")
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def patient_languages(patient: Mapping[str, Any]) -> set[str]:
    found = set()
    for item in patient.get("communication") or []:
        for _system, code, _display in _codings(item.get("language")):
            if code:
                found.add(code.lower().split("-")[0])
    return found


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _refs(appointment: Mapping[str, Any]) -> set[str]:
    refs = {
        str((p.get("actor") or {}).get("reference") or "")
        for p in appointment.get("participant") or []
    }
    return {ref.split("/_history")[0] for ref in refs if ref}


def _ref_in(refs: set[str], wanted: Sequence[str]) -> bool:
    return any(ref == w or ref.endswith("/" + w) for ref in refs for w in wanted)


def matching_appointments(
    resources: Sequence[Mapping[str, Any]], rule: AppointmentFilter, now: datetime
) -> list[Mapping[str, Any]]:
    """Active appointments in the window that meet the place, service and practitioner."""
    start, end = rule.window(now)
    found = []
    for resource in resources:
        if resource.get("resourceType") != "Appointment":
            continue
        if resource.get("status") not in ACTIVE_APPOINTMENT_STATUSES:
            continue
        begins = _when(resource.get("start"))
        if begins is None or not start <= begins < end:
            continue
        refs = _refs(resource)
        if rule.locations and not _ref_in(refs, rule.locations):
            continue
        if rule.practitioners and not _ref_in(refs, rule.practitioners):
            continue
        if rule.service_types and not _has_match(
            list(resource.get("serviceType") or []), rule.service_types
        ):
            continue
        found.append(resource)
    return found


def _active(resource: Mapping[str, Any], field_name: str, active: str) -> bool:
    value = resource.get(field_name)
    if isinstance(value, Mapping):
        return any(code == active for _, code, _ in _codings(value))
    return value == active


def _recent(
    resources: Sequence[Mapping[str, Any]], kind: str, rule: Lookback, now: datetime
) -> bool:
    since = now - timedelta(days=rule.days)
    for resource in resources:
        if resource.get("resourceType") != kind:
            continue
        if not _has_match([resource.get("code")], rule.codes):
            continue
        moment = _when(
            resource.get("effectiveDateTime")
            or resource.get("performedDateTime")
            or resource.get("issued")
            or (resource.get("performedPeriod") or {}).get("start")
        )
        if moment is not None and moment >= since:
            return True
    return False


def evaluate(
    definition: AudienceDefinition,
    patient: Mapping[str, Any] | None,
    resources: Sequence[Mapping[str, Any]],
    now: datetime,
) -> Membership:
    """Is this patient in the audience? Each failed filter is named (``age``, ``language``…)."""
    if patient is None or patient.get("active") is False or patient.get("deceasedBoolean"):
        return Membership(False, "patient")
    if patient.get("deceasedDateTime"):
        return Membership(False, "patient")
    terms: list[str] = []
    if definition.age is not None:
        age = age_on(patient.get("birthDate"), now.date())
        low, high = definition.age.min, definition.age.max
        if age is None or (low is not None and age < low) or (high is not None and age > high):
            return Membership(False, "age")
    if definition.languages:
        wanted = {code.lower().split("-")[0] for code in definition.languages}
        if not patient_languages(patient) & wanted:
            return Membership(False, "language")
    appointments: list[str] = []
    if definition.appointments is not None:
        found = matching_appointments(resources, definition.appointments, now)
        if not found:
            return Membership(False, "appointments")
        appointments = [f"Appointment/{a.get('id')}" for a in found]
    for kind, tokens, field_name, active in (
        ("Condition", definition.conditions, "clinicalStatus", "active"),
        ("MedicationRequest", definition.medications, "status", "active"),
    ):
        if not tokens:
            continue
        concepts = [
            r.get("code") or r.get("medicationCodeableConcept")
            for r in resources
            if r.get("resourceType") == kind and _active(r, field_name, active)
        ]
        if not _has_match(concepts, tokens):
            return Membership(False, kind.lower())
        terms += _matches(concepts, tokens)
    if definition.without_observation is not None and _recent(
        resources, "Observation", definition.without_observation, now
    ):
        return Membership(False, "recent-observation")
    if definition.without_procedure is not None and _recent(
        resources, "Procedure", definition.without_procedure, now
    ):
        return Membership(False, "recent-procedure")
    return Membership(True, None, tuple(dict.fromkeys(terms)), tuple(appointments))


def _has_match(concepts: Sequence[Mapping[str, Any] | None], tokens: Sequence[str]) -> bool:
    return any(
        (f"{system}|{code}" in tokens or code in tokens) and code
        for concept in concepts
        for system, code, _ in _codings(concept)
    )


def reveals(text: str, terms: Sequence[str]) -> str | None:
    """The first audience term found in ``text`` (case-insensitive), else None."""
    lowered = text.lower()
    for term in terms:
        for word in (term.lower(), *term.lower().split()):
            if len(word) >= 5 and word in lowered:
                return term
    return None
