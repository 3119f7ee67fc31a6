"""SQL for staff answers: the inbox item being answered, with the reply it came from."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_bridge.store.models import InboundMessage, StaffInboxItem


def inbox_item(
    session: Session, item_id: int, patient_ref: str
) -> tuple[StaffInboxItem, InboundMessage | None] | None:
    """One of the patient's inbox items and its reply; ``None`` if not theirs (or none)."""
    row = session.execute(
        select(StaffInboxItem, InboundMessage)
        .outerjoin(InboundMessage, InboundMessage.id == StaffInboxItem.inbound_id)
        .where(StaffInboxItem.id == item_id, StaffInboxItem.patient_ref == patient_ref)
    ).first()
    return (row[0], row[1]) if row is not None else None
