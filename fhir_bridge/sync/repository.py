"""SQL for resource state, watermarks and our Subscription records."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_bridge.store.models import ResourceState, Subscription, Watermark

PLANNED_TYPES = ("Appointment", "MedicationRequest", "Encounter")


def get_state(session: Session, resource_type: str, resource_id: str) -> ResourceState | None:
    return session.get(ResourceState, (resource_type, resource_id))


def get_state_for_update(
    session: Session, resource_type: str, resource_id: str
) -> ResourceState | None:
    """Row-locked read on PostgreSQL so concurrent versions of one resource serialise."""
    return session.scalar(
        select(ResourceState)
        .where(
            ResourceState.resource_type == resource_type,
            ResourceState.resource_id == resource_id,
        )
        .with_for_update()
    )


def save_state(
    session: Session,
    existing: ResourceState | None,
    *,
    resource: dict[str, Any],
    version_id: str | None,
    last_updated: datetime | None,
    patient_ref: str | None,
    now: datetime,
) -> ResourceState:
    row = existing or ResourceState(
        resource_type=resource["resourceType"], resource_id=resource["id"]
    )
    row.body = resource
    row.version_id = version_id
    row.last_updated = last_updated
    row.patient_ref = patient_ref
    row.stored_at = now
    session.add(row)
    return row


def resources_for_patient(session: Session, patient_ref: str) -> Sequence[ResourceState]:
    return list(
        session.scalars(
            select(ResourceState)
            .where(
                ResourceState.patient_ref == patient_ref,
                ResourceState.resource_type.in_(PLANNED_TYPES),
            )
            .order_by(ResourceState.resource_type, ResourceState.resource_id)
        )
    )


def get_watermark(session: Session, name: str) -> datetime | None:
    row = session.get(Watermark, name)
    return row.value if row else None


def set_watermark(session: Session, name: str, value: datetime) -> None:
    """Move a watermark forward (never back)."""
    row = session.get(Watermark, name)
    if row is None:
        session.add(Watermark(name=name, value=value))
    elif value > row.value:
        row.value = value


def get_subscription(session: Session, subscription_id: str) -> Subscription | None:
    return session.get(Subscription, subscription_id)


def list_subscriptions(session: Session) -> Sequence[Subscription]:
    return list(session.scalars(select(Subscription).order_by(Subscription.resource_type)))


def find_subscription(session: Session, resource_type: str, kind: str) -> Subscription | None:
    return session.scalar(
        select(Subscription).where(
            Subscription.resource_type == resource_type, Subscription.kind == kind
        )
    )


def resources_of_type(session: Session, resource_type: str) -> Sequence[ResourceState]:
    """Every resource of one type we hold (window polling re-checks those it no longer sees)."""
    return list(
        session.scalars(select(ResourceState).where(ResourceState.resource_type == resource_type))
    )
