"""Who sent an inbound SMS and what it answers, read from our own send ledger.

A reply is tied to a patient only through a number we texted (the most recent SMS we sent
to it); an unknown number gets a generic answer and nothing else, because acting on an
unverified claim of identity could leak or change another patient's care.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fhir_bridge.inbound import repository
from fhir_bridge.store.models import InboundMessage
from fhir_bridge.sync import repository as state_repository
from rules.language import preferred_language
from rules.reply_texts import REPLY_LANGUAGES


@dataclass(frozen=True)
class Conversation:
    """One inbound SMS in context. ``ledger_state`` is the newest opt-in/out action;
    ``preferred_language`` the patient's stated language (``Patient.communication``), when
    known; ``last_language`` the language of the last SMS we sent to the number."""

    inbound_id: int
    provider_message_id: str
    address: str
    text: str
    received_at: datetime
    patient_ref: str | None = None
    in_response_to: str | None = None
    appointment_ref: str | None = None
    awaiting_confirmation: bool = False
    ledger_state: str | None = None
    preferred_language: str | None = None
    last_language: str | None = None


def load_conversation(
    session: Session, inbound: InboundMessage, *, window: timedelta
) -> Conversation:
    """The sender's patient, the reminder they answer, and their opt-in/out state."""
    base = Conversation(
        inbound_id=inbound.id,
        provider_message_id=inbound.provider_message_id,
        address=inbound.from_address,
        text=inbound.body,
        received_at=inbound.received_at,
        ledger_state=latest_ledger_action(session, inbound.from_address),
    )
    last = repository.last_message_to(session, inbound.from_address)
    if last is None:
        return base
    appointment_ref = next(
        (str(ref) for ref in last.about if str(ref).startswith("Appointment/")), None
    )
    recent = last.sent_at is not None and last.sent_at >= inbound.received_at - window
    return Conversation(
        inbound_id=base.inbound_id,
        provider_message_id=base.provider_message_id,
        address=base.address,
        text=base.text,
        received_at=base.received_at,
        patient_ref=last.patient_ref,
        in_response_to=f"Communication/{last.communication_id}" if last.communication_id else None,
        appointment_ref=appointment_ref,
        awaiting_confirmation=appointment_ref is not None and recent,
        ledger_state=base.ledger_state,
        preferred_language=_stated_language(session, last.patient_ref),
        last_language=last.language or None,
    )


def _stated_language(session: Session, patient_ref: str) -> str | None:
    """The language the patient states in ``Patient.communication`` (as we last stored it)."""
    _, _, patient_id = patient_ref.partition("/")
    state = state_repository.get_state(session, "Patient", patient_id)
    if state is None:
        return None
    decision = preferred_language(state.body, sorted(REPLY_LANGUAGES), default="")
    return decision.language or None


def latest_ledger_action(session: Session, address: str) -> str | None:
    entries = repository.ledger_for_address(session, "sms", address)
    return entries[-1].action if entries else None
