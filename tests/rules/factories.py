"""Builders for rules tests: realistic R4 fixtures, fresh copies, and snapshots.

Every helper returns new objects, so no test can leak changes into another.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from rules.config import DEFAULT_RULES_PATH, RulesConfig, load_rules_config, parse_rules_config
from rules.model import PatientSnapshot, Plan, SentRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rules"
PATIENT_ID = "eXbMln3hu0PfFrpv2HgVHyg3"
PATIENT_REF = f"Patient/{PATIENT_ID}"
LOCATION_REF = "Location/e4W4rmGe9QzuGm2Dy4NBqVc0"
TZ_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"


def load(name: str) -> dict[str, Any]:
    """A fresh copy of a JSON fixture from tests/fixtures/rules."""
    return copy.deepcopy(_read(name))


@cache
def _read(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def utc(text: str) -> datetime:
    """An aware UTC datetime from ``2026-11-23T12:00``."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def patient(**changes: Any) -> dict[str, Any]:
    """Maria (prefers Spanish) with top-level fields replaced; ``None`` removes a field."""
    return _changed(load("patient-maria.json"), changes)


def english_patient(**changes: Any) -> dict[str, Any]:
    """The same patient, preferring English."""
    resource = patient(**changes)
    resource["communication"] = [
        {
            "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US"}]},
            "preferred": True,
        }
    ]
    return resource


def appointment(
    start: str | None = "2026-12-01T15:30:00Z", ident: str | None = None, **changes: Any
) -> dict[str, Any]:
    """A booked follow-up at Riverside Family Medicine starting at ``start`` (UTC)."""
    resource = _changed(load("appointment-followup.json"), {"start": start})
    if ident is not None:
        resource["id"] = ident
    return _changed(resource, changes)


def medication_request(**changes: Any) -> dict[str, Any]:
    """Lisinopril 10 mg daily, 30 tablets, 2 repeats, authored 2026-11-02."""
    return _changed(load("medicationrequest-lisinopril.json"), changes)


def encounter(**changes: Any) -> dict[str, Any]:
    """An inpatient stay discharged home on 2026-11-20 17:30Z."""
    return _changed(load("encounter-inpatient.json"), changes)


def location(**changes: Any) -> dict[str, Any]:
    """Riverside Family Medicine, America/New_York."""
    return _changed(load("location-family-medicine.json"), changes)


def _changed(resource: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in changes.items():
        if value is None:
            resource.pop(key, None)
        else:
            resource[key] = value
    return resource


def snapshot(
    *resources: Mapping[str, Any],
    patient_resource: Mapping[str, Any] | None = None,
    history: Sequence[SentRecord] = (),
    locations: Mapping[str, Mapping[str, Any]] | None = None,
    english: bool = False,
) -> PatientSnapshot:
    """A snapshot of the fixture patient with the given resources."""
    if patient_resource is None:
        patient_resource = english_patient() if english else patient()
    return PatientSnapshot(
        patient_ref=PATIENT_REF,
        patient=patient_resource,
        resources=list(resources),
        history=list(history),
        referenced=dict(locations) if locations is not None else {LOCATION_REF: location()},
    )


def sent(key: str, at: str, purpose: str = "appointment-reminder") -> SentRecord:
    """A history record for a message already sent."""
    return SentRecord(key=key, rule=purpose, purpose=purpose, send_at=utc(at))


def default_config() -> RulesConfig:
    """The shipped rules (immutable, so sharing it between tests is safe)."""
    return _default_config()


@cache
def _default_config() -> RulesConfig:
    return load_rules_config(None)


def config_with(overrides: Mapping[str, Any]) -> RulesConfig:
    """The shipped rules with top-level sections deep-merged with ``overrides``."""
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    _merge(data, overrides)
    return parse_rules_config(yaml.safe_dump(data), name="test-rules.yaml")


def _merge(target: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def keys(plan: Plan) -> list[str]:
    """Planned message keys in send order."""
    return [message.key for message in plan.messages]


def withheld_reasons(plan: Plan) -> dict[str, str]:
    """Withheld key -> reason."""
    return {message.key: message.reason for message in plan.withheld}


def send_times(plan: Plan) -> dict[str, str]:
    """Planned key -> ISO UTC send time."""
    return {m.key: m.send_at.astimezone(UTC).isoformat() for m in plan.messages}
