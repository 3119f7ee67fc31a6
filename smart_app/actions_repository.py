"""SQL for the staff consent actions recorded from the panel and their EHR outbox."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fhir_bridge.store.models import StaffConsentAction

PENDING = "pending"
WRITTEN = "written"


def add_consent_action(session: Session, row: StaffConsentAction) -> StaffConsentAction:
    session.add(row)
    session.flush()
    return row


def get_consent_action(session: Session, action_id: int) -> StaffConsentAction | None:
    return session.get(StaffConsentAction, action_id)


def pending_consent_actions(session: Session, limit: int) -> Sequence[int]:
    """Staff consent actions whose Consent is not yet in the EHR, oldest first."""
    return list(
        session.scalars(
            select(StaffConsentAction.id)
            .where(StaffConsentAction.ehr_status == PENDING)
            .order_by(StaffConsentAction.id)
            .limit(limit)
        )
    )


def mark_consent_written(session: Session, action_id: int, consent_ref: str) -> bool:
    """pending → written with the Consent's reference; False if another writer won."""
    won = session.execute(
        update(StaffConsentAction)
        .where(StaffConsentAction.id == action_id, StaffConsentAction.ehr_status == PENDING)
        .values(ehr_status=WRITTEN, consent_ref=consent_ref)
        .returning(StaffConsentAction.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return won is not None
