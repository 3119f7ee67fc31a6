"""SQL the staff actions need beyond ``fhir_bridge.outreach.repository``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from fhir_bridge.outreach.repository import OPEN_STATUSES
from fhir_bridge.store.models import PlannedMessage


def cancel_if_open(
    session: Session,
    message_id: str,
    *,
    reason: str,
    trace: dict[str, Any],
    now: datetime,
) -> bool:
    """Conditional update: cancel only while still planned/queued (a worker may be sending it)."""
    result = session.execute(
        update(PlannedMessage)
        .where(PlannedMessage.id == message_id, PlannedMessage.status.in_(OPEN_STATUSES))
        .values(status="cancelled", reason=reason, lease_until=None, trace=trace, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
