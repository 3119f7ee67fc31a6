"""What ``/fhir`` returns: resources as written, Bundles, the CapabilityStatement.

Everything is validated with the strict R4 (4.0.1) models of ``fhirclient`` before it
leaves, as the write-back validates the Communications it sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_bridge.fhir_api.search import (
    AUDIT_EVENT_PARAMS,
    AUDIT_EVENT_SORTS,
    COMMUNICATION_PARAMS,
    COMMUNICATION_SORTS,
    MAX_COUNT,
    SearchParam,
)
from fhir_bridge.store.models import AuditEventRecord, CommunicationVersion

FHIR_VERSION = "4.0.1"
# One list per fact: the resource types served, their search parameters and sorts.
SERVED: dict[str, tuple[tuple[SearchParam, ...], tuple[str, ...], bool]] = {
    # type: (search parameters, _sort values, has _history)
    "Communication": (COMMUNICATION_PARAMS, COMMUNICATION_SORTS, True),
    "AuditEvent": (AUDIT_EVENT_PARAMS, AUDIT_EVENT_SORTS, False),
}


class InvalidResponse(ValueError):
    """What we were about to return is not valid R4 (a bug; never shown with its content)."""


def instant(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def communication_resource(row: CommunicationVersion) -> dict[str, Any]:
    """The Communication as we sent it, under our id, version and time of recording."""
    body = {k: v for k, v in row.body.items() if k not in ("id", "meta")}
    meta: dict[str, Any] = {"versionId": str(row.version), "lastUpdated": instant(row.recorded_at)}
    tags = (row.body.get("meta") or {}).get("tag")
    if tags:
        meta["tag"] = tags
    return {"resourceType": "Communication", "id": row.resource_id, "meta": meta, **body}


def audit_event_resource(row: AuditEventRecord) -> dict[str, Any]:
    """An AuditEvent as recorded, under our id."""
    meta = {**(row.resource.get("meta") or {}), "lastUpdated": instant(row.recorded)}
    body = {k: v for k, v in row.resource.items() if k not in ("id", "meta")}
    return {"resourceType": "AuditEvent", "id": row.id, "meta": meta, **body}


def bundle(
    kind: str,
    entries: list[dict[str, Any]],
    *,
    base: str,
    self_url: str,
    next_url: str | None = None,
    total: int | None = None,
    timestamp: datetime,
) -> dict[str, Any]:
    """A ``searchset`` or ``history`` Bundle with ``self``/``next`` links and ``fullUrl``s."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    result: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": kind,
        "timestamp": instant(timestamp),
        "link": links,
    }
    if total is not None:
        result["total"] = total
    result["entry"] = [_entry(kind, base, resource) for resource in entries]
    if not result["entry"]:
        del result["entry"]
    return result


def _entry(kind: str, base: str, resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{base}/{resource['resourceType']}/{resource['id']}"
    if kind == "searchset":
        return {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
    version = resource["meta"]["versionId"]
    method = "POST" if version == "1" else "PUT"
    return {
        "fullUrl": url,
        "resource": resource,
        "request": {"method": method, "url": f"{resource['resourceType']}/{resource['id']}"},
        "response": {"status": "201 Created" if method == "POST" else "200 OK"},
    }


def capability_statement(
    base: str, token_url: str, software_version: str, date: str
) -> dict[str, Any]:
    """What ``/fhir`` supports, generated from the parser's own tables."""
    resources = []
    for type_, (params, sorts, history) in SERVED.items():
        interactions = [{"code": "read"}, {"code": "search-type"}]
        if history:
            interactions += [{"code": "vread"}, {"code": "history-instance"}]
        resources.append(
            {
                "type": type_,
                "interaction": interactions,
                "versioning": "versioned" if history else "no-version",
                "readHistory": history,
                "searchParam": [
                    {"name": p.name, "type": p.type, "documentation": p.documentation}
                    for p in params
                ],
                "extension": [
                    {
                        "url": "urn:fhir-bridge:search-sort",
                        "valueString": ",".join(sorts),
                    }
                ],
            }
        )
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "fhir-bridge",
        "kind": "instance",
        "software": {"name": "fhir-bridge", "version": software_version},
        "implementation": {
            "description": "Read-only FHIR API for auditors: Communications, AuditEvents",
            "url": base,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Result parameters: _count (at most "
                    f"{MAX_COUNT}), _sort, _summary=count, _format=json. Paging follows the "
                    "opaque next link. Any other parameter, modifier or malformed value is a 400."
                ),
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": token_url}],
                        }
                    ],
                },
                "resource": resources,
            }
        ],
    }
    return statement


def validate_r4(resource: dict[str, Any]) -> dict[str, Any]:
    """Refuse to return anything the strict R4 models reject."""
    from fhirclient.models.fhirabstractbase import FHIRValidationError
    from fhirclient.models.fhirelementfactory import FHIRElementFactory

    try:
        FHIRElementFactory.instantiate(resource["resourceType"], resource)
    except (FHIRValidationError, KeyError) as exc:
        raise InvalidResponse(f"{resource.get('resourceType')} is not valid R4") from exc
    return resource
