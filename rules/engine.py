"""The planning entry point: all rules for one patient, then protections and caps.

The pipeline calls :func:`plan_for_patient` whenever anything about a patient
changes and diffs the result by key, so this function must be pure and
deterministic: the same snapshot, configuration and ``now`` give the same plan.
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import attrgetter

from rules.appointments import plan_appointments
from rules.caps import apply_caps
from rules.config import RulesConfig
from rules.context import PlanningContext
from rules.discharge import plan_discharge_checkins
from rules.model import PatientSnapshot, Plan, PlannedMessage, WithheldMessage
from rules.protections import check_protections
from rules.refills import plan_refills

_BY_SEND_TIME = attrgetter("send_at", "key")
_BY_KEY = attrgetter("key")


class NaiveDatetimeError(ValueError):
    """``now`` must be timezone-aware; a naive clock silently shifts every send time."""


def _protect(
    ctx: PlanningContext, planned: list[PlannedMessage]
) -> tuple[list[PlannedMessage], list[WithheldMessage]]:
    """Withhold everything for patients who must not be messaged (deceased, minors...)."""
    kept: list[PlannedMessage] = []
    withheld: list[WithheldMessage] = []
    reasons: dict[str, str | None] = {}
    for message in planned:
        if message.purpose not in reasons:
            reasons[message.purpose] = check_protections(
                ctx.snapshot.patient, message.purpose, ctx.now, ctx.config.consent
            )
        reason = reasons[message.purpose]
        if reason is None:
            kept.append(message)
            continue
        withheld.append(
            message.withhold(
                reason, "patient protection applies", {**message.trace, "protection": reason}
            )
        )
    return kept, withheld


def plan_for_patient(snapshot: PatientSnapshot, config: RulesConfig, now: datetime) -> Plan:
    """The complete desired outreach for one patient as of ``now``.

    Runs appointment, refill and discharge rules, withholds messages for
    protected patients, then applies frequency caps: the message about the
    soonest event wins a capped day (:mod:`rules.caps`), so the plan depends on
    the snapshot's content, never on the order its resources arrived in.
    """
    if now.tzinfo is None:
        raise NaiveDatetimeError("plan_for_patient needs an aware 'now'")
    now = now.astimezone(UTC)
    ctx = PlanningContext.build(snapshot, config, now)
    outcome = plan_appointments(ctx)
    outcome.extend(plan_refills(ctx))
    outcome.extend(plan_discharge_checkins(ctx))
    allowed, protected = _protect(ctx, outcome.planned)
    default_zone, _source = ctx.recipient_zone()
    kept, capped = apply_caps(allowed, snapshot.history, config.caps, default_zone)
    withheld = outcome.withheld + protected + capped
    return Plan(
        patient_ref=snapshot.patient_ref,
        planned_at=now,
        messages=tuple(sorted(kept, key=_BY_SEND_TIME)),
        withheld=tuple(sorted(withheld, key=_BY_KEY)),
    )
