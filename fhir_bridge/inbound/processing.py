"""Acting on one stored inbound SMS: classify it, then record, reply and update the EHR.

Every step is recorded on the inbound row (``steps_done``) when it completes, so a retry
after an EHR outage or a killed worker resumes where it stopped; EHR creates are also
conditional on an identifier (the MessageSid) and replies are exactly-once by key, so even a
step that ran but was not recorded is not doubled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fhir_bridge.audit import service as audit
from fhir_bridge.fhir.errors import EhrError, EhrNotFound
from fhir_bridge.fhir_api.repository import record_version
from fhir_bridge.inbound import replies as r
from fhir_bridge.inbound import repository
from fhir_bridge.inbound.conversation import Conversation, latest_ledger_action, load_conversation
from fhir_bridge.inbound.ehr_updates import ConcurrentUpdateConflict, update_with_retry
from fhir_bridge.inbound.resources import (
    AppointmentClosed,
    ConsentChange,
    InboundFacts,
    NotAParticipant,
    TaskRequest,
    accept_participant,
    identifier_query,
    inbound_communication,
    outreach_consent,
    staff_task,
    task_query,
    task_resource,
)
from fhir_bridge.optin.service import YesContext, yes_context
from fhir_bridge.optout import SOURCE_SMS_KEYWORD, ledger_entry, supersede
from fhir_bridge.store.db import transaction
from fhir_bridge.store.models import InboundMessage, StaffInboxItem
from rules import keywords as kw
from rules.optin import TOPIC as HEALTH_TIPS
from rules.reply_texts import REPLY_HEALTH_TIPS_JOINED

log = logging.getLogger(__name__)


@dataclass
class InboundDeps:
    """Collaborators for inbound processing; built once per worker process."""

    factory: sessionmaker[Session]
    ehr: Any
    replies: r.ReplySender
    clinic: r.ClinicVoice
    clock: Callable[[], datetime]
    lease: timedelta
    identifier_system: str
    clinic_ref: str | None
    crisis_terms: Sequence[str]
    confirmation_window: timedelta
    update_attempts: int
    max_attempts: int
    invitation_validity: timedelta = timedelta(days=7)
    """How long a YES still answers a health-tips invitation (``fhir_bridge.optin``)."""


def accept_inbound(
    session: Session,
    *,
    sid: str,
    from_address: str,
    to_address: str | None,
    body: str,
    now: datetime,
) -> InboundMessage | None:
    """Store an inbound SMS unless its MessageSid is already stored (then ``None``)."""
    return repository.insert_once(
        session,
        InboundMessage(
            provider_message_id=sid,
            from_address=from_address,
            to_address=to_address,
            body=body,
            received_at=now,
            enqueued_at=now,
            status="pending",
            steps_done=[],
        ),
    )


def process_inbound(deps: InboundDeps, inbound_id: int) -> str:
    """Handle one inbound SMS; returns its intent, or skipped / retry / failed."""
    with transaction(deps.factory) as session:
        if not repository.claim_inbound(session, inbound_id, deps.clock(), deps.lease):
            return "skipped"
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        conversation = load_conversation(session, row, window=deps.confirmation_window)
        done = {str(step) for step in row.steps_done}
    work = _Work(deps, conversation, done)
    try:
        intent = work.handle()
    except (EhrError, r.ReplyDeferred, ConcurrentUpdateConflict) as exc:
        return _defer(deps, inbound_id, type(exc).__name__)
    with transaction(deps.factory) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        row.status, row.processed_at, row.lease_until = "done", deps.clock(), None
        row.intent, row.patient_ref, row.error_code = intent, conversation.patient_ref, None
        audit.record_reply_handled(session, row, deps.identifier_system, deps.clock())
    log.info("inbound sms handled", extra={"inbound_id": inbound_id, "intent": intent})
    return intent


def _defer(deps: InboundDeps, inbound_id: int, error: str) -> str:
    with transaction(deps.factory) as session:
        row = session.get(InboundMessage, inbound_id)
        assert row is not None
        final = row.attempts >= deps.max_attempts
        row.status = "failed" if final else "pending"
        row.error_code, row.lease_until, row.enqueued_at = error, None, None
    log.warning("inbound sms deferred", extra={"inbound_id": inbound_id, "error": error})
    return "failed" if final else "retry"


class _Work:
    """The steps for one inbound message, each run at most once."""

    def __init__(self, deps: InboundDeps, conversation: Conversation, done: set[str]) -> None:
        self.deps = deps
        self.c = conversation
        self.done = done
        self._facts: InboundFacts | None = None
        self.language = deps.clinic.default_language
        self.crisis_language = deps.clinic.default_language
        self.also_opted_out = False

    @property
    def facts(self) -> InboundFacts:
        assert self._facts is not None, "facts are set once the sender is known"
        return self._facts

    def handle(self) -> str:
        reading = kw.read_inbound(self.c.text, crisis_terms=self.deps.crisis_terms)
        self.language = kw.reply_language(
            self.c.preferred_language,
            self.c.last_language,
            reading.language,
            supported=r.REPLY_LANGUAGES,
            default=self.deps.clinic.default_language,
        )
        # The crisis answer goes out in the language the person just wrote in, when it shows.
        self.crisis_language = kw.reply_language(
            reading.language, self.language, supported=r.REPLY_LANGUAGES, default=self.language
        )
        if self.c.patient_ref is None:
            return self._unknown_sender(reading)
        state = self.c.ledger_state
        yes = self._yes_context(reading)
        intents = [
            kw.resolve_reply(
                intent,
                opt_in_pending=state == "opt-in-pending",
                opted_out=state == "opt-out",
                awaiting_confirmation=self.c.awaiting_confirmation,
                invitation_open=yes.invitation_open,
                stopped_recently=yes.stopped_recently,
            )
            for intent in reading.intents
        ]
        intent = intents[0]
        self.also_opted_out = any(i.kind == kw.INTENT_OPT_OUT for i in intents[1:])
        self._facts = InboundFacts(
            provider_message_id=self.c.provider_message_id,
            identifier_system=self.deps.identifier_system,
            patient_ref=self.c.patient_ref,
            text=self.c.text,
            received_at=self.c.received_at,
            intent=intent.kind,
            clinic_ref=self.deps.clinic_ref,
            in_response_to=self.c.in_response_to,
            about=(self.c.appointment_ref,) if self.c.appointment_ref else (),
        )
        handlers: dict[str, Callable[[], None]] = {
            kw.INTENT_OPT_OUT: self._opt_out,
            kw.INTENT_OPT_IN: self._opt_in,
            kw.INTENT_HEALTH_TIPS_OPT_IN: self._health_tips_opt_in,
            kw.INTENT_HELP: self._help,
            kw.INTENT_CONFIRM: self._confirm,
            kw.INTENT_RESCHEDULE: self._reschedule,
            kw.INTENT_CRISIS: self._crisis,
            kw.INTENT_AMBIGUOUS_CANCEL: self._clarify_cancel,
        }
        # Crisis first, then (for "STOP I'm going to kill myself") the opt-out as well.
        for each in intents:
            handlers.get(each.kind, self._free_text)()
        return intent.kind

    def _unknown_sender(self, reading: kw.InboundReading) -> str:
        """No patient to act for: a crisis still gets the resources and a human, else the
        generic answer only."""
        if reading.primary.kind != kw.INTENT_CRISIS:
            self._reply(r.REPLY_UNKNOWN_SENDER)
            return "unknown-sender"
        self._reply(r.REPLY_CRISIS)
        request = TaskRequest(
            identifier_system=self.deps.identifier_system,
            identifier_value=self.c.provider_message_id,
            patient_ref=None,
            code="urgent-patient-message",
            description=(
                "Possible crisis in an SMS from a number not matched to a patient: "
                "call the number back now."
            ),
            priority="stat",
            authored=self.c.received_at,
            owner_ref=self.deps.clinic_ref,
            callback_number=self.c.address,
        )
        task = self._recorded("task")
        if task is None:
            stored = self.deps.ehr.create(task_resource(request), if_none_exist=task_query(request))
            task = f"Task/{stored.get('id')}"
            self._mark(f"task={task}")
        self._inbox("crisis", "stat", None, task)
        log.warning(
            "possible crisis from an unknown number", extra={"inbound_id": self.c.inbound_id}
        )
        return "unknown-sender-crisis"

    def _opt_out(self) -> None:
        self._ledger("opt-out")
        self._reply(r.REPLY_OPT_OUT)
        self._consent(permit=False)
        self._communication()

    def _opt_in(self) -> None:
        self._ledger("opt-in")
        self._reply(r.REPLY_OPT_IN)
        self._consent(permit=True)
        self._communication()

    def _health_tips_opt_in(self) -> None:
        """A YES to an open invitation: recorded exactly as a START is (ledger entry,
        AuditEvent, Consent, earlier ones of ours ended), for the health-tips purpose only,
        then the CTIA confirmation in the patient's language."""
        self._ledger("opt-in", purpose=HEALTH_TIPS)
        self._reply(REPLY_HEALTH_TIPS_JOINED)
        self._consent(permit=True, purposes=(HEALTH_TIPS,))
        self._communication()

    def _yes_context(self, reading: kw.InboundReading) -> YesContext:
        """What a YES could answer; read only when the reply holds one."""
        if not any(
            i.kind == kw.INTENT_OPT_IN and i.keyword in kw.YES_KEYWORDS for i in reading.intents
        ):
            return YesContext(invitation_open=False, stopped_recently=False)
        with transaction(self.deps.factory) as session:
            return yes_context(
                session,
                address=self.c.address,
                patient_ref=self.c.patient_ref,
                received_at=self.c.received_at,
                validity=self.deps.invitation_validity,
            )

    def _help(self) -> None:
        self._reply(r.REPLY_HELP)
        self._communication()

    def _confirm(self) -> None:
        self._communication()
        self._reply(r.REPLY_CONFIRMED if self._accept_appointment() else r.REPLY_NOT_CONFIRMED)

    def _reschedule(self) -> None:
        communication = self._communication()
        task = self._create(
            "task",
            staff_task(
                self.facts,
                code="reschedule",
                description="Patient asked by SMS to reschedule: call them to find a new time.",
                priority="routine",
                focus=self.c.appointment_ref,
                reason_ref=communication,
            ),
        )
        self._inbox("reschedule", "routine", communication, task)
        self._reply(r.REPLY_RESCHEDULE)

    def _crisis(self) -> None:
        self._reply(r.REPLY_CRISIS)
        communication = self._communication()
        description = "Possible crisis in a patient's SMS reply: contact the patient now."
        if self.also_opted_out:
            description += " The patient also asked to stop texts: call, do not text."
        task = self._create(
            "task",
            staff_task(
                self.facts,
                code="urgent-patient-message",
                description=description,
                priority="stat",
                focus=communication,
                reason_ref=communication,
            ),
        )
        self._inbox("crisis", "stat", communication, task)

    def _clarify_cancel(self) -> None:
        """ "cancel my appointment": one question back (C / R / STOP), never a cancellation or
        an opt-out; staff see the message in the inbox."""
        communication = self._communication()
        self._inbox("message", "routine", communication, None)
        self._reply(r.REPLY_CLARIFY_CANCEL)

    def _free_text(self) -> None:
        communication = self._communication()
        self._inbox("message", "routine", communication, None)
        self._reply(r.REPLY_RECEIVED)

    def _accept_appointment(self) -> bool:
        if self.c.appointment_ref is None or self.c.patient_ref is None:
            return False
        if "appointment-accepted" in self.done:
            return True
        patient_ref, appointment_id = self.c.patient_ref, self.c.appointment_ref.partition("/")[2]
        try:
            update_with_retry(
                self.deps.ehr,
                "Appointment",
                appointment_id,
                lambda current: accept_participant(current, patient_ref),
                attempts=self.deps.update_attempts,
            )
        except (AppointmentClosed, NotAParticipant, EhrNotFound) as exc:
            log.info("appointment not confirmable", extra={"why": type(exc).__name__})
            return False
        self._mark("appointment-accepted")
        return True

    def _communication(self) -> str:
        return self._create("communication", inbound_communication(self.facts))

    def _create(self, step: str, resource: dict[str, Any]) -> str:
        """Conditional create, once per step; returns the stored resource's reference."""
        recorded = self._recorded(step)
        if recorded is not None:
            return recorded
        stored = self.deps.ehr.create(resource, if_none_exist=identifier_query(self.facts))
        reference = f"{resource['resourceType']}/{stored.get('id')}"
        with transaction(self.deps.factory) as session:
            self._mark_in(session, f"{step}={reference}")
            if resource["resourceType"] == "Communication":  # served by the FHIR API
                record_version(session, resource, ehr_id=stored.get("id"))
        return reference

    def _ledger(self, action: str, *, purpose: str = "*") -> None:
        if f"ledger={action}" in self.done:
            return
        with transaction(self.deps.factory) as session:
            purposes = () if purpose == "*" else (purpose,)
            change = self._consent_change(permit=action == "opt-in", purposes=purposes)
            session.add(ledger_entry(change, source=SOURCE_SMS_KEYWORD, purpose=purpose))
            audit.record_consent_change(session, change, action, self.deps.clock())
            self._mark_in(session, f"ledger={action}")

    def _consent_change(self, *, permit: bool, purposes: tuple[str, ...] = ()) -> ConsentChange:
        assert self.c.patient_ref is not None, "consent changes need a known sender"
        return ConsentChange(
            patient_ref=self.c.patient_ref,
            channel="sms",
            address=self.c.address,
            permit=permit,
            at=self.c.received_at,
            identifier_system=self.deps.identifier_system,
            identifier_value=self.c.provider_message_id,
            purposes=purposes,
        )

    def _consent(self, *, permit: bool, purposes: tuple[str, ...] = ()) -> None:
        """This STOP/START's Consent (created once), then the earlier ones of ours ended."""
        resource = outreach_consent(self._consent_change(permit=permit, purposes=purposes))
        reference = self._create("consent", resource)
        if "consent-superseded" in self.done:
            return
        supersede(
            self.deps.ehr,
            {**resource, "id": reference.partition("/")[2]},
            identifier_system=self.deps.identifier_system,
            attempts=self.deps.update_attempts,
        )
        self._mark("consent-superseded")

    def _inbox(self, kind: str, priority: str, communication: str | None, task: str | None) -> None:
        with transaction(self.deps.factory) as session:
            repository.insert_once(
                session,
                StaffInboxItem(
                    inbound_id=self.c.inbound_id,
                    patient_ref=self.c.patient_ref,
                    kind=kind,
                    priority=priority,
                    status="open",
                    communication_ref=communication,
                    task_ref=task,
                    created_at=self.deps.clock(),
                ),
            )

    def _reply(self, kind: str) -> None:
        allowed = kind in r.CONSENT_EXEMPT_REPLIES or self._may_text()
        language = self.crisis_language if kind == r.REPLY_CRISIS else self.language
        self.deps.replies.send(
            inbound_id=self.c.inbound_id,
            inbound_sid=self.c.provider_message_id,
            kind=kind,
            to=self.c.address,
            text=r.reply_text(kind, self.deps.clinic, language),
            allowed=allowed,
        )

    def _may_text(self) -> bool:
        with transaction(self.deps.factory) as session:
            return latest_ledger_action(session, self.c.address) not in ("opt-out",)

    def _recorded(self, step: str) -> str | None:
        prefix = f"{step}="
        return next((d[len(prefix) :] for d in self.done if d.startswith(prefix)), None)

    def _mark(self, step: str) -> None:
        with transaction(self.deps.factory) as session:
            self._mark_in(session, step)

    def _mark_in(self, session: Session, step: str) -> None:
        row = session.get(InboundMessage, self.c.inbound_id)
        assert row is not None
        row.steps_done = [*row.steps_done, step]
        self.done.add(step)
