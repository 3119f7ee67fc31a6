"""Refill notices (issue #3.2): one notice before the current fill runs out.

Only the next notice is planned; once it is sent (in history) the following
fill's notice takes its place. The last fill says "contact your clinic" because
no refill is left to request. Medication names never reach a template.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from rules.context import PlanningContext, RuleOutcome
from rules.fhir_json import (
    codes_of,
    parse_date,
    ref_of,
    reference_of,
    same_reference,
)
from rules.formatting import format_date
from rules.model import PURPOSE_REFILL_NOTICE, PlannedMessage, WithheldMessage
from rules.supply import estimate_supply
from rules.templates import generic_variant
from rules.timing import at_local, into_window, local_iso, parse_offset

RULE = "refill-notice"
STOP_STATUSES = frozenset({"completed", "stopped", "cancelled", "on-hold", "entered-in-error"})
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _withheld(
    ctx: PlanningContext, ref: str, reason: str, detail: str, **inputs: Any
) -> WithheldMessage:
    return WithheldMessage(
        key=f"{PURPOSE_REFILL_NOTICE}|{ref}",
        rule=RULE,
        purpose=PURPOSE_REFILL_NOTICE,
        patient_ref=ctx.patient_ref,
        about=(ref,),
        reason=reason,
        detail=detail,
        trace={"rule": RULE, "inputs": {"medication_request": ref, **inputs}},
    )


def medication_identity(request: Mapping[str, Any]) -> str:
    """What makes two orders "the same medication": RxNorm code, any code, or reference."""
    codes = codes_of(request.get("medicationCodeableConcept"))
    rxnorm = sorted(code for system, code in codes if system == RXNORM)
    if rxnorm:
        return f"{RXNORM}|{rxnorm[0]}"
    if codes:
        return "|".join(sorted(codes)[0])
    reference = reference_of(request.get("medicationReference"))
    if reference:
        return reference
    text = (request.get("medicationCodeableConcept") or {}).get("text")
    return f"text:{str(text).strip().lower()}" if text else f"order:{ref_of(request)}"


def _recency(request: Mapping[str, Any]) -> tuple[str, str, str]:
    return (
        str(request.get("authoredOn", "")),
        str((request.get("meta") or {}).get("lastUpdated", "")),
        str(request.get("id", "")),
    )


def _supersessions(orders: list[Mapping[str, Any]]) -> dict[str, str]:
    """Map each superseded order ref to the newer order ref that replaces it."""
    superseded: dict[str, str] = {}
    for order in orders:
        prior = reference_of(order.get("priorPrescription"))
        for other in orders:
            if other is not order and same_reference(prior, ref_of(other)):
                superseded[ref_of(other)] = ref_of(order)
    by_medication: dict[str, list[Mapping[str, Any]]] = {}
    for order in orders:
        by_medication.setdefault(medication_identity(order), []).append(order)
    for group in by_medication.values():
        newest = max(group, key=_recency)
        for order in group:
            if order is not newest:
                superseded.setdefault(ref_of(order), ref_of(newest))
    return superseded


def plan_refills(ctx: PlanningContext) -> RuleOutcome:
    """The next refill notice for every active order that is not superseded."""
    outcome = RuleOutcome()
    if not ctx.config.refill_notices.enabled:
        return outcome
    active: list[Mapping[str, Any]] = []
    for request in ctx.resources_of("MedicationRequest"):
        ref, status = ref_of(request), str(request.get("status", ""))
        if status in STOP_STATUSES:
            outcome.withheld.append(
                _withheld(ctx, ref, f"medication-request-{status}", "stop state", status=status)
            )
        elif status != "active":
            outcome.withheld.append(
                _withheld(ctx, ref, "status-not-planned", "not active", status=status)
            )
        elif request.get("intent") != "order":
            intent = str(request.get("intent", ""))
            outcome.withheld.append(_withheld(ctx, ref, "not-an-order", "intent", intent=intent))
        else:
            active.append(request)
    if not active:
        return outcome
    superseded = _supersessions(active)
    for request in active:
        ref = ref_of(request)
        if ref in superseded:
            outcome.withheld.append(
                _withheld(ctx, ref, "superseded", "newer order", superseded_by=superseded[ref])
            )
            continue
        result = _plan_one(ctx, request)
        if isinstance(result, PlannedMessage):
            outcome.planned.append(result)
        else:
            outcome.withheld.append(result)
    return outcome


def _fill_run_outs(
    request: Mapping[str, Any], start: date, initial: float, repeat: float
) -> list[date]:
    dispense = request.get("dispenseRequest") or {}
    repeats = dispense.get("numberOfRepeatsAllowed")
    repeats = repeats if isinstance(repeats, int) and repeats >= 0 else 0
    valid_until = parse_date((dispense.get("validityPeriod") or {}).get("end"))
    run_outs: list[date] = []
    covered = initial
    for fill in range(repeats + 1):
        if fill > 0:
            fill_starts = start + timedelta(days=math.floor(covered))
            if valid_until is not None and fill_starts > valid_until:
                break
            covered += repeat
        run_outs.append(start + timedelta(days=math.floor(covered)))
    return run_outs


def _plan_one(ctx: PlanningContext, request: Mapping[str, Any]) -> PlannedMessage | WithheldMessage:
    ref = ref_of(request)
    rules = ctx.config.refill_notices
    dispense = request.get("dispenseRequest") or {}
    start = parse_date((dispense.get("validityPeriod") or {}).get("start")) or parse_date(
        request.get("authoredOn")
    )
    estimate = estimate_supply(request)
    inputs: dict[str, Any] = {"medication_request": ref, "supply_sources": estimate.sources}
    if start is None or estimate.initial_days is None:
        reason = "start-unknown" if start is None else "run-out-unknown"
        return _withheld(ctx, ref, reason, "cannot compute run-out", **inputs)
    run_outs = _fill_run_outs(request, start, estimate.initial_days, estimate.repeat_days or 0.0)
    zone, zone_source = ctx.recipient_zone()
    today = ctx.now.astimezone(zone).date()
    lead = parse_offset(rules.notice_before)
    trace: dict[str, Any] = {
        "rule": RULE,
        "inputs": inputs | {"start": start.isoformat(), "authoredOn": request.get("authoredOn")},
        "zone": zone.key,
        "zone_source": zone_source,
        "initial_days": estimate.initial_days,
        "repeat_days": estimate.repeat_days,
        "run_outs": [d.isoformat() for d in run_outs],
        "notice_before": lead.text,
    }
    for index, run_out in enumerate(run_outs):
        key = f"{PURPOSE_REFILL_NOTICE}|{ref}|fill-{index + 1}"
        if run_out < today or key in ctx.sent_keys:
            continue
        last = index == len(run_outs) - 1
        due = at_local(run_out - timedelta(days=lead.days), rules.send_time, zone)
        due -= timedelta(seconds=lead.seconds)
        send_at, adjustment = into_window(max(due, ctx.now), zone, ctx.window())
        sensitive, reasons = ctx.sensitivity([request])
        template = rules.last_fill_template if last else rules.template
        return PlannedMessage(
            key=key,
            rule=RULE,
            purpose=PURPOSE_REFILL_NOTICE,
            patient_ref=ctx.patient_ref,
            about=(ref,),
            send_at=send_at,
            template=generic_variant(template) if sensitive else template,
            language=ctx.language,
            variables=ctx.base_variables() | {"date": format_date(run_out, ctx.language)},
            trace=trace
            | {
                "fill": index + 1,
                "last_fill": last,
                "run_out": run_out.isoformat(),
                "due_local": local_iso(due, zone),
                "send_at_local": local_iso(send_at, zone),
                "late": due < ctx.now,
                "quiet_hours": adjustment,
                "sensitive": sensitive,
                "sensitivity_reasons": list(reasons),
            },
            sensitive=sensitive,
        )
    last_run_out = run_outs[-1].isoformat() if run_outs else None
    return _withheld(ctx, ref, "supply-ended", "run-out passed", **inputs, run_out=last_run_out)
