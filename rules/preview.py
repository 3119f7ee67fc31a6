"""Dry runs: what the rules would send for a resource or Bundle, when, where and why.

Staff and implementers use this to check a rules change against real exported
resources before deploying it; nothing is sent and nothing is stored. Addresses
are masked in the output because it often ends up pasted into tickets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rules.config import RulesConfig
from rules.consent import mask_address
from rules.engine import plan_for_patient
from rules.fhir_json import ref_of, reference_of, same_reference
from rules.model import PlannedMessage, PreparedDelivery, WithheldMessage
from rules.outreach import prepare_delivery
from rules.resource_types import PLANNED_TYPES as _PLANNED
from rules.snapshot import build_snapshot, bundle_lookup, one_at_a_time
from rules.templates import UNSUBSCRIBE_PLACEHOLDER, with_unsubscribe_line
from rules.timing import zone_or_none

PLANNED_TYPES = frozenset(_PLANNED)


class PreviewInputError(ValueError):
    """The input is not a FHIR resource or Bundle the preview can use."""


@dataclass
class _PatientInput:
    patient_ref: str
    patient: Mapping[str, Any] | None = None
    resources: list[Mapping[str, Any]] = field(default_factory=list)
    consents: list[Mapping[str, Any]] = field(default_factory=list)


def _resources(document: Any) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping) or "resourceType" not in document:
        raise PreviewInputError("input is not a FHIR resource (no resourceType)")
    if document["resourceType"] != "Bundle":
        return [document]
    found = [entry.get("resource") for entry in document.get("entry") or ()]
    return [resource for resource in found if isinstance(resource, Mapping)]


def _patients_of(resource: Mapping[str, Any]) -> list[str]:
    kind = resource.get("resourceType")
    if kind == "Appointment":
        actors = [reference_of(p.get("actor")) for p in resource.get("participant") or ()]
        return [_relative(a) for a in actors if a and "Patient/" in a]
    field_name = "patient" if kind == "Consent" else "subject"
    reference = reference_of(resource.get(field_name))
    return [_relative(reference)] if reference and "Patient/" in reference else []


def _relative(reference: str) -> str:
    return reference[reference.rindex("Patient/") :]


def split_by_patient(resources: Sequence[Mapping[str, Any]]) -> list[_PatientInput]:
    """Group a Bundle's resources into one input per patient."""
    inputs: dict[str, _PatientInput] = {}
    for resource in resources:
        if resource.get("resourceType") == "Patient":
            entry = inputs.setdefault(ref_of(resource), _PatientInput(ref_of(resource)))
            entry.patient = resource
    for resource in resources:
        kind = resource.get("resourceType")
        if kind not in PLANNED_TYPES and kind != "Consent":
            continue
        for patient_ref in _patients_of(resource):
            key = next((k for k in inputs if same_reference(patient_ref, k)), patient_ref)
            entry = inputs.setdefault(key, _PatientInput(key))
            (entry.consents if kind == "Consent" else entry.resources).append(resource)
    return list(inputs.values())


def _local(moment: datetime, trace: Mapping[str, Any]) -> str:
    zone = zone_or_none(trace.get("zone"))
    return moment.astimezone(zone).isoformat() if zone else moment.isoformat()


def _withheld_entry(item: WithheldMessage, send_at: datetime | None) -> dict[str, Any]:
    return {
        "status": "withheld",
        "key": item.key,
        "rule": item.rule,
        "purpose": item.purpose,
        "patient": item.patient_ref,
        "about": list(item.about),
        "send_at": send_at.isoformat() if send_at else None,
        "reason": item.reason,
        "detail": item.detail,
        "trace": dict(item.trace),
    }


def _planned_entry(
    message: PlannedMessage, outcome: PreparedDelivery | WithheldMessage
) -> dict[str, Any]:
    if isinstance(outcome, WithheldMessage):
        return _withheld_entry(outcome, message.send_at)
    rendered = outcome.rendered
    text = rendered.text
    if outcome.channel == "email":
        text = with_unsubscribe_line(text, UNSUBSCRIBE_PLACEHOLDER)
    return {
        "status": "planned",
        "key": message.key,
        "rule": message.rule,
        "purpose": message.purpose,
        "patient": message.patient_ref,
        "about": list(message.about),
        "send_at": message.send_at.isoformat(),
        "send_at_local": _local(message.send_at, message.trace),
        "channel": outcome.channel,
        "address": mask_address(outcome.address),
        "template": rendered.template,
        "language": rendered.language,
        "subject": rendered.subject,
        "text": text,
        "html": rendered.html,
        "segments": rendered.segments,
        "consent_used": list(outcome.consent_used),
        "trace": dict(message.trace) | {"delivery": dict(outcome.trace)},
    }


def preview(document: Any, config: RulesConfig, now: datetime) -> list[dict[str, Any]]:
    """Every message the rules would plan or withhold for the document, as plain data.

    Each planned message is also taken through :func:`prepare_delivery` as of its
    send time (consent, contact, protections, rendering), without sending.
    """
    resources = _resources(document)
    lookup = one_at_a_time(bundle_lookup(resources))
    results: list[dict[str, Any]] = []
    for item in split_by_patient(resources):
        snapshot = build_snapshot(
            patient_ref=item.patient_ref,
            patient=item.patient,
            resources=item.resources,
            lookup=lookup,
        )
        plan = plan_for_patient(snapshot, config, now)
        for message in plan.messages:
            outcome = prepare_delivery(
                message, snapshot, item.consents, (), config, message.send_at
            )
            results.append(_planned_entry(message, outcome))
        results.extend(_withheld_entry(w, None) for w in plan.withheld)
    return results


def describe(results: Sequence[Mapping[str, Any]]) -> str:
    """The preview as text a person reads top to bottom."""
    if not results:
        return "Nothing to send: no appointments, refills or discharges found for any patient.\n"
    lines: list[str] = []
    for entry in results:
        if entry["status"] == "planned":
            lines.append(
                f"SEND {entry['send_at_local']} via {entry['channel']} to {entry['address']}"
                f"  [{entry['key']}]"
            )
            if entry.get("subject"):
                lines.append(f"  subject: {entry['subject']}")
            text = str(entry["text"]).strip().replace("\n", "\n        ")
            lines.append(f"  text: {text}")
            lines.append(f"  why: {_why(entry['trace'])}")
        else:
            when = f" (was due {entry['send_at']})" if entry.get("send_at") else ""
            lines.append(f"WITHHELD {entry['key']}: {entry['reason']}{when}")
    return "\n".join(lines) + "\n"


def _why(trace: Mapping[str, Any]) -> str:
    parts = [f"rule {trace.get('rule')}"]
    if "offset" in trace:
        parts.append(f"offset {trace['offset']} ({trace.get('cadence_source', 'default')})")
    if "run_out" in trace:
        parts.append(f"fill {trace.get('fill')} runs out {trace['run_out']}")
    if trace.get("zone"):
        parts.append(f"zone {trace['zone']} from {trace.get('zone_source')}")
    if trace.get("quiet_hours"):
        parts.append(str(trace["quiet_hours"]))
    caps = trace.get("caps")
    if isinstance(caps, Mapping):
        day, week = caps["per_day"], caps["per_week"]
        parts.append(
            f"caps day {day['before']}/{day['limit']} week {week['before']}/{week['limit']}"
        )
    if trace.get("sensitive"):
        parts.append("sensitive: generic wording")
    return ", ".join(parts)
