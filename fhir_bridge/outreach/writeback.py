"""Writing a message's Communication to the EHR, exactly once.

``If-None-Exist`` on our business identifier makes the create idempotent on the
EHR side; the row's ``communication_status`` makes it idempotent on ours.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from fhir_bridge.fhir.client import EhrClient
from fhir_bridge.outreach import repository
from fhir_bridge.outreach.communication import (
    WritebackOptions,
    build_communication,
    identifier_search,
)

log = logging.getLogger(__name__)


def write_communication(
    session: Session, ehr: EhrClient, message_id: str, options: WritebackOptions
) -> str:
    """Create the Communication if still pending; returns written / already / missing."""
    message = repository.get_for_update(session, message_id)
    if message is None:
        return "missing"
    if message.communication_status != "pending":
        return "already"
    resource = build_communication(message, options)
    created = ehr.create(resource, if_none_exist=identifier_search(message.id, options))
    message.communication_id = created.get("id")
    message.communication_status = "written"
    log.info(
        "communication written",
        extra={
            "message_id": message.id,
            "communication_id": message.communication_id,
            "status": resource["status"],
        },
    )
    return "written"
