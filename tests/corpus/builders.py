"""Builders for the acceptance corpus: R4 JSON shaped the way Epic, Cerner, athena and HAPI send it.

Used only by ``build_corpus.py`` to (re)write the Bundles under ``bundles/``; the tests read
the JSON files, never these functions, so the corpus is reviewable as data.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

TZ_EXTENSION = "http://hl7.org/fhir/StructureDefinition/timezone"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
BCP47 = "urn:ietf:bcp:47"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
EPIC_MRN = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
EPIC_CSN = "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8"
CERNER_MRN = "urn:oid:2.16.840.1.113883.6.1000"
ATHENA_MRN = "urn:oid:1.3.6.1.4.1.35424.1.1.1"
HAPI_MRN = "http://hospital.example.org/mrn"

BASES = {
    "epic": "https://fhir.riverside-health.example.org/api/FHIR/R4",
    "cerner": "https://fhir-ehr.cerner.example.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d",
    "athena": "https://api.platform.athenahealth.example.com/fhir/r4",
    "hapi": "http://hapi.riverside.example.org/fhir",
}


def opaque_id(flavor: str, seed: str) -> str:
    """An id the way each EHR mints them (Epic opaque, Cerner/HAPI numeric, athena dotted)."""
    digest = hashlib.sha256(seed.encode()).hexdigest()
    if flavor == "epic":
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        number = int(digest, 16)
        chars = []
        for _ in range(22):
            number, rest = divmod(number, len(alphabet))
            chars.append(alphabet[rest])
        return "e" + "".join(chars) + "3"
    if flavor == "athena":
        return f"a-1959031.{seed.split(':')[0].lower()}-{int(digest[:6], 16) % 90000 + 10000}"
    return str(int(digest[:8], 16) % 90_000_000 + 10_000_000)


def utc(local: str, zone: str) -> str:
    """The UTC instant (``...Z``) of a wall-clock time at a place."""
    moment = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_offset(local: str, zone: str) -> str:
    """The same instant written with its local UTC offset (as athena and HAPI often do)."""
    moment = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    return moment.isoformat(timespec="seconds")


def plus_minutes(instant: str, minutes: int) -> str:
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    later = moment + timedelta(minutes=minutes)
    text = later.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z")


def meta(
    version: str = "1", updated: str = "2026-11-20T15:02:11.000Z", **extra: Any
) -> dict[str, Any]:
    return {"versionId": version, "lastUpdated": updated, **extra}


def address(line: str, city: str, state: str, postal: str, use: str = "home") -> dict[str, Any]:
    return {
        "use": use,
        "type": "both",
        "line": [line],
        "city": city,
        "state": state,
        "postalCode": postal,
        "country": "US",
    }


def language(
    code: str | None = None, text: str | None = None, display: str | None = None
) -> dict[str, Any]:
    concept: dict[str, Any] = {}
    if code:
        coding: dict[str, Any] = {"system": BCP47, "code": code}
        if display:
            coding["display"] = display
        concept["coding"] = [coding]
    if text:
        concept["text"] = text
    return {"language": concept, "preferred": True}


def patient(
    pid: str,
    *,
    given: list[str],
    family: str,
    phone: str | None,
    home: dict[str, Any] | None,
    birth: str = "1979-06-14",
    gender: str = "female",
    email: str | None = None,
    communication: list[dict[str, Any]] | None = None,
    usual_given: list[str] | None = None,
    mrn_system: str = EPIC_MRN,
    mrn: str = "E4012",
    **extra: Any,
) -> dict[str, Any]:
    names: list[dict[str, Any]] = [{"use": "official", "family": family, "given": given}]
    if usual_given:
        names.append({"use": "usual", "given": usual_given})
    telecom: list[dict[str, Any]] = []
    if phone:
        telecom.append({"system": "phone", "value": phone, "use": "mobile", "rank": 1})
    if email:
        telecom.append({"system": "email", "value": email, "use": "home", "rank": 2})
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "meta": meta("4"),
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": mrn_system,
                "value": mrn,
            }
        ],
        "active": True,
        "name": names,
        "telecom": telecom,
        "gender": gender,
        "birthDate": birth,
    }
    if home:
        resource["address"] = [home]
    if communication is not None:
        resource["communication"] = communication
    resource.update(extra)
    return resource


def location(
    lid: str,
    name: str,
    *,
    addr: dict[str, Any] | None = None,
    position: tuple[float, float] | None = None,
    tz: str | None = None,
    alias: list[str] | None = None,
    phone: str | None = "(555) 010-0100",
    org: str | None = None,
    type_text: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Location", "id": lid, "meta": meta("2")}
    if tz:
        resource["extension"] = [{"url": TZ_EXTENSION, "valueCode": tz}]
    resource.update({"status": "active", "name": name, "mode": "instance"})
    if alias:
        resource["alias"] = alias
    if type_text:
        resource["type"] = [{"text": type_text}]
    if phone:
        resource["telecom"] = [{"system": "phone", "value": phone, "use": "work"}]
    if addr:
        resource["address"] = {k: v for k, v in addr.items() if k != "use"} | {"use": "work"}
    if position:
        resource["position"] = {"latitude": position[0], "longitude": position[1]}
    if org:
        resource["managingOrganization"] = {"reference": f"Organization/{org}"}
    return resource


def organization(oid: str, name: str, addr: dict[str, Any] | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": oid,
        "meta": meta("1"),
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                        "display": "Healthcare Provider",
                    }
                ]
            }
        ],
        "name": name,
    }
    if addr:
        resource["address"] = [{k: v for k, v in addr.items() if k != "use"} | {"use": "work"}]
    return resource


def practitioner(prid: str, given: str, family: str, suffix: str = "MD") -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": prid,
        "meta": meta("1"),
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given], "suffix": [suffix]}],
    }


def practitioner_role(
    rid: str,
    prid: str,
    *,
    specialty: dict[str, Any] | None = None,
    location_id: str | None = None,
    service_id: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "id": rid,
        "meta": meta("1"),
        "active": True,
        "practitioner": {"reference": f"Practitioner/{prid}"},
        "code": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
                        "code": "doctor",
                    }
                ]
            }
        ],
    }
    if specialty:
        resource["specialty"] = [specialty]
    if location_id:
        resource["location"] = [{"reference": f"Location/{location_id}"}]
    if service_id:
        resource["healthcareService"] = [{"reference": f"HealthcareService/{service_id}"}]
    return resource


def healthcare_service(
    sid: str,
    name: str,
    *,
    type_text: str,
    location_id: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": sid,
        "meta": meta("1"),
        "active": True,
        "type": [{"text": type_text}],
        "name": name,
    }
    if location_id:
        resource["location"] = [{"reference": f"Location/{location_id}"}]
    if comment:
        resource["comment"] = comment
    return resource


def concept(text: str | None = None, *codings: tuple[str, str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if codings:
        result["coding"] = [{"system": s, "code": c, "display": d} for s, c, d in codings]
    if text:
        result["text"] = text
    return result


def appointment(
    aid: str,
    pid: str,
    *,
    start: str,
    minutes: int = 20,
    location_id: str | None = None,
    practitioner_id: str | None = None,
    role_id: str | None = None,
    service_id: str | None = None,
    service_type: dict[str, Any] | None = None,
    appointment_type: str = "FOLLOWUP",
    reason: dict[str, Any] | None = None,
    description: str | None = None,
    comment: str | None = None,
    patient_instruction: str | None = None,
    patient_display: str | None = None,
    status: str = "booked",
    csn: str = "1000082451",
    base: str | None = None,
    security: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    prefix = f"{base}/" if base else ""
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": aid,
        "meta": meta("1") | ({"security": security} if security else {}),
        "identifier": [{"use": "usual", "system": EPIC_CSN, "value": csn}],
        "status": status,
    }
    if service_type:
        resource["serviceType"] = [service_type]
    resource["appointmentType"] = {
        "coding": [{"system": V2_0276, "code": appointment_type}],
    }
    if reason:
        resource["reasonCode"] = [reason]
    if description:
        resource["description"] = description
    start_moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    end = (start_moment + timedelta(minutes=minutes)).isoformat(timespec="seconds")
    resource["start"] = start
    resource["end"] = end.replace("+00:00", "Z") if start.endswith("Z") else end
    resource["minutesDuration"] = minutes
    if comment:
        resource["comment"] = comment
    if patient_instruction:
        resource["patientInstruction"] = patient_instruction
    actor: dict[str, Any] = {"reference": f"{prefix}Patient/{pid}"}
    if patient_display:
        actor["display"] = patient_display
    participants: list[dict[str, Any]] = [
        {"actor": actor, "required": "required", "status": "accepted"}
    ]
    for kind, ident in (
        ("Practitioner", practitioner_id),
        ("PractitionerRole", role_id),
        ("HealthcareService", service_id),
        ("Location", location_id),
    ):
        if ident:
            participants.append(
                {
                    "actor": {"reference": f"{prefix}{kind}/{ident}"},
                    "required": "required",
                    "status": "accepted",
                }
            )
    resource["participant"] = participants
    return resource


def medication_request(
    mid: str,
    pid: str,
    *,
    medication: dict[str, Any] | None = None,
    medication_ref: str | None = None,
    contained: list[dict[str, Any]] | None = None,
    authored: str = "2026-11-20",
    quantity: int = 30,
    days: int = 30,
    repeats: int = 2,
    practitioner_id: str | None = None,
    note: str | None = None,
    dosage_text: str = "Take 1 tablet by mouth once daily",
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "MedicationRequest", "id": mid, "meta": meta("1")}
    if contained:
        resource["contained"] = contained
    resource.update(
        {
            "identifier": [
                {
                    "use": "usual",
                    "system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268",
                    "value": "1066899",
                }
            ],
            "status": "active",
            "intent": "order",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                            "code": "community",
                            "display": "Community",
                        }
                    ]
                }
            ],
        }
    )
    if medication is not None:
        resource["medicationCodeableConcept"] = medication
    if medication_ref is not None:
        resource["medicationReference"] = {"reference": medication_ref}
    resource["subject"] = {"reference": f"Patient/{pid}"}
    resource["authoredOn"] = authored
    if practitioner_id:
        resource["requester"] = {"reference": f"Practitioner/{practitioner_id}"}
    if note:
        resource["note"] = [{"text": note}]
    resource["dosageInstruction"] = [{"sequence": 1, "text": dosage_text}]
    resource["dispenseRequest"] = {
        "validityPeriod": {"start": authored, "end": "2027-11-20"},
        "numberOfRepeatsAllowed": repeats,
        "quantity": {"value": quantity, "unit": "tablet"},
        "expectedSupplyDuration": {
            "value": days,
            "unit": "days",
            "system": "http://unitsofmeasure.org",
            "code": "d",
        },
    }
    return resource


def medication(med_id: str, text: str, *codings: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "resourceType": "Medication",
        "id": med_id,
        **({"meta": meta("1")} if not med_id.startswith("#") else {}),
        "code": concept(text, *codings),
        "status": "active",
    }


def encounter(
    eid: str,
    pid: str,
    *,
    class_code: str = "IMP",
    start: str,
    end: str,
    location_id: str | None = None,
    type_concept: dict[str, Any] | None = None,
    reason: dict[str, Any] | None = None,
    disposition: str = "home",
    admit_source: dict[str, Any] | None = None,
    service_provider: str | None = None,
    narrative: str | None = None,
    service_type: dict[str, Any] | None = None,
    security: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": eid,
        "meta": meta("5") | ({"security": security} if security else {}),
    }
    if narrative:
        resource["text"] = {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{narrative}</div>',
        }
    resource.update(
        {
            "identifier": [{"use": "usual", "system": EPIC_CSN, "value": "27558"}],
            "status": "finished",
            "class": {"system": ACT_CODE, "code": class_code},
        }
    )
    if type_concept:
        resource["type"] = [type_concept]
    if service_type:
        resource["serviceType"] = service_type
    resource["subject"] = {"reference": f"Patient/{pid}"}
    resource["period"] = {"start": start, "end": end}
    if reason:
        resource["reasonCode"] = [reason]
    hospitalization: dict[str, Any] = {
        "dischargeDisposition": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                    "code": disposition,
                }
            ]
        }
    }
    if admit_source:
        hospitalization["admitSource"] = admit_source
    resource["hospitalization"] = hospitalization
    if location_id:
        resource["location"] = [
            {"location": {"reference": f"Location/{location_id}"}, "status": "completed"}
        ]
    if service_provider:
        resource["serviceProvider"] = {"reference": f"Organization/{service_provider}"}
    return resource


def consent(
    cid: str, pid: str, *, permit: bool, channel: str, date: str = "2026-10-01T15:00:00Z"
) -> dict[str, Any]:
    """An EHR-recorded communication preference: permit or deny one channel for care messages."""
    return {
        "resourceType": "Consent",
        "id": cid,
        "meta": meta("1"),
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "dateTime": date,
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTIN" if permit else "OPTOUT",
                }
            ]
        },
        "provision": {
            "type": "permit" if permit else "deny",
            "period": {"start": date},
            "action": [
                {
                    "coding": [
                        {"system": "http://hl7.org/fhir/contact-point-system", "code": channel}
                    ]
                }
            ],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
        },
    }


def bundle(
    bid: str, flavor: str, resources: list[dict[str, Any]], timestamp: str
) -> dict[str, Any]:
    base = BASES[flavor]
    return {
        "resourceType": "Bundle",
        "id": bid,
        "meta": {"lastUpdated": timestamp},
        "type": "collection",
        "timestamp": timestamp,
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in resources
        ],
    }
