"""SQL for health-tips invitations: when a patient was last invited, and which invitation a
YES from a number still answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fhir_bridge.store.models import MessageStatus, PlannedMessage
from rules.optin import INVITE_CHANNEL, INVITE_RULE

COUNTED_STATUSES = (
    MessageStatus.PLANNED.value,
    MessageStatus.QUEUED.value,
    MessageStatus.SENDING.value,
    MessageStatus.SENT.value,
    MessageStatus.UNKNOWN.value,
)
"""An invitation planned, on its way or sent counts against the period; one withheld,
cancelled or failed before reaching the patient does not."""


def last_invited_at(session: Session, patient_ref: str) -> datetime | None:
    """When the patient's newest counted invitation was planned (``None``: never)."""
    return session.scalar(
        select(func.max(PlannedMessage.created_at)).where(
            PlannedMessage.rule == INVITE_RULE,
            PlannedMessage.patient_ref == patient_ref,
            PlannedMessage.status.in_(COUNTED_STATUSES),
        )
    )


def last_invitation_to(session: Session, address: str) -> PlannedMessage | None:
    """The newest invitation sent (or possibly sent) by SMS to ``address``."""
    return session.scalar(
        select(PlannedMessage)
        .where(
            PlannedMessage.rule == INVITE_RULE,
            PlannedMessage.channel == INVITE_CHANNEL,
            PlannedMessage.address == address,
            PlannedMessage.status.in_((MessageStatus.SENT.value, MessageStatus.UNKNOWN.value)),
        )
        .order_by(PlannedMessage.sent_at.desc(), PlannedMessage.created_at.desc())
        .limit(1)
    )
