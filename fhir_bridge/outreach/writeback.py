"""Writing a message's Communication to the EHR, exactly once.

``If-None-Exist`` on our business identifier makes the create idempotent on the
EHR side; the row's ``communication_status`` makes it idempotent on ours.

No database lock is held across the EHR call: one short transaction reads the row
and builds the Communication, the EHR is called with none open, and a second short
transaction records the result with a conditional update (``pending`` -> ``written``).
Two writers racing both reach the same Communication (``If-None-Exist``); one records it.

A message withheld so that staff call the patient instead (``staff-call-instead``)
also gets an urgent ``Task``, written after its Communication (which it cites) and
before the row is marked written, with its own derived identifier: a retry after a
failure in between re-finds both instead of doubling either.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.fhir.client import EhrClient
from fhir_bridge.fhir_api.repository import record_version
from fhir_bridge.inbound.resources import task_query, task_resource
from fhir_bridge.outreach import repository
from fhir_bridge.outreach.communication import (
    WritebackOptions,
    build_communication,
    identifier_search,
    needs_staff_call,
    staff_call_request,
)
from fhir_bridge.store.db import transaction

log = logging.getLogger(__name__)


def write_communication(
    factory: sessionmaker[Session],
    ehr: EhrClient,
    message_id: str,
    options: WritebackOptions,
    *,
    ehr_writes: bool = True,
) -> str:
    """Create the Communication if still pending; returns written / already / missing.

    With ``ehr_writes`` off (an EHR refusing Communication writes) nothing is sent to the
    EHR: the version is only recorded here, where the read-only FHIR API serves it.
    """
    with transaction(factory) as session:
        message = repository.get(session, message_id)
        if message is None:
            return "missing"
        if message.communication_status != "pending":
            return "already"
        resource = build_communication(message, options)
        staff_call = needs_staff_call(message)
    # The row is read and released: the EHR calls below hold no database lock.
    created = (
        ehr.create(resource, if_none_exist=identifier_search(message.id, options))
        if ehr_writes
        else {}
    )
    communication_id = created.get("id")
    if staff_call:
        reason_ref = f"Communication/{communication_id}" if communication_id else None
        request = staff_call_request(message, options, reason_ref)
        task = ehr.create(task_resource(request), if_none_exist=task_query(request))
        log.warning(
            "staff call requested instead of a check-in",
            extra={
                "message_id": message.id,
                "resource_type": "Task",
                "resource_id": task.get("id"),
            },
        )
    with transaction(factory) as session:
        won = repository.mark_communication_written(session, message_id, communication_id)
        if won:  # the version the read-only FHIR API serves, recorded with the write
            record_version(session, resource, ehr_id=communication_id, ehr_version=_vid(created))
    if not won:
        return "already"
    log.info(
        "wrote Communication/%s for message %s",
        communication_id,
        message_id,
        extra={
            "message_id": message_id,
            "communication_id": communication_id,
            "status": resource["status"],
        },
    )
    return "written"


def _vid(stored: dict[str, Any]) -> str | None:
    version = (stored.get("meta") or {}).get("versionId")
    return str(version) if version is not None else None
