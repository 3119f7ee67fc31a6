"""Two-way messaging jobs as plain functions of a :class:`Runtime` (Celery tasks wrap them)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from fhir_bridge.inbound import repository
from fhir_bridge.inbound.callbacks import apply_receipts
from fhir_bridge.inbound.communication_sync import SyncDeps, sync_communication
from fhir_bridge.inbound.processing import InboundDeps, process_inbound
from fhir_bridge.inbound.replies import ClinicVoice, ReplySender
from fhir_bridge.runtime import Runtime
from fhir_bridge.store.db import transaction
from rules.keywords import DEFAULT_CRISIS_TERMS


def status_callback_url(rt: Runtime, message_id: str) -> str:
    """The public URL the provider posts delivery statuses of ``message_id`` to."""
    return f"{rt.settings.public_base_url}/twilio/status?message_id={quote(message_id, safe='')}"


def _retry_after(rt: Runtime) -> timedelta:
    return timedelta(seconds=rt.settings.relay_interval_seconds)


def inbound_deps(rt: Runtime) -> InboundDeps:
    settings = rt.settings
    organization = rt.rules.organization
    return InboundDeps(
        factory=rt.sessions,
        ehr=rt.ehr,
        replies=ReplySender(
            factory=rt.sessions, adapter=rt.adapters.get("sms"), clock=rt.clock, lease=rt.lease
        ),
        clinic=ClinicVoice(
            name=organization.clinic_name,
            phone=organization.clinic_phone,
            # A clinic's own (English) crisis wording only when set; else the built-in en/es.
            crisis_text=(
                settings.crisis_reply_text
                if "crisis_reply_text" in settings.model_fields_set
                else None
            ),
            default_language=rt.rules.languages.default,
        ),
        clock=rt.clock,
        lease=rt.lease,
        identifier_system=settings.inbound_identifier_system,
        clinic_ref=settings.clinic_reference or settings.sender_reference,
        crisis_terms=tuple(settings.crisis_terms or DEFAULT_CRISIS_TERMS),
        confirmation_window=timedelta(days=settings.confirmation_window_days),
        invitation_validity=timedelta(days=settings.optin_invite_valid_days),
        update_attempts=settings.ehr_update_attempts,
        max_attempts=settings.max_send_attempts * 4,
    )


def process_inbound_message(rt: Runtime, inbound_id: int) -> str:
    return process_inbound(inbound_deps(rt), inbound_id)


def sync_deps(rt: Runtime) -> SyncDeps:
    return SyncDeps(
        factory=rt.sessions,
        ehr=rt.ehr,
        clock=rt.clock,
        lease=rt.lease,
        retry_after=_retry_after(rt),
        update_attempts=rt.settings.ehr_update_attempts,
    )


def sync_message_communication(rt: Runtime, message_id: str) -> str:
    return sync_communication(sync_deps(rt), message_id)


def relay(rt: Runtime, limit: int = 500) -> tuple[list[int], list[str]]:
    """Apply late receipts; return inbound messages and Communication syncs to (re)enqueue."""
    now = rt.clock()
    with transaction(rt.sessions) as session:
        waiting = repository.message_ids_with_pending_receipts(session, limit)
    for message_id in waiting:
        with transaction(rt.sessions) as session:
            apply_receipts(session, message_id, now)
    with transaction(rt.sessions) as session:
        inbound = list(repository.inbound_due_for_relay(session, now, rt.lease, limit))
        repository.mark_inbound_enqueued(session, inbound, now)
        syncs = list(repository.syncs_due(session, now, limit))
    return inbound, syncs
