"""Pure builders of R4 ``AuditEvent`` resources following IHE Basic Audit Log Patterns (BALP).

Each builder fills the BALP pattern of its event and validates the result with the strict
R4 (4.0.1) model (``fhirclient.models.auditevent``), so nothing we keep or push is invalid:

* a staff member opening a patient's panel: ``PatientRead`` (``rest``/``read``, action R);
* a change made for a patient (staff cancel, staff or SMS opt-in/out, a reply recorded):
  ``PatientCreate`` / ``PatientUpdate`` (``rest``/``create`` or ``update``, action C / U);
* a refused request: a DICOM "Security Alert" (110113), action E, a failure outcome whose
  description is the refusal's short code.

Agents: the person who asked (``fhirUser`` Practitioner, or the Patient for an SMS reply),
``requestor`` true; the client and server of the exchange in the BALP roles (the panel in
the browser, fhir-bridge, the EHR). ``source.observer`` is always fhir-bridge, identified by
its public URL. Entities: the patient, and the resource acted on (a reference, or an
identifier-only reference when the resource is ours or not written yet). No PHI values:
references, identifiers and codes only; the client's address is a network address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

BALP: Final = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL: Final = "http://hl7.org/fhir/restful-interaction"
PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
URI_IDENTIFIER: Final = "urn:ietf:rfc:3986"

OUTCOME_SUCCESS: Final = "0"
OUTCOME_MINOR_FAILURE: Final = "4"
OUTCOME_SERIOUS_FAILURE: Final = "8"

# BALP agent roles: the client of a read receives data (Destination), of a change sends it.
SOURCE_ROLE: Final = {"system": DCM, "code": "110153", "display": "Source Role ID"}
DESTINATION_ROLE: Final = {"system": DCM, "code": "110152", "display": "Destination Role ID"}
SECURITY_ALERT: Final = {"system": DCM, "code": "110113", "display": "Security Alert"}
LOGIN: Final = {"system": DCM, "code": "110122", "display": "Login"}
RESTRICTED_FUNCTION: Final = {
    "system": DCM,
    "code": "110132",
    "display": "Use of Restricted Function",
}
REST: Final = {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}

Action = Literal["C", "R", "U", "D", "E"]
_INTERACTIONS: Final[dict[str, tuple[str, str]]] = {
    "C": ("create", "PatientCreate"),
    "U": ("update", "PatientUpdate"),
}


class InvalidAuditEvent(ValueError):
    """A built AuditEvent failed strict R4 validation (a bug here, never input data)."""


@dataclass(frozen=True)
class Observer:
    """fhir-bridge, the system recording the event, and the EHR it writes to."""

    base_url: str
    ehr_base_url: str | None = None

    def reference(self) -> dict[str, Any]:
        return {
            "identifier": {"system": URI_IDENTIFIER, "value": self.base_url},
            "display": "fhir-bridge",
        }


@dataclass(frozen=True)
class PanelClient:
    """The staff panel in a browser: the SMART client id and the address it connected from."""

    client_id: str
    address: str | None = None


def identified(resource_type: str, system: str, value: str) -> dict[str, Any]:
    """A reference by business identifier (ours, or a resource the EHR has not stored yet)."""
    return {"type": resource_type, "identifier": {"system": system, "value": value}}


def panel_opened(
    *,
    observer: Observer,
    recorded: datetime,
    staff_ref: str | None,
    patient_ref: str,
    client: PanelClient,
) -> dict[str, Any]:
    """BALP PatientRead: a staff member viewed one patient's outreach, consent and replies."""
    resource = _base(
        "PatientRead",
        event_type=REST,
        subtype=[{"system": RESTFUL, "code": "read", "display": "read"}],
        action="R",
        recorded=recorded,
        outcome=OUTCOME_SUCCESS,
        observer=observer,
    )
    resource["agent"] = [
        *_user(staff_ref, "IRCP", "information recipient"),
        _panel_agent(client, DESTINATION_ROLE, requestor=staff_ref is None),
        _server_agent(observer, SOURCE_ROLE),
    ]
    resource["entity"] = [_patient(patient_ref), _data({"reference": patient_ref})]
    return validated(resource)


def patient_change(
    *,
    observer: Observer,
    recorded: datetime,
    action: Literal["C", "U"],
    requestor_ref: str | None,
    patient_ref: str | None,
    target: dict[str, Any],
    client: PanelClient | None = None,
    what: str | None = None,
) -> dict[str, Any]:
    """BALP PatientCreate / PatientUpdate: something was created or changed for a patient
    (plain Create / Update when no patient is known, e.g. a reply from an unknown number).

    ``client`` is the panel for a staff action; without it fhir-bridge is the client and the
    EHR the server (an SMS reply or opt-out recorded on the patient's behalf). ``what`` is a
    short code naming the change (``cancel``, ``opt-out``, ``reply:confirm``…).
    """
    interaction, profile = _INTERACTIONS[action]
    resource = _base(
        profile if patient_ref else profile.removeprefix("Patient"),
        event_type=REST,
        subtype=[{"system": RESTFUL, "code": interaction, "display": interaction}],
        action=action,
        recorded=recorded,
        outcome=OUTCOME_SUCCESS,
        observer=observer,
    )
    agents = [*_user(requestor_ref, "AUT", "author")]
    if client is not None:
        agents += [
            _panel_agent(client, SOURCE_ROLE, requestor=requestor_ref is None),
            _server_agent(observer, DESTINATION_ROLE),
        ]
    else:
        agents.append(_server_agent(observer, SOURCE_ROLE))
        if observer.ehr_base_url:
            agents.append(_ehr_agent(observer.ehr_base_url))
    resource["agent"] = agents
    data = _data(target)
    if what:
        data["description"] = what
    resource["entity"] = [_patient(patient_ref), data] if patient_ref else [data]
    return validated(resource)


def request_refused(
    *,
    observer: Observer,
    recorded: datetime,
    code: str,
    status: int,
    route: str | None,
    staff_ref: str | None,
    patient_ref: str | None,
    client: PanelClient,
) -> dict[str, Any]:
    """A refused panel request: Security Alert, failure outcome, the refusal code as its
    description. Without a session the refusal is of a login (launch, callback, expired
    session); with one, of a restricted function. ``route`` is the route template, never the
    URL (which may carry a launch code or ``state``)."""
    resource = _base(
        None,
        event_type=SECURITY_ALERT,
        subtype=[LOGIN if staff_ref is None else RESTRICTED_FUNCTION],
        action="E",
        recorded=recorded,
        outcome=OUTCOME_SERIOUS_FAILURE if status >= 500 else OUTCOME_MINOR_FAILURE,
        observer=observer,
    )
    resource["outcomeDesc"] = code
    resource["agent"] = [
        *_user(staff_ref, "IRCP", "information recipient"),
        _panel_agent(client, SOURCE_ROLE, requestor=staff_ref is None),
        _server_agent(observer, DESTINATION_ROLE),
    ]
    entities: list[dict[str, Any]] = [_patient(patient_ref)] if patient_ref else []
    if route:
        entities.append(
            {
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "what": {"display": route},
                "description": "refused request",
            }
        )
    if entities:
        resource["entity"] = entities
    return validated(resource)


def validated(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource, once the strict R4 model accepts it."""
    from fhirclient.models.auditevent import AuditEvent
    from fhirclient.models.fhirabstractbase import FHIRValidationError

    try:
        AuditEvent(resource, strict=True)
    except FHIRValidationError as exc:
        raise InvalidAuditEvent(f"AuditEvent is not valid R4: {exc.errors[:1]}") from None
    return resource


@dataclass(frozen=True)
class Summary:
    """The searchable columns of an AuditEvent (what #13's ``/fhir/AuditEvent`` filters on)."""

    type_code: str
    subtype_code: str | None
    action: str | None
    outcome: str
    agent_ref: str | None
    patient_ref: str | None


def summarize(resource: dict[str, Any]) -> Summary:
    """Type, first subtype, action, outcome, the requestor's and the patient's references."""
    subtypes = resource.get("subtype") or []
    requestor = next((a for a in resource.get("agent") or [] if a.get("requestor")), None)
    patient = next(
        (
            e
            for e in resource.get("entity") or []
            if (e.get("role") or {}).get("code") == "1"
            and (e.get("role") or {}).get("system") == OBJECT_ROLE
        ),
        None,
    )
    return Summary(
        type_code=str(resource["type"]["code"]),
        subtype_code=str(subtypes[0]["code"]) if subtypes else None,
        action=resource.get("action"),
        outcome=str(resource["outcome"]),
        agent_ref=((requestor or {}).get("who") or {}).get("reference"),
        patient_ref=((patient or {}).get("what") or {}).get("reference"),
    )


def _base(
    profile: str | None,
    *,
    event_type: dict[str, str],
    subtype: list[dict[str, str]],
    action: Action,
    recorded: datetime,
    outcome: str,
    observer: Observer,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "AuditEvent"}
    if profile:
        resource["meta"] = {"profile": [BALP + profile]}
    resource.update(
        {
            "type": dict(event_type),
            "subtype": [dict(code) for code in subtype],
            "action": action,
            "recorded": _instant(recorded),
            "outcome": outcome,
            "source": {
                "site": observer.base_url,
                "observer": observer.reference(),
                "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
            },
        }
    )
    return resource


def _instant(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given for AuditEvent.recorded")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _user(reference: str | None, code: str, display: str) -> list[dict[str, Any]]:
    if not reference:
        return []
    return [
        {
            "type": {"coding": [{"system": PARTICIPATION, "code": code, "display": display}]},
            "who": {"reference": reference},
            "requestor": True,
        }
    ]


def _panel_agent(client: PanelClient, role: dict[str, str], *, requestor: bool) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [dict(role)]},
        "who": {"identifier": {"value": client.client_id}, "display": "fhir-bridge staff panel"},
        "requestor": requestor,
    }
    if client.address:
        agent["network"] = {"address": client.address, "type": "2"}
    return agent


def _server_agent(observer: Observer, role: dict[str, str]) -> dict[str, Any]:
    return {
        "type": {"coding": [dict(role)]},
        "who": observer.reference(),
        "requestor": False,
        "network": {"address": observer.base_url, "type": "5"},
    }


def _ehr_agent(ehr_base_url: str) -> dict[str, Any]:
    return {
        "type": {"coding": [dict(DESTINATION_ROLE)]},
        "who": {"identifier": {"system": URI_IDENTIFIER, "value": ehr_base_url}, "display": "EHR"},
        "requestor": False,
        "network": {"address": ehr_base_url, "type": "5"},
    }


def _patient(patient_ref: str) -> dict[str, Any]:
    return {
        "what": {"reference": patient_ref},
        "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
    }


def _data(what: dict[str, Any]) -> dict[str, Any]:
    return {
        "what": dict(what),
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
    }
