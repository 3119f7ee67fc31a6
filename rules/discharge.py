"""Post-discharge check-ins (issue #3.3) for inpatient, emergency and observation stays.

Silence is the right answer after death, hospice or a transfer, and a
readmission makes "how are you doing at home?" absurd, so those cases are
withheld with a reason instead of planned.

After a stay that concerns sensitive care the rules file's per-category policy
(``discharge_checkins.sensitive``) decides: the neutral check-in text, or no
automated text at all and a staff call instead (the default after psychiatric
admissions, involuntary holds and substance-use treatment). A staff call is one
withheld message per stay, reason ``staff-call-instead``; the pipeline turns it
into an urgent Task for clinic staff.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from rules.appointments import LATE_GRACE
from rules.context import PlanningContext, RuleOutcome
from rules.fhir_json import bare_codes, codes_of, is_deceased, parse_instant, ref_of, reference_of
from rules.formatting import format_date
from rules.model import (
    PURPOSE_DISCHARGE_CHECKIN,
    REASON_STAFF_CALL_INSTEAD,
    PlannedMessage,
    WithheldMessage,
)
from rules.privacy import Sensitivity, classify_sensitivity
from rules.templates import generic_variant
from rules.timing import at_local, into_window, local_iso, parse_offset

RULE = "discharge-checkin"
STARTED_STATUSES = frozenset({"arrived", "triaged", "in-progress", "onleave", "finished"})


def _class_code(encounter: Mapping[str, Any]) -> str | None:
    codes = codes_of(encounter.get("class"))
    return sorted(codes)[0][1] if codes else None


def _withheld(
    ctx: PlanningContext,
    ref: str,
    key: str,
    reason: str,
    trace: Mapping[str, Any],
    detail: str | None = None,
) -> WithheldMessage:
    return WithheldMessage(
        key=key,
        rule=RULE,
        purpose=PURPOSE_DISCHARGE_CHECKIN,
        patient_ref=ctx.patient_ref,
        about=(ref,),
        reason=reason,
        detail=detail or reason.replace("-", " "),
        trace=trace,
    )


def _readmission(
    ctx: PlanningContext, encounter: Mapping[str, Any], discharged: datetime
) -> tuple[str, datetime] | None:
    """The first later inpatient encounter that has started, if any."""
    classes = set(ctx.config.discharge_checkins.readmission_classes)
    found: list[tuple[datetime, str]] = []
    for other in ctx.resources_of("Encounter"):
        if other is encounter or other.get("status") not in STARTED_STATUSES:
            continue
        if _class_code(other) not in classes:
            continue
        started = parse_instant((other.get("period") or {}).get("start"))
        if started is not None and started > discharged:
            found.append((started, ref_of(other)))
    if not found:
        return None
    started, ref = min(found)
    return ref, started


def _location_of(encounter: Mapping[str, Any]) -> str | None:
    for entry in encounter.get("location") or ():
        reference = reference_of(entry.get("location")) if isinstance(entry, Mapping) else None
        if reference:
            return reference
    return None


def _references_of(encounter: Mapping[str, Any]) -> list[str]:
    """Every resource an Encounter points at that may reveal the kind of care."""
    hospitalization = encounter.get("hospitalization")
    if not isinstance(hospitalization, Mapping):
        hospitalization = {}
    candidates = [
        *(e.get("location") for e in encounter.get("location") or () if isinstance(e, Mapping)),
        *(
            p.get("individual")
            for p in encounter.get("participant") or ()
            if isinstance(p, Mapping)
        ),
        hospitalization.get("origin"),
        hospitalization.get("destination"),
        encounter.get("serviceProvider"),
    ]
    return [ref for ref in map(reference_of, candidates) if ref]


def _stay_sensitivity(ctx: PlanningContext, encounter: Mapping[str, Any]) -> Sensitivity:
    """The stay and what it references (ward, clinicians, facility), as one decision."""
    resolved = [ctx.snapshot.resolve(ref) for ref in _references_of(encounter)]
    looked_at = [encounter, *(r for r in resolved if r is not None)]
    return classify_sensitivity(looked_at, ctx.config.privacy)


def plan_discharge_checkins(ctx: PlanningContext) -> RuleOutcome:
    """Check-ins after every finished qualifying encounter, unless suppressed."""
    outcome = RuleOutcome()
    rules = ctx.config.discharge_checkins
    if not rules.enabled:
        return outcome
    for encounter in ctx.resources_of("Encounter"):
        class_code = _class_code(encounter)
        if encounter.get("status") != "finished" or class_code not in rules.encounter_classes:
            continue
        outcome.extend(_plan_encounter(ctx, encounter, class_code))
    return outcome


def _plan_encounter(
    ctx: PlanningContext, encounter: Mapping[str, Any], class_code: str
) -> RuleOutcome:
    outcome = RuleOutcome()
    rules = ctx.config.discharge_checkins
    ref = ref_of(encounter)
    prefix = f"{PURPOSE_DISCHARGE_CHECKIN}|{ref}"
    hospitalization = encounter.get("hospitalization") or {}
    dispositions = bare_codes([hospitalization.get("dischargeDisposition")])
    discharged = parse_instant((encounter.get("period") or {}).get("end"))
    location_ref = _location_of(encounter)
    zone, zone_source = ctx.recipient_zone(location_ref)
    trace: dict[str, Any] = {
        "rule": RULE,
        "inputs": {
            "encounter": ref,
            "class": class_code,
            "status": encounter.get("status"),
            "discharge": discharged.isoformat() if discharged else None,
            "discharge_disposition": sorted(dispositions),
            "location": location_ref,
        },
        "zone": zone.key,
        "zone_source": zone_source,
        "cadence": list(rules.offsets),
    }
    suppressing = sorted(dispositions & set(rules.suppress_dispositions))
    if discharged is None:
        outcome.withheld.append(_withheld(ctx, ref, prefix, "discharge-time-unknown", trace))
        return outcome
    if suppressing:
        reason = f"discharge-disposition-{suppressing[0]}"
        outcome.withheld.append(_withheld(ctx, ref, prefix, reason, trace))
        return outcome
    if is_deceased(ctx.snapshot.patient):
        outcome.withheld.append(_withheld(ctx, ref, prefix, "patient-deceased", trace))
        return outcome
    readmission = _readmission(ctx, encounter, discharged)
    if readmission is not None:
        trace["readmission"] = {"encounter": readmission[0], "start": readmission[1].isoformat()}
    sensitivity = _stay_sensitivity(ctx, encounter)
    sensitive = sensitivity.sensitive
    trace |= {
        "sensitive": sensitive,
        "sensitivity_reasons": list(sensitivity.reasons),
        "sensitivity_categories": list(sensitivity.categories),
    }
    if sensitive:
        action, chosen_by = rules.sensitive_action(sensitivity.categories)
        trace["sensitive_policy"] = {"action": action, "entry": chosen_by}
        if action == "staff-call":
            outcome.extend(_staff_call(ctx, ref, prefix, discharged, zone, readmission, trace))
            return outcome
    local_discharge = discharged.astimezone(zone).date()
    variables = ctx.base_variables(location_ref) | {
        "date": format_date(local_discharge, ctx.language)
    }
    for text in rules.offsets:
        key = f"{prefix}|{text}"
        if key in ctx.sent_keys:
            continue
        offset = parse_offset(text)
        due = at_local(local_discharge + timedelta(days=offset.days), rules.send_time, zone)
        due += timedelta(seconds=offset.seconds)
        send_at, adjustment = into_window(due, zone, ctx.window(location_ref))
        message_trace = trace | {
            "offset": text,
            "due_local": local_iso(due, zone),
            "send_at_local": local_iso(send_at, zone),
            "quiet_hours": adjustment,
        }
        if readmission is not None and send_at >= readmission[1]:
            outcome.withheld.append(_withheld(ctx, ref, key, "readmitted", message_trace))
        elif send_at < ctx.now - LATE_GRACE:
            outcome.withheld.append(_withheld(ctx, ref, key, "offset-passed", message_trace))
        else:
            template = generic_variant(rules.template) if sensitive else rules.template
            outcome.planned.append(
                PlannedMessage(
                    key=key,
                    rule=RULE,
                    purpose=PURPOSE_DISCHARGE_CHECKIN,
                    patient_ref=ctx.patient_ref,
                    about=(ref,),
                    send_at=send_at,
                    template=template,
                    language=ctx.language,
                    variables=variables,
                    trace=message_trace,
                    sensitive=sensitive,
                )
            )
    return outcome


def _staff_call(
    ctx: PlanningContext,
    ref: str,
    prefix: str,
    discharged: datetime,
    zone: ZoneInfo,
    readmission: tuple[str, datetime] | None,
    trace: Mapping[str, Any],
) -> RuleOutcome:
    """One withheld message per stay asking staff to call, unless the moment has passed.

    Nothing automated reaches the patient. After a readmission, or once the last
    check-in would have been long overdue, there is no call to ask for (lifecycle
    outcomes, no Communication).
    """
    outcome = RuleOutcome()
    key = f"{prefix}|staff-call"
    if key in ctx.sent_keys:
        return outcome
    rules = ctx.config.discharge_checkins
    local_discharge = discharged.astimezone(zone).date()
    latest = discharged
    for text in rules.offsets:
        offset = parse_offset(text)
        due = at_local(local_discharge + timedelta(days=offset.days), rules.send_time, zone)
        latest = max(latest, due + timedelta(seconds=offset.seconds))
    if readmission is not None:
        outcome.withheld.append(_withheld(ctx, ref, key, "readmitted", trace))
    elif latest < ctx.now - LATE_GRACE:
        outcome.withheld.append(_withheld(ctx, ref, key, "offset-passed", trace))
    else:
        detail = "staff will call the patient instead of an automated check-in"
        outcome.withheld.append(
            _withheld(ctx, ref, key, REASON_STAFF_CALL_INSTEAD, trace, detail=detail)
        )
    return outcome
