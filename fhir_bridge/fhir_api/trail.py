"""Every ``/fhir`` request, allowed or refused, recorded as an AuditEvent (IHE BALP).

Searches follow BALP Query (``rest``/``search``, action E, the query as an entity, base64);
reads and history follow BALP Read (``rest``/``read`` or ``vread``/``history-instance``,
action R, the resource as an entity). The auditor client is the requestor, identified by
its client id; fhir-bridge is the server and the observer. A refused request keeps its
failure outcome. Stored through the audit facility (``fhir_bridge.audit``), in the
transaction that answered the query.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session

from fhir_bridge.audit import events, service
from fhir_bridge.fhir_api.search import reference_token

Action = Literal["search", "read", "vread", "history-instance"]
QUERY: Action = "search"
READ: Action = "read"
AUDITOR_CLIENT_SYSTEM = "urn:fhir-bridge:auditor-client"
QUERY_ROLE = {"system": events.OBJECT_ROLE, "code": "24", "display": "Query"}


@dataclass(frozen=True)
class Context:
    action: Action
    resource_type: str
    path: str
    query: str
    address: str | None
    base_url: str


def record_query(
    session: Session,
    context: Context,
    client_id: str | None,
    body: dict[str, Any] | None,
    *,
    outcome: str,
    at: datetime,
) -> None:
    """Keep the AuditEvent of one request (``body`` is what was returned, if anything)."""
    observer = events.Observer(base_url=context.base_url)
    search = context.action == "search"
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "meta": {"profile": [events.BALP + ("Query" if search else "Read")]},
        "type": dict(events.REST),
        "subtype": [{"system": events.RESTFUL, "code": context.action, "display": context.action}],
        "action": "E" if search else "R",
        "recorded": events._instant(at),
        "outcome": outcome,
        "source": {
            "site": context.base_url,
            "observer": observer.reference(),
            "type": [{"system": events.SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "agent": [_client(client_id, context.address), _server(context.base_url)],
    }
    if outcome != events.OUTCOME_SUCCESS:
        resource["outcomeDesc"] = "refused"
    entities = []
    patient = _patient(context, body)
    if patient:
        entities.append(events._patient(patient))
    if search:
        entities.append(
            {
                "type": {"system": events.ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": dict(QUERY_ROLE),
                "description": context.path,
                "query": base64.b64encode(context.query.encode("utf-8")).decode("ascii"),
            }
        )
    else:
        entities.append(events._data({"reference": _target(context)}))
    resource["entity"] = entities
    service.record(session, events.validated(resource))


def _client(client_id: str | None, address: str | None) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [dict(events.DESTINATION_ROLE)]},
        "who": {
            "identifier": {"system": AUDITOR_CLIENT_SYSTEM, "value": client_id or "unknown"},
            "display": "auditor client",
        },
        "requestor": True,
    }
    if address:
        agent["network"] = {"address": address, "type": "2"}
    return agent


def _server(base_url: str) -> dict[str, Any]:
    return {
        "type": {"coding": [dict(events.SOURCE_ROLE)]},
        "who": events.Observer(base_url=base_url).reference(),
        "requestor": False,
        "network": {"address": base_url, "type": "5"},
    }


def _target(context: Context) -> str:
    """``Type/id`` (or ``Type/id/_history/v``) of a read, from its path under ``/fhir``."""
    return context.path.split("/fhir/", 1)[-1]


def _patient(context: Context, body: dict[str, Any] | None) -> str | None:
    """The one patient a request concerned, when it names exactly one."""
    if body is not None and body.get("resourceType") == context.resource_type:
        reference = (body.get("subject") or {}).get("reference")
        return str(reference) if reference and reference.startswith("Patient/") else None
    named = [
        value
        for name, value in parse_qsl(context.query)
        if name in ("subject", "patient") and "," not in value
    ]
    if len(named) != 1:
        return None
    token = reference_token(named[0]) if "/" in named[0] else None
    if token is None:
        return f"Patient/{named[0]}" if named[0].isalnum() or "-" in named[0] else None
    return f"Patient/{token.code}" if token.system == "Patient" else None
