"""The panel's use cases: read the patient's outreach and consent, cancel, record opt-in/out,
answer a reply with an approved template.

Every function is given the staff session, and touches only that session's
patient. EHR reads use the *user's* access token from the launch, so the EHR's
own access rules for that user apply. Audit lines carry ids and codes only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from fhir_bridge import jobs
from fhir_bridge.fhir.auth import StaticBearerAuth
from fhir_bridge.fhir.client import EhrClient, RetryPolicy
from fhir_bridge.fhir.errors import EhrError
from fhir_bridge.inbound import repository as inbound_repository
from fhir_bridge.inbound.ehr_updates import ConcurrentUpdateConflict
from fhir_bridge.inbound.resources import ConsentChange
from fhir_bridge.optout import write_consent
from fhir_bridge.outreach import repository as outreach
from fhir_bridge.outreach.lifecycle import MessageLifecycle, new_withheld
from fhir_bridge.outreach.planning import new_row
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import LedgerEntry, StaffConsentAction
from fhir_bridge.sync import repository as sync_repository
from rules.answer_config import PURPOSE_CARE_COORDINATION
from rules.answers import (
    AnswerPreview,
    AnswerRequest,
    answer_key,
    answer_template,
    plan_answer,
    preview_answers,
)
from rules.consent import CHANNELS
from rules.consent.ledger import ACTION_OPT_IN, ACTION_OPT_OUT, SOURCE_STAFF
from rules.model import PatientSnapshot, WithheldMessage
from smart_app import actions_repository as panel_repository
from smart_app import answers_repository, audit, glossary
from smart_app.consent_view import ChannelConsent, consent_matrix
from smart_app.errors import MessageNotFound, NotPending, OtherPatientForbidden, SmartAppError
from smart_app.inbox import TEAMS, InboxEntry, answer_notes, assignee_ref, inbox_entries
from smart_app.sessions import StaffSession
from smart_app.timeline import (
    STAFF_CANCEL_REASON,
    TimelineEntry,
    location_refs,
    timeline_entries,
)

log = logging.getLogger("smart_app.audit")
STAFF_ACTIONS: Final = frozenset({ACTION_OPT_IN, ACTION_OPT_OUT})
MAX_NOTE: Final = 500
INBOX_LIMIT: Final = 100
REPLY_CHANNEL: Final = "sms"
"""The channel patients reply on (inbound SMS): a staff answer goes back on it only."""


class BadActionRequest(SmartAppError):
    """An unknown channel or action in a consent form."""


class EhrUnavailable(SmartAppError):
    """The EHR could not be read just now (the answer needs the patient's consent)."""

    status_code = 503


@dataclass(frozen=True)
class AnswerOutcome:
    """What became of a staff answer: ``sending`` now, ``held`` to the morning, ``withheld``."""

    message_id: str
    outcome: str


@dataclass(frozen=True)
class PanelData:
    """Everything the panel shows for the launch patient."""

    patient_ref: str
    fhir_user: str | None
    timeline: list[TimelineEntry]
    consent: list[ChannelConsent]
    consent_available: bool
    inbox: list[InboxEntry]
    answers: list[AnswerPreview] = field(default_factory=list)
    answer_language: str | None = None

    @property
    def answer_language_label(self) -> str:
        """The language the patient reads answers in, in words."""
        return glossary.words(glossary.LANGUAGES, self.answer_language)

    @property
    def answer_blocked(self) -> str | None:
        """Why an answer by text would not be sent now (plain words), or ``None``."""
        for row in self.consent:
            if row.channel != REPLY_CHANNEL:
                continue
            for cell in row.cells:
                if cell.purpose == PURPOSE_CARE_COORDINATION and not cell.allowed:
                    return cell.reason_label
        return None

    @property
    def cancel_reasons(self) -> dict[str, str]:
        return glossary.CANCEL_REASONS

    @property
    def consent_reasons(self) -> dict[str, str]:
        return glossary.CONSENT_REASONS

    @property
    def teams(self) -> dict[str, str]:
        return TEAMS

    @property
    def purposes(self) -> list[tuple[str, str]]:
        """The configured purposes (code, words), for the opt-in/out form."""
        codes = [cell.purpose for cell in self.consent[0].cells] if self.consent else []
        return [(code, glossary.words(glossary.PURPOSES, code)) for code in codes]

    @property
    def open_crisis(self) -> bool:
        """An unhandled possible-crisis reply: the page says so at the top."""
        return any(entry.crisis and entry.open for entry in self.inbox)

    def as_json(self) -> dict[str, Any]:
        """The JSON twin served at ``/smart/api/timeline``."""
        return {
            "patient": self.patient_ref,
            "messages": [entry.as_json() for entry in self.timeline],
            "consent_available": self.consent_available,
            "consent": [
                {
                    "channel": row.channel,
                    "address_hint": row.address_hint,
                    "purposes": {
                        cell.purpose: {
                            "allowed": cell.allowed,
                            "reason": cell.reason,
                            "source": cell.source,
                            "used": list(cell.used),
                        }
                        for cell in row.cells
                    },
                }
                for row in self.consent
            ],
            "inbox": [entry.as_json() for entry in self.inbox],
        }


@dataclass(frozen=True)
class PanelDeps:
    """Collaborators: the runtime's sessions and rules, the EHR base URL and a clock.

    ``runtime`` (the app's) writes staff actions to the EHR with the backend client and
    names the clinic's zone; without it (unit tests of reads) nothing is written.
    """

    sessions: Any
    policy: Any
    ehr_base_url: str
    clock: Callable[[], datetime]
    ehr_timeout: float = 10.0
    runtime: Any = None

    @property
    def default_zone(self) -> str:
        """The organisation's zone: used when a message's trace names none."""
        if self.runtime is None:
            return "UTC"
        return str(self.runtime.rules.organization.timezone)


def require_patient(staff: StaffSession, requested: str | None) -> None:
    """Refuse any request naming a patient other than the one the chart launched us for."""
    if requested is not None and requested != staff.patient_ref:
        log.warning("staff_other_patient_refused", extra={"kind": "authorization"})
        raise OtherPatientForbidden("other-patient")


def load_panel(deps: PanelDeps, staff: StaffSession) -> PanelData:
    """Timeline from our database; consent from the EHR (user's token) plus the ledger."""
    now = deps.clock()
    patient, consents, available = _read_ehr(deps, staff)
    addresses = [t["value"] for t in (patient or {}).get("telecom") or [] if t.get("value")]
    zone = ZoneInfo(deps.default_zone)
    with transaction(deps.sessions) as session:
        rows = outreach.messages_for_patient(session, staff.patient_ref)
        places = _place_names(session, location_refs(rows))
        timeline = timeline_entries(rows, places=places, default_zone=deps.default_zone)
        entries = outreach.ledger_for(session, staff.patient_ref, addresses)
        ledger = [outreach.as_consent_entry(entry) for entry in entries]
        items = inbound_repository.inbox_for_patient(session, staff.patient_ref, INBOX_LIMIT)
        notes = answer_notes(rows, zone)
        inbox = inbox_entries(items, zone=zone, me=staff.fhir_user, answers=notes)
    matrix = (
        consent_matrix(
            patient=patient, consents=consents, ledger=ledger, policy=deps.policy, now=now
        )
        if available
        else []
    )
    language, answers = (
        preview_answers(patient, REPLY_CHANNEL, deps.runtime.rules, now)
        if available and deps.runtime is not None
        else (None, [])
    )
    return PanelData(
        staff.patient_ref, staff.fhir_user, timeline, matrix, available, inbox, answers, language
    )


def _place_names(session: Any, refs: set[str]) -> dict[str, str]:
    """Locations' own names from our store: staff may read them (they see the chart)."""
    names = {}
    for ref in sorted(refs):
        _, _, location_id = ref.partition("/")
        state = sync_repository.get_state(session, "Location", location_id)
        name = (state.body or {}).get("name") if state is not None else None
        if isinstance(name, str) and name:
            names[ref] = name
    return names


def cancel_message(
    deps: PanelDeps,
    staff: StaffSession,
    message_id: str,
    reason_code: str = "",
    reason_text: str = "",
) -> None:
    """Cancel a planned/queued message of the launch patient, recording who did it and why.

    The reason stays in our trace (never sent to the patient); the EHR gets a ``not-done``
    Communication naming the Practitioner, written after the commit (relay retries it).
    """
    if reason_code not in glossary.CANCEL_REASONS:
        raise BadActionRequest("bad-cancel-reason")
    now = deps.clock()
    with transaction(deps.sessions) as session:
        row = outreach.get(session, message_id)
        if row is None:
            raise MessageNotFound("no-such-message")
        require_patient(staff, row.patient_ref)
        trace = {
            **(row.trace or {}),
            "staff_action": {
                "action": "cancel",
                "by": staff.fhir_user,
                "at": now.isoformat(),
                "encounter": staff.encounter_ref,
                "reason": reason_code,
                "note": _note(reason_text),
            },
        }
        if not MessageLifecycle(session).cancel_if_open(
            message_id, reason=STAFF_CANCEL_REASON, trace=trace, now=now
        ):
            raise NotPending("not-pending")
        outreach.request_communication(session, message_id)
        audit.staff_action(session, staff, "cancel", audit.message_target(message_id), now)
    log.info(
        "staff_cancelled_message by=%s",
        staff.fhir_user,
        extra={"message_id": message_id, "kind": "cancel", "outcome": "cancelled"},
    )
    if deps.runtime is not None:
        _write_now("communication", lambda: jobs.write_back(deps.runtime, message_id))


def record_channel_preference(
    deps: PanelDeps,
    staff: StaffSession,
    channel: str,
    action: str,
    purposes: Sequence[str] = (),
    reason_code: str = "",
    reason_text: str = "",
) -> int:
    """A staff opt-in or opt-out on ``channel`` for the chosen purposes (all: every purpose).

    The ledger takes effect at once; the Consent (built exactly as for a STOP/START, with
    the Practitioner as performer) is written after the commit, and retried by the relay.
    """
    known = set(deps.policy.purposes)
    chosen = tuple(sorted(set(purposes)))
    valid = channel in CHANNELS and action in STAFF_ACTIONS and chosen
    if not valid or not set(chosen) <= known:
        raise BadActionRequest("bad-consent-action")
    if reason_code not in glossary.CONSENT_REASONS:
        raise BadActionRequest("bad-consent-reason")
    # An opt-in that includes a promotional purpose (health tips) stays purpose-specific:
    # a general "everything" permit never allows promotion (rules.consent.policy).
    every = set(chosen) == known and not (
        action == ACTION_OPT_IN and any(deps.policy.purposes[p].promotional for p in chosen)
    )
    now = deps.clock()
    with transaction(deps.sessions) as session:
        for purpose in ("*",) if every else chosen:
            outreach.add_ledger_entry(
                session,
                LedgerEntry(
                    patient_ref=staff.patient_ref,
                    channel=channel,
                    address=None,
                    purpose=purpose,
                    action=action,
                    source=SOURCE_STAFF,
                    recorded_at=now,
                ),
            )
        row = panel_repository.add_consent_action(
            session,
            StaffConsentAction(
                patient_ref=staff.patient_ref,
                channel=channel,
                address=None,
                action=action,
                purposes=[] if every else list(chosen),
                performer=staff.fhir_user,
                reason_code=reason_code,
                reason_text=_note(reason_text),
                recorded_at=now,
                ehr_status=panel_repository.PENDING,
            ),
        )
        action_id = row.id
        audit.staff_action(session, staff, action, audit.consent_target(action_id), now)
    log.info(
        "staff_recorded_consent by=%s channel=%s action=%s",
        staff.fhir_user,
        channel,
        action,
        extra={"id": action_id, "kind": "ledger", "outcome": action},
    )
    if deps.runtime is not None:
        runtime = deps.runtime
        _write_now("consent", lambda: write_staff_consent(runtime, action_id))
    return action_id


def consent_change(row: StaffConsentAction, identifier_system: str) -> ConsentChange:
    """The STOP/START path's ConsentChange for a staff action (same builder, same supersession)."""
    return ConsentChange(
        patient_ref=row.patient_ref,
        channel=row.channel,
        address=row.address or "",
        permit=row.action == ACTION_OPT_IN,
        at=row.recorded_at,
        identifier_system=identifier_system,
        identifier_value=f"staff-consent-{row.id}",
        purposes=tuple(row.purposes or ()),
        performer=row.performer,
    )


def write_staff_consent(runtime: Any, action_id: int) -> str:
    """Write one staff action's Consent if still pending: read, EHR call with no transaction
    open (conditional create, so a retry finds it), then record it. written / already."""
    settings = runtime.settings
    with transaction(runtime.sessions) as session:
        row = panel_repository.get_consent_action(session, action_id)
        if row is None or row.ehr_status != panel_repository.PENDING:
            return "already"
        change = consent_change(row, settings.inbound_identifier_system)
    reference = write_consent(runtime.ehr, change, attempts=settings.ehr_update_attempts)
    with transaction(runtime.sessions) as session:
        won = panel_repository.mark_consent_written(session, action_id, reference)
    log.info("staff_consent_written", extra={"id": action_id, "resource_id": reference})
    return "written" if won else "already"


def staff_consents_to_relay(runtime: Any, limit: int = 200) -> list[int]:
    """Staff consent actions whose Consent is still to be written (for the relay)."""
    with transaction(runtime.sessions) as session:
        return list(panel_repository.pending_consent_actions(session, limit))


def _write_now(kind: str, write: Callable[[], object]) -> None:
    """Try the EHR write at once, after the commit; on failure the relay writes it later."""
    try:
        write()
    except (EhrError, ConcurrentUpdateConflict) as error:
        log.warning(
            "staff_action_ehr_write_deferred",
            extra={"kind": kind, "error": type(error).__name__},
        )


def _note(text: str) -> str | None:
    """A staff member's optional free-text reason: kept locally, trimmed and bounded."""
    cleaned = " ".join(text.split())[:MAX_NOTE]
    return cleaned or None


def _read_ehr(
    deps: PanelDeps, staff: StaffSession
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
    """The Patient and their Consents with the user's token; unavailable = shown as such."""
    _, _, patient_id = staff.patient_ref.partition("/")
    client = EhrClient(
        deps.ehr_base_url,
        auth=StaticBearerAuth(staff.access_token),
        timeout=deps.ehr_timeout,
        retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=1.0),
    )
    try:
        patient = client.read("Patient", patient_id)
        consents = list(
            client.search_all("Consent", {"patient": staff.patient_ref, "_count": "100"})
        )
    except EhrError as error:
        log.warning("staff_panel_ehr_unavailable", extra={"error": type(error).__name__})
        return None, [], False
    finally:
        client.close()
    return patient, consents, True


def open_inbox(deps: PanelDeps, staff: StaffSession) -> list[dict[str, Any]]:
    """The launch patient's staff-inbox items (with the reply's text), as JSON."""
    zone = ZoneInfo(deps.default_zone)
    with transaction(deps.sessions) as session:
        items = inbound_repository.inbox_for_patient(session, staff.patient_ref, INBOX_LIMIT)
        notes = answer_notes(outreach.messages_for_patient(session, staff.patient_ref), zone)
        entries = inbox_entries(items, zone=zone, me=staff.fhir_user, answers=notes)
    return [entry.as_json() for entry in entries]


def mark_handled(deps: PanelDeps, staff: StaffSession, item_id: int) -> None:
    """Mark one of the launch patient's open inbox items handled by this member of staff."""
    with transaction(deps.sessions) as session:
        won = inbound_repository.mark_inbox_handled(
            session, item_id, staff.patient_ref, staff.fhir_user, deps.clock()
        )
    if not won:
        raise NotPending("inbox-item-not-open")
    log.info("staff_handled_reply by=%s", staff.fhir_user, extra={"id": item_id, "kind": "inbox"})


def assign(deps: PanelDeps, staff: StaffSession, item_id: int, to: str) -> None:
    """Assign one of the patient's open inbox items: to me, to a team, or to nobody."""
    try:
        target = assignee_ref(to, staff.fhir_user)
    except ValueError:
        raise BadActionRequest("bad-assignee") from None
    with transaction(deps.sessions) as session:
        won = inbound_repository.assign_inbox_item(session, item_id, staff.patient_ref, target)
    if not won:
        raise NotPending("inbox-item-not-open")
    log.info("staff_assigned_reply by=%s", staff.fhir_user, extra={"id": item_id, "kind": "inbox"})


def answer_reply(
    deps: PanelDeps, staff: StaffSession, item_id: int, answer_id: str
) -> AnswerOutcome:
    """Answer one of the patient's open replies with an approved template.

    The Patient and their Consents are read first (the user's token, no transaction open);
    then, in one transaction, :func:`rules.answers.plan_answer` decides and the answer is
    stored as a planned message (a staff-answer key re-planning leaves alone) and the reply
    marked handled, or stored withheld with its reason (the reply stays open). Delivery, or
    the not-done Communication, is enqueued after the commit.
    """
    from fhir_bridge.tasks import unit_of_work  # the API's app is imported by the tasks

    runtime = deps.runtime
    if runtime is None or answer_id not in runtime.rules.staff_answers.answers:
        raise BadActionRequest("bad-answer")
    patient, consents, available = _read_ehr(deps, staff)
    if not available:
        raise EhrUnavailable("ehr-unavailable")
    addresses = [t["value"] for t in (patient or {}).get("telecom") or [] if t.get("value")]
    now = deps.clock()
    try:
        with unit_of_work(deps.sessions) as (session, after):
            found = answers_repository.inbox_item(session, item_id, staff.patient_ref)
            if found is None or found[0].status != "open":
                raise NotPending("inbox-item-not-open")
            key = answer_key(item_id, answer_id)
            if outreach.by_key(session, [key]):
                raise NotPending("already-answered")
            ledger = [
                outreach.as_consent_entry(entry)
                for entry in outreach.ledger_for(session, staff.patient_ref, addresses)
            ]
            request = AnswerRequest(
                item_id=item_id,
                answer_id=answer_id,
                reply_channel=REPLY_CHANNEL,
                in_response_to=found[0].communication_ref,
                author=staff.fhir_user,
            )
            snapshot = PatientSnapshot(staff.patient_ref, patient, ())
            decision = plan_answer(request, snapshot, consents, ledger, runtime.rules, now)
            if isinstance(decision, WithheldMessage):
                row = new_withheld(
                    reason=decision.reason,
                    detail=decision.detail,
                    id=str(uuid.uuid4()),
                    key=key,
                    rule=decision.rule,
                    purpose=decision.purpose,
                    patient_ref=staff.patient_ref,
                    about=[],
                    send_at=decision.send_at or now,
                    template=answer_template(answer_id),
                    language="",
                    variables={},
                    trace=dict(decision.trace),
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                after.add("fhir_bridge.write_communication", row.id)
                outcome = "withheld"
            else:
                row = new_row(decision, now)
                session.add(row)
                session.flush()
                if not inbound_repository.mark_inbox_handled(
                    session, item_id, staff.patient_ref, staff.fhir_user, now
                ):
                    raise NotPending("inbox-item-not-open")
                outcome = "held"
                if row.send_at <= now and outreach.claim_batch(
                    session, now, runtime.lease, ids=[row.id]
                ):
                    after.add("fhir_bridge.deliver", row.id)
                    outcome = "sending"
            message_id = row.id
            audit.staff_action(session, staff, "answer", audit.message_target(message_id), now)
    except IntegrityError:  # the same answer submitted twice at once: the other one won
        raise NotPending("already-answered") from None
    log.info(
        "staff_answered_reply by=%s",
        staff.fhir_user,
        extra={"id": item_id, "message_id": message_id, "kind": "answer", "outcome": outcome},
    )
    return AnswerOutcome(message_id, outcome)
