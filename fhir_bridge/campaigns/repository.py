"""All SQL of campaigns: the campaign rows, their runs, and the counts of their messages.

``CampaignLifecycle`` is the one owner of ``Campaign.status``: each transition is one
conditional ``UPDATE … WHERE id = :id AND status IN (…)`` that says whether it won.
Messages stay owned by ``MessageLifecycle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from fhir_bridge.store.models import (
    Campaign,
    CampaignRun,
    CampaignStatus,
    InboundMessage,
    LedgerEntry,
    PlannedMessage,
)
from rules.campaigns import CAMPAIGN_KEY_PREFIX

C = CampaignStatus


class CampaignLifecycle:
    """draft → approved → running ↔ paused → done | cancelled, each a conditional UPDATE."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def _move(self, campaign_id: str, allowed: ColumnElement[bool], **values: Any) -> bool:
        result = self._session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, allowed)
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def approve(self, campaign_id: str, *, by: str, now: datetime) -> bool:
        """``draft`` → ``approved`` by someone other than who drafted it."""
        return self._move(
            campaign_id,
            (Campaign.status == C.DRAFT.value) & (Campaign.drafted_by != by),
            status=C.APPROVED.value,
            approved_by=by,
            approved_at=now,
            updated_at=now,
        )

    def start_run(
        self, campaign_id: str, *, run: int, next_run_at: datetime | None, now: datetime
    ) -> bool:
        """``approved``/``running`` → ``running`` with run number ``run`` (claims the run)."""
        return self._move(
            campaign_id,
            Campaign.status.in_((C.APPROVED.value, C.RUNNING.value)) & (Campaign.runs == run - 1),
            status=C.RUNNING.value,
            runs=run,
            next_run_at=next_run_at,
            started_at=func.coalesce(Campaign.started_at, now),
            updated_at=now,
        )

    def pause(self, campaign_id: str, now: datetime) -> bool:
        return self._move(
            campaign_id, Campaign.status == C.RUNNING.value, status=C.PAUSED.value, updated_at=now
        )

    def resume(self, campaign_id: str, now: datetime) -> bool:
        return self._move(
            campaign_id, Campaign.status == C.PAUSED.value, status=C.RUNNING.value, updated_at=now
        )

    def cancel(self, campaign_id: str, now: datetime) -> bool:
        open_ = (C.DRAFT.value, C.APPROVED.value, C.RUNNING.value, C.PAUSED.value)
        return self._move(
            campaign_id,
            Campaign.status.in_(open_),
            status=C.CANCELLED.value,
            finished_at=now,
            updated_at=now,
        )

    def finish(self, campaign_id: str, now: datetime) -> bool:
        return self._move(
            campaign_id,
            Campaign.status == C.RUNNING.value,
            status=C.DONE.value,
            finished_at=now,
            next_run_at=None,
            updated_at=now,
        )


def add(session: Session, campaign: Campaign) -> None:
    session.add(campaign)


def get(session: Session, campaign_id: str) -> Campaign | None:
    return session.get(Campaign, campaign_id)


def due_campaigns(session: Session, now: datetime) -> list[tuple[str, int]]:
    """Running campaigns whose next run has come (cadence), each with that run's number."""
    query = (
        select(Campaign.id, Campaign.runs)
        .where(Campaign.status == C.RUNNING.value, Campaign.next_run_at <= now)
        .order_by(Campaign.next_run_at)
    )
    return [(str(campaign_id), int(runs) + 1) for campaign_id, runs in session.execute(query)]


def ended_campaigns(session: Session, now: datetime) -> list[str]:
    """Running campaigns past their end date (to be marked ``done``)."""
    query = select(Campaign.id).where(Campaign.status == C.RUNNING.value, Campaign.ends_at <= now)
    return list(session.scalars(query))


def add_run(session: Session, run: CampaignRun) -> None:
    session.add(run)


def _prefix(campaign_id: str) -> str:
    return f"{CAMPAIGN_KEY_PREFIX}{campaign_id}|"


def _of_campaign(campaign_id: str) -> ColumnElement[bool]:
    return PlannedMessage.key.startswith(_prefix(campaign_id), autoescape=True)


def message_ids(session: Session, campaign_id: str, statuses: Sequence[str]) -> list[str]:
    query = select(PlannedMessage.id).where(
        _of_campaign(campaign_id), PlannedMessage.status.in_(list(statuses))
    )
    return list(session.scalars(query))


def message_counts(session: Session, campaign_id: str) -> dict[str, int]:
    """Messages by status, ``delivered`` and ``replies`` (inbound SMS answering one)."""
    rows = session.execute(
        select(PlannedMessage.status, func.count())
        .where(_of_campaign(campaign_id))
        .group_by(PlannedMessage.status)
    ).all()
    counts = {str(status): int(n) for status, n in rows}
    counts["delivered"] = int(
        session.scalar(
            select(func.count()).where(
                _of_campaign(campaign_id), PlannedMessage.delivery_status == "delivered"
            )
        )
        or 0
    )
    counts["replies"] = int(
        session.scalar(
            select(func.count(InboundMessage.id)).where(
                InboundMessage.in_reply_to.in_(
                    select(PlannedMessage.id).where(_of_campaign(campaign_id))
                )
            )
        )
        or 0
    )
    return counts


def withheld_reasons(session: Session, campaign_id: str) -> dict[str, int]:
    rows = session.execute(
        select(PlannedMessage.reason, func.count())
        .where(_of_campaign(campaign_id), PlannedMessage.status == "withheld")
        .group_by(PlannedMessage.reason)
    ).all()
    return {str(reason): int(n) for reason, n in rows}


def open_messages_about(
    session: Session, patient_refs: Sequence[str], appointment_refs: Sequence[str]
) -> list[str]:
    """Open event-driven messages of these patients about these appointments."""
    wanted = set(appointment_refs)
    found: list[str] = []
    for start in range(0, len(patient_refs), 1000):
        rows = session.execute(
            select(PlannedMessage.id, PlannedMessage.about).where(
                PlannedMessage.patient_ref.in_(list(patient_refs[start : start + 1000])),
                PlannedMessage.status.in_(("planned", "queued")),
                ~PlannedMessage.key.startswith(CAMPAIGN_KEY_PREFIX),
            )
        ).all()
        found += [mid for mid, about in rows if wanted & {str(a) for a in about or []}]
    return found


def ledger_for_many(
    session: Session, patient_refs: Sequence[str], addresses: Sequence[str]
) -> list[LedgerEntry]:
    """Ledger entries of these patients or addresses (one query per 1000)."""
    found: list[LedgerEntry] = []
    for start in range(0, max(len(patient_refs), len(addresses)), 1000):
        refs = list(patient_refs[start : start + 1000])
        addrs = list(addresses[start : start + 1000])
        query = select(LedgerEntry).where(
            or_(LedgerEntry.patient_ref.in_(refs), LedgerEntry.address.in_(addrs))
        )
        found += list(session.scalars(query))
    return found


def existing_keys(session: Session, campaign_id: str, run: int) -> set[str]:
    prefix = f"{_prefix(campaign_id)}{run}|"
    query = select(PlannedMessage.key).where(PlannedMessage.key.startswith(prefix, autoescape=True))
    return set(session.scalars(query))


def runs(session: Session, campaign_id: str) -> list[CampaignRun]:
    query = (
        select(CampaignRun).where(CampaignRun.campaign_id == campaign_id).order_by(CampaignRun.run)
    )
    return list(session.scalars(query))


def campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.created_at)))
