"""SQL for resource state, watermarks and our Subscription records."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fhir_bridge.store.models import InboxNotification, ResourceState, Subscription, Watermark
from rules.resource_types import PLANNED_TYPES


def get_state(session: Session, resource_type: str, resource_id: str) -> ResourceState | None:
    return session.get(ResourceState, (resource_type, resource_id))


def get_states(session: Session, references: Collection[str]) -> dict[str, ResourceState]:
    """The stored rows of several ``Type/id`` references, in one statement (absent: left out)."""
    keys = {tuple(reference.split("/", 1)) for reference in references if "/" in reference}
    if not keys:
        return {}
    rows = session.scalars(
        select(ResourceState).where(
            tuple_(ResourceState.resource_type, ResourceState.resource_id).in_(sorted(keys))
        )
    )
    return {f"{row.resource_type}/{row.resource_id}": row for row in rows}


def get_state_for_update(
    session: Session, resource_type: str, resource_id: str
) -> ResourceState | None:
    """Row-locked read on PostgreSQL so concurrent versions of one resource serialise.

    Always reads the row as committed now (``populate_existing``), never a copy the
    session loaded before the lock was taken.
    """
    return session.scalar(
        select(ResourceState)
        .where(
            ResourceState.resource_type == resource_type,
            ResourceState.resource_id == resource_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _state_values(
    resource: dict[str, Any],
    version_id: str | None,
    last_updated: datetime | None,
    patient_ref: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "resource_type": resource["resourceType"],
        "resource_id": resource["id"],
        "body": resource,
        "version_id": version_id,
        "last_updated": last_updated,
        "patient_ref": patient_ref,
        "stored_at": now,
    }


def _insert(session: Session) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT`` (PostgreSQL and SQLite alike)."""
    dialect = session.get_bind().dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(ResourceState)


def insert_state_if_absent(
    session: Session,
    *,
    resource: dict[str, Any],
    version_id: str | None,
    last_updated: datetime | None,
    patient_ref: str | None,
    now: datetime,
) -> bool:
    """``INSERT … ON CONFLICT DO NOTHING``; True when this call created the row.

    False means another transaction stored this resource first (on PostgreSQL the
    insert waits for that transaction to end): lock its row and compare versions.
    """
    values = _state_values(resource, version_id, last_updated, patient_ref, now)
    statement = (
        _insert(session)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(ResourceState.resource_id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def save_state(
    session: Session,
    existing: ResourceState | None,
    *,
    resource: dict[str, Any],
    version_id: str | None,
    last_updated: datetime | None,
    patient_ref: str | None,
    now: datetime,
) -> None:
    """Store a resource version unconditionally (callers decided it is the one to keep).

    With ``existing`` (a row this transaction locked or loaded) the row is updated;
    without, ``INSERT … ON CONFLICT DO UPDATE``, so a concurrent insert of the same
    resource never raises a unique violation.
    """
    values = _state_values(resource, version_id, last_updated, patient_ref, now)
    if existing is not None:
        existing.body = resource
        existing.version_id = version_id
        existing.last_updated = last_updated
        existing.patient_ref = patient_ref
        existing.stored_at = now
        session.add(existing)
        return
    changes = {k: v for k, v in values.items() if k not in ("resource_type", "resource_id")}
    statement = (
        _insert(session)
        .values(**values)
        .on_conflict_do_update(index_elements=["resource_type", "resource_id"], set_=changes)
    )
    session.execute(statement, execution_options={"synchronize_session": False})
    loaded = session.identity_map.get(
        session.identity_key(ResourceState, (values["resource_type"], values["resource_id"]))
    )
    if loaded is not None:
        session.expire(loaded)


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


def get_subscriptions(session: Session, subscription_ids: Collection[str]) -> list[Subscription]:
    return list(session.scalars(select(Subscription).where(Subscription.id.in_(subscription_ids))))


def get_subscription_for_update(session: Session, subscription_id: str) -> Subscription | None:
    """Row-locked read (PostgreSQL) of a Subscription as committed now."""
    return session.scalar(
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


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


# Notifications that will be (or were) applied: a rejected or abandoned one vouches for
# nothing (its events are recovered from the EHR when it ends that way).
_APPLYING = ("pending", "processing", "done")


def stored_event_ranges(
    session: Session, subscription_id: str, first: int, last: int
) -> list[tuple[int, int]]:
    """Event-number ranges of stored notifications of this Subscription overlapping
    ``first``..``last`` (the inbox vouches for those numbers)."""
    rows = session.execute(
        select(InboxNotification.event_first, InboxNotification.event_last).where(
            InboxNotification.subscription_id == subscription_id,
            InboxNotification.event_last >= first,
            InboxNotification.event_first <= last,
            InboxNotification.status.in_(_APPLYING),
        )
    )
    return [(row.event_first, row.event_last) for row in rows]


def advance_events(
    session: Session, subscription_id: str, through: int, good_through: datetime | None
) -> None:
    """Raise ``events_through`` (and ``good_through``) to at least these, in one statement.

    Atomic under concurrent workers: two notifications of one Subscription applied at once
    each raise the counters to the larger value, never lower what the other wrote.
    """
    values: dict[Any, Any] = {
        Subscription.events_through: case(
            (Subscription.events_through < through, through),
            else_=Subscription.events_through,
        )
    }
    if good_through is not None:
        values[Subscription.good_through] = case(
            (
                Subscription.good_through.is_(None) | (Subscription.good_through < good_through),
                good_through,
            ),
            else_=Subscription.good_through,
        )
    session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )
