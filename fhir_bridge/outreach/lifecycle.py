"""The one owner of a planned message's status (issue #9.1).

Every change of ``PlannedMessage.status`` is a method of ``MessageLifecycle``: a
conditional ``UPDATE … WHERE id = :id AND <the states it may leave>`` that says
whether it won. Two actors racing for one row (a dispatcher and a worker, a worker
and the reconciler, re-planning and a send, staff and a worker) can therefore never
overwrite each other's decision: the loser gets ``False`` and leaves the row alone.
The fields that belong to a transition (reason, lease, Communication status) are
written in the same statement, so a row never shows half a transition.

    claim               planned (due) / queued (lease over)  → queued
    claim_batch         the same, for up to n due rows in one statement
    start_sending       queued                               → sending (commit before the call)
    mark_sent           sending / queued / unknown           → sent
    requeue             sending                              → queued (retry, next channel)
    fail                sending                              → failed
    settle_unknown      sending                              → unknown (never resent)
    confirm_sent        unknown without a provider id        → sent (a status callback)
    withhold            queued                               → withheld (at send time)
    cancel_if_open      planned / queued (+ provisional cap) → cancelled
    replan              replannable                          → planned
    withhold_on_replan  replannable                          → withheld
    insert_new          (new rows, in bulk)                  → planned / withheld
    cancel_open_many    planned / queued                     → cancelled (campaign paused)
    reopen_many         cancelled with that reason           → planned (campaign resumed)
    withhold_open_many  planned / queued                     → withheld (campaign cancelled,
                                                               reminders of a cancelling
                                                               broadcast)

``replannable`` is what re-planning may still decide: open, a provisional cap
decision, or cancelled by us rather than by staff. History (``sending``, ``sent``,
``unknown``) and final decisions are never touched by planning. A CHECK constraint
keeps the column to ``MessageStatus``, and ``tests/pipeline/test_message_status_owner.py``
reads the code base so that no other module writes the column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from fhir_bridge.store.models import (
    REASON_CANCELLED_BY_STAFF,
    CommunicationStatus,
    MessageStatus,
    PlannedMessage,
)
from rules.caps import REASON_CAP_REACHED

__all__ = [
    "FINAL_STATUSES",
    "HISTORY_STATUSES",
    "OPEN_STATUSES",
    "CommunicationStatus",
    "MessageLifecycle",
    "MessageStatus",
    "new_planned",
    "new_withheld",
    "replannable",
]


def _values(*statuses: MessageStatus) -> tuple[str, ...]:
    return tuple(status.value for status in statuses)


S = MessageStatus
OPEN_STATUSES = _values(S.PLANNED, S.QUEUED)
"""Not yet handed to a provider: staff and re-planning may still cancel or move them."""
HISTORY_STATUSES = _values(S.SENDING, S.SENT, S.UNKNOWN)
"""Handed (or being handed) to a provider: what the patient may have received."""
FINAL_STATUSES = _values(S.SENT, S.WITHHELD, S.FAILED, S.UNKNOWN, S.CANCELLED)
IN_FLIGHT_STATUSES = _values(S.SENDING, S.QUEUED, S.UNKNOWN)
"""Where a row can be when our provider call returns (its lease may have run out
meanwhile and the reconciler requeued it or settled it ``unknown``): the provider
has the message, so ``sent`` wins over all three."""

_NONE = CommunicationStatus.NONE.value
_PENDING = CommunicationStatus.PENDING.value


def provisional_cap(now: datetime) -> ColumnElement[bool]:
    """SQL twin of ``planning.is_provisional_cap``: a cap decision before its send time."""
    return and_(
        PlannedMessage.status == S.WITHHELD.value,
        PlannedMessage.reason == REASON_CAP_REACHED,
        PlannedMessage.communication_status == _PENDING,
        PlannedMessage.send_at > now,
    )


def replannable(now: datetime) -> ColumnElement[bool]:
    """SQL twin of ``planning._may_replan``: open, provisionally capped, or cancelled by us."""
    return or_(
        PlannedMessage.status.in_(OPEN_STATUSES),
        provisional_cap(now),
        and_(
            PlannedMessage.status == S.CANCELLED.value,
            or_(
                PlannedMessage.reason.is_(None),
                PlannedMessage.reason != REASON_CANCELLED_BY_STAFF,
            ),
        ),
    )


def new_planned(**fields: Any) -> PlannedMessage:
    """A fresh row in ``planned`` (an INSERT, not a transition)."""
    return PlannedMessage(status=S.PLANNED.value, communication_status=_NONE, **fields)


def new_withheld(*, reason: str, detail: str | None, **fields: Any) -> PlannedMessage:
    """A fresh row decided ``withheld`` at once; its not-done Communication is pending."""
    return PlannedMessage(
        status=S.WITHHELD.value,
        reason=reason,
        reason_detail=detail,
        lease_until=None,
        communication_status=_PENDING,
        **fields,
    )


class MessageLifecycle:
    """Transitions of ``PlannedMessage.status``, each one conditional UPDATE in ``session``.

    Every method returns ``True`` when it moved the row and ``False`` when the row was
    not (any more) in a state it may leave; the caller decides what losing means. Rows
    of the same session's identity map see the new values (``synchronize_session``).
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    def _move(
        self, message_id: str, allowed: ColumnElement[bool], values: Mapping[str, Any]
    ) -> bool:
        result = self._session.execute(
            update(PlannedMessage)
            .where(PlannedMessage.id == message_id, allowed)
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- dispatch and delivery ------------------------------------------------------

    def claim(self, message_id: str, now: datetime, lease: timedelta) -> bool:
        """``planned`` (due) or ``queued`` (lease over) → ``queued`` under a new lease."""
        allowed = or_(
            (PlannedMessage.status == S.PLANNED.value) & (PlannedMessage.send_at <= now),
            (PlannedMessage.status == S.QUEUED.value) & (PlannedMessage.lease_until < now),
        )
        return self._move(
            message_id, allowed, {"status": S.QUEUED.value, "lease_until": now + lease}
        )

    def claim_batch(
        self,
        now: datetime,
        lease: timedelta,
        *,
        limit: int = 500,
        ids: Sequence[str] | None = None,
    ) -> list[str]:
        """What :meth:`claim` does, for up to ``limit`` due rows at once; returns their ids.

        One statement, ``WITH picked AS MATERIALIZED (SELECT id … ORDER BY send_at LIMIT n
        FOR UPDATE SKIP LOCKED) UPDATE … FROM picked RETURNING id``: on PostgreSQL
        concurrent dispatchers skip each other's rows instead of waiting; SQLite has one
        writer at a time and no row locks (the same statement without ``FOR UPDATE``).
        ``ids``: only among these (messages planning just found due). The outer condition
        re-checks each row, so a row that moved meanwhile is never taken.
        """
        due = or_(
            (PlannedMessage.status == S.PLANNED.value) & (PlannedMessage.send_at <= now),
            (PlannedMessage.status == S.QUEUED.value) & (PlannedMessage.lease_until < now),
        )
        candidates = select(PlannedMessage.id).where(due)
        if ids is not None:
            if not ids:
                return []
            candidates = candidates.where(PlannedMessage.id.in_(list(ids)))
        # A materialized CTE, not ``IN (subquery)``: PostgreSQL may run a LIMIT subquery
        # more than once inside an UPDATE and so take more than ``limit`` rows.
        picked = (
            candidates.order_by(PlannedMessage.send_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        result = self._session.execute(
            update(PlannedMessage)
            .where(PlannedMessage.id == picked.c.id, due)
            .values(status=S.QUEUED.value, lease_until=now + lease)
            .returning(PlannedMessage.id)
            .execution_options(synchronize_session="fetch")
        )
        return list(result.scalars())

    def start_sending(self, message_id: str, lease_until: datetime) -> bool:
        """``queued`` → ``sending``; commit it *before* the provider call (the send ledger)."""
        return self._move(
            message_id,
            PlannedMessage.status == S.QUEUED.value,
            {"status": S.SENDING.value, "lease_until": lease_until},
        )

    def mark_sent(
        self,
        message_id: str,
        *,
        provider: str,
        provider_message_id: str | None,
        delivery_status: str | None,
        sent_at: datetime,
    ) -> bool:
        """The provider accepted it: ``sending`` (or requeued / unknown meanwhile) → ``sent``."""
        return self._move(
            message_id,
            PlannedMessage.status.in_(IN_FLIGHT_STATUSES),
            {
                "status": S.SENT.value,
                "provider": provider,
                "provider_message_id": provider_message_id,
                "delivery_status": delivery_status,
                "sent_at": sent_at,
                "lease_until": None,
                "reason": None,
                "reason_detail": None,
                "communication_status": _PENDING,
            },
        )

    def requeue(
        self, message_id: str, *, at: datetime, trace: dict[str, Any] | None = None
    ) -> bool:
        """``sending`` → ``queued``, due again at ``at`` (a retry or the next channel)."""
        values: dict[str, Any] = {"status": S.QUEUED.value, "lease_until": at}
        if trace is not None:
            values["trace"] = trace
        return self._move(message_id, PlannedMessage.status == S.SENDING.value, values)

    def fail(self, message_id: str, *, reason: str, detail: str) -> bool:
        """``sending`` → ``failed`` (permanent, or out of attempts); a not-done Communication."""
        return self._move(
            message_id,
            PlannedMessage.status == S.SENDING.value,
            {
                "status": S.FAILED.value,
                "reason": reason,
                "reason_detail": detail,
                "lease_until": None,
                "communication_status": _PENDING,
            },
        )

    def withhold(
        self, message_id: str, *, reason: str, detail: str | None, trace: dict[str, Any]
    ) -> bool:
        """``queued`` → ``withheld`` at send time (consent, protection, cap, rendering)."""
        return self._move(
            message_id,
            PlannedMessage.status == S.QUEUED.value,
            _withheld_values(reason, detail, trace),
        )

    def settle_unknown(self, message_id: str, *, now: datetime, reason: str, detail: str) -> bool:
        """``sending`` → ``unknown``: the provider may have it and cannot say; never resent."""
        return self._move(
            message_id,
            PlannedMessage.status == S.SENDING.value,
            {
                "status": S.UNKNOWN.value,
                "lease_until": None,
                "reason": reason,
                "reason_detail": detail,
                "sent_at": now,
                "communication_status": _PENDING,
            },
        )

    def confirm_sent(self, message_id: str, *, provider: str, provider_message_id: str) -> bool:
        """``unknown`` → ``sent`` when the provider reports the message (a status callback)."""
        return self._move(
            message_id,
            and_(
                PlannedMessage.status == S.UNKNOWN.value,
                PlannedMessage.provider_message_id.is_(None),
            ),
            {
                "status": S.SENT.value,
                "provider": provider,
                "provider_message_id": provider_message_id,
                "reason": None,
                "reason_detail": None,
            },
        )

    # -- cancellation and re-planning -------------------------------------------

    def cancel_if_open(
        self,
        message_id: str,
        *,
        reason: str,
        trace: dict[str, Any],
        now: datetime,
        including_provisional_cap: bool = False,
    ) -> bool:
        """``planned``/``queued`` → ``cancelled`` (no Communication: nothing was withheld).

        Never a message a worker is sending or has sent, and never a cancellation by
        staff (it is not open). Re-planning also cancels a provisional cap decision.
        """
        allowed: ColumnElement[bool] = PlannedMessage.status.in_(OPEN_STATUSES)
        if including_provisional_cap:
            allowed = or_(allowed, provisional_cap(now))
        return self._move(
            message_id,
            allowed,
            {
                "status": S.CANCELLED.value,
                "reason": reason,
                "reason_detail": None,
                "lease_until": None,
                "communication_status": _NONE,
                "trace": trace,
                "updated_at": now,
            },
        )

    def replan(self, message_id: str, *, now: datetime, fields: Mapping[str, Any]) -> bool:
        """A row re-planning may decide → ``planned`` with the plan's ``fields`` (time, text).

        Revives a message we cancelled or provisionally capped; a ``queued`` row goes
        back to ``planned`` (the dispatcher claims it again at its possibly new time).
        """
        values = {
            **fields,
            "status": S.PLANNED.value,
            "reason": None,
            "reason_detail": None,
            "lease_until": None,
            "communication_status": _NONE,
        }
        return self._move(message_id, replannable(now), values)

    def withhold_on_replan(
        self,
        message_id: str,
        *,
        now: datetime,
        reason: str,
        detail: str | None,
        trace: dict[str, Any],
        fields: Mapping[str, Any],
    ) -> bool:
        """A row re-planning may decide → ``withheld`` (a decision against the message)."""
        values = {**fields, **_withheld_values(reason, detail, trace)}
        return self._move(message_id, replannable(now), values)

    # -- many rows at once (campaigns and broadcasts: tens of thousands of rows) ------

    def insert_new(
        self, planned: Sequence[Mapping[str, Any]], withheld: Sequence[Mapping[str, Any]]
    ) -> None:
        """What ``new_planned`` / ``new_withheld`` make, as one bulk INSERT of many rows.

        ``withheld`` rows carry ``reason`` and ``reason_detail``; their not-done
        Communication is pending at once.
        """
        base = {"lease_until": None, "reason": None, "reason_detail": None}
        rows = [
            {**base, **fields, "status": S.PLANNED.value, "communication_status": _NONE}
            for fields in planned
        ]
        rows += [
            {**base, **fields, "status": S.WITHHELD.value, "communication_status": _PENDING}
            for fields in withheld
        ]
        if rows:
            self._session.execute(insert(PlannedMessage), rows)

    def _move_many(
        self, ids: Sequence[str], allowed: ColumnElement[bool], values: Mapping[str, Any]
    ) -> int:
        moved = 0
        for start in range(0, len(ids), 1000):
            result = self._session.execute(
                update(PlannedMessage)
                .where(PlannedMessage.id.in_(list(ids[start : start + 1000])), allowed)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            moved += int(result.rowcount)  # type: ignore[attr-defined]
        return moved

    def cancel_open_many(self, ids: Sequence[str], *, reason: str, now: datetime) -> int:
        """``planned``/``queued`` → ``cancelled`` with ``reason`` (no Communication)."""
        return self._move_many(
            ids,
            PlannedMessage.status.in_(OPEN_STATUSES),
            {
                "status": S.CANCELLED.value,
                "reason": reason,
                "lease_until": None,
                "communication_status": _NONE,
                "updated_at": now,
            },
        )

    def reopen_many(self, ids: Sequence[str], *, reason: str, now: datetime) -> int:
        """Rows ``cancel_open_many`` cancelled with ``reason`` → ``planned``, due ``now``."""
        return self._move_many(
            ids,
            and_(PlannedMessage.status == S.CANCELLED.value, PlannedMessage.reason == reason),
            {
                "status": S.PLANNED.value,
                "reason": None,
                "send_at": now,
                "lease_until": None,
                "communication_status": _NONE,
                "updated_at": now,
            },
        )

    def withhold_open_many(
        self, ids: Sequence[str], *, reason: str, detail: str | None, now: datetime
    ) -> int:
        """``planned``/``queued`` → ``withheld`` (a not-done Communication is pending)."""
        return self._move_many(
            ids,
            PlannedMessage.status.in_(OPEN_STATUSES),
            {
                "status": S.WITHHELD.value,
                "reason": reason,
                "reason_detail": detail,
                "lease_until": None,
                "communication_status": _PENDING,
                "updated_at": now,
            },
        )


def _withheld_values(reason: str, detail: str | None, trace: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": S.WITHHELD.value,
        "reason": reason,
        "reason_detail": detail,
        "trace": trace,
        "lease_until": None,
        "communication_status": _PENDING,
    }
