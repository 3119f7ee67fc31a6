"""Campaigns and broadcasts: draft, preview, approve (a second person), run, pause, cancel.

The API the CLI and a panel both call. Each function takes the :class:`Runtime`, reads the
EHR with no transaction open, then commits once; deliveries are enqueued after commit.

A run plans every audience member's message with the pure rules
(:func:`rules.campaigns.plan_campaign_message`) in batches of :data:`BATCH`, each one bulk
INSERT (``MessageLifecycle.insert_new``) in its own short transaction; messages due now are
claimed in the same transaction and handed to the ``deliver`` task after it commits, which
sends them through the shared SMS rate limit like every message.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from fhir_bridge.audit import events
from fhir_bridge.audit import service as audit
from fhir_bridge.campaigns import repository
from fhir_bridge.campaigns.audience import AudienceData, fetch
from fhir_bridge.outreach import repository as message_repository
from fhir_bridge.outreach.lifecycle import MessageLifecycle
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import Campaign, CampaignRun, CampaignStatus
from rules.audiences import AppointmentFilter, AudienceDefinition
from rules.campaigns import (
    BROADCAST_PREFIX,
    REASON_BROADCAST_CANCELLED,
    CampaignSpec,
    campaign_variables,
    plan_campaign_message,
    tip_template,
)
from rules.config import RulesConfig
from rules.consent import LedgerEntry as ConsentEntry
from rules.formatting import format_date
from rules.model import PatientSnapshot, WithheldMessage

BATCH = 1000
CAMPAIGN_IDENTIFIER_SYSTEM = "urn:fhir-bridge:campaign"
KINDS = ("health-tips", "preventive-care", "broadcast")
PURPOSE_BY_KIND = {"health-tips": "health-tips", "broadcast": "care-coordination"}
PAUSED_REASON = "campaign-paused"
CANCELLED_REASON = "campaign-cancelled"
SAMPLE_NAMES = {"en": "Alex", "es": "Alejandra"}
log = logging.getLogger(__name__)


class CampaignError(ValueError):
    """A request that cannot be done; the message names fields and states, never PHI."""


class SameApprover(CampaignError):
    """The second person must not be the one who drafted it."""


class RunTaken(CampaignError):
    """Another scheduler (or person) already started this run."""


@dataclass(frozen=True)
class Draft:
    """What staff ask for; ``audience`` is a rules-file audience name or a definition."""

    name: str
    kind: str
    audience: AudienceDefinition
    by: str
    templates: tuple[str, ...] = ()
    purpose: str | None = None
    cadence_days: int | None = None
    ends_at: datetime | None = None
    priority: str = "routine"
    emergency: bool = False
    cancels_appointments: bool = False


@dataclass
class RunResult:
    campaign_id: str
    run: int
    audience: int = 0
    planned: int = 0
    withheld: Counter[str] = field(default_factory=Counter)
    enqueued: int = 0
    reminders_withheld: int = 0


def _record(session: Session, *, by: str, campaign_id: str, what: str, now: datetime) -> None:
    audit.record(
        session,
        events.patient_change(
            observer=audit.observer(),
            recorded=now,
            action="C" if what == "campaign-draft" else "U",
            requestor_ref=by,
            patient_ref=None,
            target=events.identified("Basic", CAMPAIGN_IDENTIFIER_SYSTEM, campaign_id),
            what=what,
        ),
    )


def _staff(by: str) -> str:
    if not by.startswith(("Practitioner/", "PractitionerRole/")):
        raise CampaignError("--as must be a Practitioner reference (Practitioner/<id>)")
    return by


def _check(draft: Draft, config: RulesConfig) -> tuple[str, list[str]]:
    if draft.kind not in KINDS:
        raise CampaignError(f"kind must be one of {', '.join(KINDS)}")
    purpose = draft.purpose or PURPOSE_BY_KIND.get(draft.kind)
    if purpose is None or purpose not in config.consent.purposes:
        raise CampaignError("purpose is not a consent purpose in the rules file")
    if draft.kind == "broadcast":
        names = list(draft.templates)
        if not names or any(n not in config.campaigns.broadcasts for n in names):
            raise CampaignError("template is not a broadcast template in the rules file")
        return purpose, [BROADCAST_PREFIX + n for n in names]
    tips = list(draft.templates) or list(config.campaigns.tips)
    if not tips or any(t not in config.campaigns.tips for t in tips):
        raise CampaignError("templates must be tips listed in the rules file")
    if draft.priority == "alert" or draft.emergency:
        raise CampaignError("only a broadcast may be an alert or an emergency")
    return purpose, tips


def draft(rt: Runtime, request: Draft) -> str:
    """A new campaign in ``draft``; recorded as an AuditEvent by its author."""
    by = _staff(request.by)
    purpose, templates = _check(request, rt.rules)
    now = rt.clock()
    campaign_id = str(uuid.uuid4())
    with transaction(rt.sessions) as session:
        repository.add(
            session,
            Campaign(
                id=campaign_id,
                name=request.name,
                kind=request.kind,
                purpose=purpose,
                audience=request.audience.model_dump(mode="json", exclude_defaults=True),
                templates=templates,
                cadence_days=request.cadence_days,
                ends_at=request.ends_at,
                priority=request.priority,
                emergency=request.emergency,
                cancels_appointments=request.cancels_appointments,
                status=CampaignStatus.DRAFT.value,
                drafted_by=by,
                runs=0,
                created_at=now,
                updated_at=now,
            ),
        )
        _record(session, by=by, campaign_id=campaign_id, what="campaign-draft", now=now)
    return campaign_id


def audience_of(rt: Runtime, name: str) -> AudienceDefinition:
    definition = rt.rules.audiences.get(name)
    if definition is None:
        raise CampaignError("no such audience in the rules file")
    return definition


def broadcast_audience(
    location: str, start: datetime, end: datetime, languages: list[str] | None = None
) -> AudienceDefinition:
    """Everyone with an active appointment at ``location`` between ``start`` and ``end``."""
    return AudienceDefinition(
        description="broadcast",
        appointments=AppointmentFilter(start=start, end=end, locations=[location]),
        languages=languages or [],
    )


def _load(session: Session, campaign_id: str) -> Campaign:
    campaign = repository.get(session, campaign_id)
    if campaign is None:
        raise CampaignError("no such campaign")
    return campaign


def _spec(campaign: Campaign, run: int, config: RulesConfig) -> CampaignSpec:
    definition = AudienceDefinition.model_validate(campaign.audience)
    if campaign.kind == "broadcast":
        template = campaign.templates[0]
    else:
        template = tip_template([str(t) for t in campaign.templates], run)
    variables = campaign_variables(config)
    dates: dict[str, str] = {}
    if campaign.kind == "broadcast" and definition.appointments is not None:
        start = definition.appointments.start
        location = next(iter(definition.appointments.locations), None)
        override = config.location(location)
        variables["location_name"] = (override.display_name or "") if override else ""
        if start is not None:
            from zoneinfo import ZoneInfo

            zone = ZoneInfo(
                (override.timezone if override else None) or config.organization.timezone
            )
            day = start.astimezone(zone).date()
            dates = {lang: format_date(day, lang) for lang in config.languages.supported}
    return CampaignSpec(
        campaign_id=campaign.id,
        run=run,
        kind=campaign.kind,
        purpose=campaign.purpose,
        priority=campaign.priority,
        emergency=campaign.emergency,
        template=template,
        variables=variables,
        dates=dates,
    )


@dataclass(frozen=True)
class Preview:
    audience: int
    breakdown: Mapping[str, Mapping[str, int]]
    samples: Mapping[str, str]


def preview(rt: Runtime, campaign_id: str) -> Preview:
    """Audience count and breakdown, and the text in each language (a made-up patient)."""
    with transaction(rt.sessions) as session:
        campaign = _load(session, campaign_id)
        definition = AudienceDefinition.model_validate(campaign.audience)
        spec = _spec(campaign, max(campaign.runs, 0) + 1, rt.rules)
    now = rt.clock()
    data = fetch(rt.ehr, definition, now)
    breakdown = _breakdown(rt, data, definition, spec, now)
    samples = {}
    for language in rt.rules.languages.supported:
        patient = {
            "resourceType": "Patient",
            "id": "sample",
            "name": [{"given": [SAMPLE_NAMES.get(language, "Alex")]}],
            "birthDate": "1980-01-01",  # an adult: a sample has no age protection to meet
            "communication": [{"language": {"coding": [{"code": language}]}}],
            # 555-01xx: a number reserved for fiction that still reads as a valid mobile.
            "telecom": [{"system": "phone", "value": "+16175550199", "use": "mobile"}],
        }
        snapshot = PatientSnapshot(patient_ref="Patient/sample", patient=patient, resources=())
        message = plan_campaign_message(
            spec, snapshot, [_sample_opt_in(spec.purpose)], [], (), rt.rules, now
        )
        if isinstance(message, WithheldMessage):
            samples[language] = f"(not rendered: {message.reason})"
            continue
        from rules.templates import render

        samples[language] = render(
            message.template, message.language, "sms", message.variables, rt.rules
        ).text
    return Preview(breakdown["members"]["total"], breakdown, samples)


def _sample_opt_in(purpose: str) -> dict[str, Any]:
    from rules.consent import opt_in_consent

    return opt_in_consent(
        "Patient/sample", "sms", None, datetime(2000, 1, 1, tzinfo=UTC), purposes=[purpose]
    )


def _breakdown(
    rt: Runtime,
    data: AudienceData,
    definition: AudienceDefinition,
    spec: CampaignSpec,
    now: datetime,
) -> dict[str, dict[str, int]]:
    members: Counter[str] = Counter()
    language: Counter[str] = Counter()
    location: Counter[str] = Counter()
    channel: Counter[str] = Counter()
    withheld: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    planned = _plan_members(rt, data, definition, spec, now)
    for _ref, membership, decision in planned:
        if not membership.member:
            excluded[membership.failed or "filter"] += 1
            continue
        members["total"] += 1
        if isinstance(decision, WithheldMessage):
            withheld[decision.reason] += 1
        else:
            channel["sms"] += 1
            language[decision.language] += 1
    for ref, membership, _decision in planned:
        if membership.member:
            for resource in data.resources.get(ref, []):
                if f"Appointment/{resource.get('id')}" in membership.appointments:
                    for place in _locations(resource):
                        location[place] += 1
    return {
        "members": dict(members) or {"total": 0},
        "channel": dict(channel),
        "language": dict(language),
        "location": {k: v for k, v in location.items() if v},
        "withheld": dict(withheld),
        "not in audience": dict(excluded),
    }


def _locations(appointment: Mapping[str, Any]) -> list[str]:
    return [
        str((p.get("actor") or {}).get("reference"))
        for p in appointment.get("participant") or []
        if str((p.get("actor") or {}).get("reference") or "").startswith("Location/")
    ]


def _plan_members(
    rt: Runtime,
    data: AudienceData,
    definition: AudienceDefinition,
    spec: CampaignSpec,
    now: datetime,
) -> list[tuple[str, Any, Any]]:
    memberships = list(data.members(definition, now))
    refs = [ref for ref, m in memberships if m.member]
    addresses = [
        str(t.get("value"))
        for ref in refs
        for t in data.patients[ref].get("telecom") or []
        if t.get("value")
    ]
    with transaction(rt.sessions) as session:
        entries = repository.ledger_for_many(session, refs, addresses)
        ledger = [message_repository.as_consent_entry(e) for e in entries]
    by_patient: dict[str, list[ConsentEntry]] = {}
    by_address: dict[str, list[ConsentEntry]] = {}
    for entry, raw in zip(ledger, entries, strict=True):
        if raw.patient_ref:
            by_patient.setdefault(raw.patient_ref, []).append(entry)
        elif raw.address:
            by_address.setdefault(raw.address, []).append(entry)
    planned: list[tuple[str, Any, Any]] = []
    for ref, membership in memberships:
        if not membership.member:
            planned.append((ref, membership, None))
            continue
        patient = data.patients[ref]
        own = list(by_patient.get(ref, []))
        for telecom in patient.get("telecom") or []:
            own += by_address.get(str(telecom.get("value")), [])
        snapshot = PatientSnapshot(patient_ref=ref, patient=patient, resources=())
        decision = plan_campaign_message(
            spec, snapshot, data.consents.get(ref, []), own, membership.terms, rt.rules, now
        )
        planned.append((ref, membership, decision))
    return planned


def dry_run(rt: Runtime, name: str) -> dict[str, dict[str, int]]:
    """``campaigns audience NAME --dry-run``: counts only, as a health-tip run would decide."""
    definition = audience_of(rt, name)
    now = rt.clock()
    spec = CampaignSpec(
        campaign_id="dry-run",
        run=1,
        kind="health-tips",
        purpose="health-tips",
        priority="routine",
        emergency=False,
        template=tip_template(rt.rules.campaigns.tips or ["-"], 1),
        variables=campaign_variables(rt.rules),
    )
    return _breakdown(rt, fetch(rt.ehr, definition, now), definition, spec, now)


def approve(rt: Runtime, campaign_id: str, by: str) -> None:
    """A second staff member approves; the author cannot (refused, and audited as refused)."""
    by = _staff(by)
    now = rt.clock()
    with transaction(rt.sessions) as session:
        campaign = _load(session, campaign_id)
        if campaign.drafted_by == by:
            raise SameApprover("a campaign must be approved by someone other than its author")
        if not repository.CampaignLifecycle(session).approve(campaign_id, by=by, now=now):
            raise CampaignError(f"campaign is {campaign.status}, not draft")
        _record(session, by=by, campaign_id=campaign_id, what="campaign-approve", now=now)


def run(
    rt: Runtime,
    campaign_id: str,
    enqueue: Callable[[list[str]], None] | None = None,
    expected_run: int | None = None,
) -> RunResult:
    """Plan the next run for the whole audience and hand what is due to delivery.

    With ``expected_run`` (the cadence) only that run is planned: a scheduler that finds it
    already started gets :class:`RunTaken`.
    """
    now = rt.clock()
    with transaction(rt.sessions) as session:
        campaign = _load(session, campaign_id)
        if campaign.status not in (CampaignStatus.APPROVED, CampaignStatus.RUNNING):
            raise CampaignError(f"campaign is {campaign.status}; approve it first")
        if campaign.ends_at is not None and campaign.ends_at <= now:
            repository.CampaignLifecycle(session).finish(campaign_id, now)
            raise CampaignError("campaign has ended")
        number = campaign.runs + 1
        if expected_run is not None and number != expected_run:
            raise RunTaken("this run of the campaign has already started")
        scheduled = campaign.next_run_at
        definition = AudienceDefinition.model_validate(campaign.audience)
        spec = _spec(campaign, number, rt.rules)
        cadence = campaign.cadence_days
        cancels = campaign.cancels_appointments
    data = fetch(rt.ehr, definition, now)
    planned = _plan_members(rt, data, definition, spec, now)
    result = RunResult(campaign_id, number)
    next_run = _next_slot(scheduled or now, cadence, now) if cadence else None
    with transaction(rt.sessions) as session:
        if not repository.CampaignLifecycle(session).start_run(
            campaign_id, run=number, next_run_at=next_run, now=now
        ):
            raise RunTaken("another run of this campaign started meanwhile")
        repository.add_run(
            session, CampaignRun(campaign_id=campaign_id, run=number, started_at=now)
        )
    due: list[str] = []
    members = [(ref, m, d) for ref, m, d in planned if m.member]
    result.audience = len(members)
    for start in range(0, len(members), BATCH):
        chunk = members[start : start + BATCH]
        planned_rows, withheld_rows = [], []
        for _ref, _membership, decision in chunk:
            row = _fields(decision, now)
            if isinstance(decision, WithheldMessage):
                withheld_rows.append(row)
                result.withheld[decision.reason] += 1
            else:
                planned_rows.append(row)
                if decision.send_at <= now:
                    due.append(row["id"])
        with transaction(rt.sessions) as session:
            MessageLifecycle(session).insert_new(planned_rows, withheld_rows)
            if cancels:
                refs = [ref for ref, _m, _d in chunk]
                appointments = [a for _r, m, _d in chunk for a in m.appointments]
                ids = repository.open_messages_about(session, refs, appointments)
                result.reminders_withheld += MessageLifecycle(session).withhold_open_many(
                    ids,
                    reason=REASON_BROADCAST_CANCELLED,
                    detail="the appointment is cancelled by a broadcast",
                    now=now,
                )
        result.planned += len(planned_rows)
    claimed: list[str] = []
    for start in range(0, len(due), BATCH):
        with transaction(rt.sessions) as session:
            claimed += message_repository.claim_batch(
                session, now, rt.lease, limit=BATCH, ids=due[start : start + BATCH]
            )
    (enqueue or _enqueue)(claimed)
    result.enqueued = len(claimed)
    with transaction(rt.sessions) as session:
        for run_row in repository.runs(session, campaign_id):
            if run_row.run == number:
                run_row.audience, run_row.planned = result.audience, result.planned
                run_row.withheld = sum(result.withheld.values())
                run_row.finished_at = rt.clock()
        if not cadence:
            repository.CampaignLifecycle(session).finish(campaign_id, now)
    return result


def _next_slot(anchor: datetime, days: int, now: datetime) -> datetime:
    """The first ``anchor + k * days`` (k >= 1) after ``now``: runs keep their time of day
    however late the scheduler comes, and missed periods are not made up."""
    period = timedelta(days=days)
    missed = max(0, (now - anchor) // period)
    return anchor + period * (missed + 1)


def run_due(rt: Runtime, enqueue: Callable[[list[str]], None] | None = None) -> list[RunResult]:
    """Cadence (the periodic ``run_campaigns`` task): running campaigns past their end date
    become ``done``; each other running campaign whose next run has come gets that run.

    Run ``n`` of a campaign is claimed once (``start_run`` where ``runs == n - 1``) and its
    messages are keyed by ``n``, so two schedulers never double a run.
    """
    now = rt.clock()
    with transaction(rt.sessions) as session:
        lifecycle = repository.CampaignLifecycle(session)
        for campaign_id in repository.ended_campaigns(session, now):
            lifecycle.finish(campaign_id, now)
        due = repository.due_campaigns(session, now)
    results = []
    for campaign_id, number in due:
        try:
            results.append(run(rt, campaign_id, enqueue, expected_run=number))
        except CampaignError as error:
            log.info(
                "campaign_run_skipped",
                extra={"id": campaign_id, "count": number, "code": type(error).__name__},
            )
    return results


def _enqueue(ids: list[str]) -> None:
    from fhir_bridge.tasks import try_enqueue

    for message_id in ids:
        try_enqueue("fhir_bridge.deliver", message_id)


def _fields(decision: Any, now: datetime) -> dict[str, Any]:
    withheld = isinstance(decision, WithheldMessage)
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "key": decision.key,
        "rule": decision.rule,
        "purpose": decision.purpose,
        "patient_ref": decision.patient_ref,
        "about": list(decision.about),
        "send_at": now if withheld else decision.send_at,
        "template": "" if withheld else decision.template,
        "language": "" if withheld else decision.language,
        "variables": {} if withheld else dict(decision.variables),
        "sensitive": False,
        "trace": {"withheld": dict(decision.trace)} if withheld else dict(decision.trace),
        "created_at": now,
        "updated_at": now,
    }
    if withheld:
        fields["reason"], fields["reason_detail"] = decision.reason, decision.detail
    return fields


def pause(rt: Runtime, campaign_id: str) -> int:
    """Stop sending: messages not yet handed to a provider wait (cancelled, to resume)."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        if not repository.CampaignLifecycle(session).pause(campaign_id, now):
            raise CampaignError("campaign is not running")
        ids = repository.message_ids(session, campaign_id, ("planned", "queued"))
        return MessageLifecycle(session).cancel_open_many(ids, reason=PAUSED_REASON, now=now)


def resume(rt: Runtime, campaign_id: str) -> int:
    now = rt.clock()
    with transaction(rt.sessions) as session:
        if not repository.CampaignLifecycle(session).resume(campaign_id, now):
            raise CampaignError("campaign is not paused")
        ids = repository.message_ids(session, campaign_id, ("cancelled",))
        return MessageLifecycle(session).reopen_many(ids, reason=PAUSED_REASON, now=now)


def cancel(rt: Runtime, campaign_id: str, by: str) -> int:
    """Cancel: every message not yet sending is withheld (with its not-done Communication)."""
    by = _staff(by)
    now = rt.clock()
    with transaction(rt.sessions) as session:
        if not repository.CampaignLifecycle(session).cancel(campaign_id, now):
            raise CampaignError("campaign is already finished")
        ids = repository.message_ids(session, campaign_id, ("planned", "queued", "cancelled"))
        lifecycle = MessageLifecycle(session)
        lifecycle.reopen_many(ids, reason=PAUSED_REASON, now=now)
        moved = lifecycle.withhold_open_many(
            ids, reason=CANCELLED_REASON, detail="the campaign was cancelled", now=now
        )
        _record(session, by=by, campaign_id=campaign_id, what="campaign-cancel", now=now)
        return moved


def status(rt: Runtime, campaign_id: str) -> dict[str, Any]:
    """Progress: queued / sent / delivered / failed / withheld / replies (counts only)."""
    with transaction(rt.sessions) as session:
        campaign = _load(session, campaign_id)
        counts = repository.message_counts(session, campaign_id)
        reasons = repository.withheld_reasons(session, campaign_id)
        return {
            "id": campaign.id,
            "name": campaign.name,
            "kind": campaign.kind,
            "status": campaign.status,
            "runs": campaign.runs,
            "purpose": campaign.purpose,
            "priority": campaign.priority,
            "emergency": campaign.emergency,
            "audience": str((campaign.audience or {}).get("description") or ""),
            "templates": [str(t) for t in campaign.templates],
            "cadence_days": campaign.cadence_days,
            "ends_at": campaign.ends_at,
            "next_run_at": campaign.next_run_at,
            "drafted_by": campaign.drafted_by,
            "approved_by": campaign.approved_by,
            "created_at": campaign.created_at,
            "queued": counts.get("planned", 0) + counts.get("queued", 0),
            "sending": counts.get("sending", 0),
            "sent": counts.get("sent", 0),
            "delivered": counts.get("delivered", 0),
            "failed": counts.get("failed", 0) + counts.get("unknown", 0),
            "withheld": reasons,
            "replies": counts.get("replies", 0),
        }


def overview(rt: Runtime) -> list[dict[str, Any]]:
    """Every campaign, newest first, each as :func:`status` gives it (counts only)."""
    with transaction(rt.sessions) as session:
        ids = [campaign.id for campaign in reversed(repository.campaigns(session))]
    return [status(rt, campaign_id) for campaign_id in ids]
